"""Run the generated Verilog in a compiled C++ Verilator harness: no Python in the cycle
loop, for streaming whole data sets through the RTL.

The design (its core ``nnforge_top``, ports up to 64 bits) and ``harness/verilator_main.cpp``
are built with ``verilator --cc --exe --build`` in the private build cache
(:mod:`nnforge.sim.cache`; the key covers the sources, the harness, the tools and every
flag: Verilator's arguments, the C++ optimization :data:`OPT_FAST` and the compiler flags
the environment gives make, :func:`nnforge.sim.rtl.toolchain`; an identical earlier build
is reused by its key). The harness reads a binary job (inputs in stream order),
drives ``clk``/``rst`` and the two valid/ready streams exactly like the cocotb testbench
:mod:`nnforge.sim.cocotb_stream_tb` (same reset, same cycle numbering, same random stalls
in kind though not the same random sequence) and writes the outputs and a result file.
:func:`run_cpp` returns the same :class:`~nnforge.sim.result.SimRun` as
:func:`nnforge.sim.verilog.run`, which dispatches here by default.

Job and result files (all little-endian; see the comment at the top of the C++ source):
``job.bin`` = ``b"NNFJOB1\\0"``, 10 int64 (n_vec, n_in, n_out, in_width, out_width,
max_cycles, reset_cycles, seed, progress_every, 0), float64 stall, n_vec * n_in uint64;
``out.bin`` = n_vec * n_out uint64; ``result.bin`` = ``b"NNFRES1\\0"``, 9 int64 (status,
cycles, vectors_in, vectors_out, elements_out, out_last_ok, n_first, n_last, processor
nanoseconds of the loop), float64 loop seconds, then the two int64 cycle arrays.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from . import cache
from . import rtl
from .files import log_tail
from .progress import Progress
from .result import SimRun
from .tools import ToolError, find_tool, verilator_env

HARNESS = Path(__file__).resolve().parent / "harness" / "verilator_main.cpp"
EXE = "nnforge_sim"
MAX_PORT_BITS = 64
JOBS = 2
# The model's per-cycle code is compiled with -O2 instead of verilated.mk's -Os (OPT_FAST):
# Verilator's arithmetic helpers (VL_MULS_III for the signed multipliers) are then inlined;
# ResNet-8 (balanced) runs ~15% more cycles per second and builds no slower. One model
# thread: with --threads 2 the threads' spin-waits make a loaded two-core machine 5-15x slower.
OPT_FAST = "-O2"
BUILD_ARGS: list[str] = ["--cc", "--exe", "--build", "-O3", "-j", str(JOBS), "--x-assign", "fast",
                         "--x-initial", "fast", "--prefix", "Vtop", "-o", EXE, "-MAKEFLAGS", f"OPT_FAST={OPT_FAST}"]
_JOB_MAGIC, _RES_MAGIC = b"NNFJOB1\0", b"NNFRES1\0"


# ----------------------------------------------------------------------------- build

def port_widths(info: dict) -> tuple[int, int]:
    return int(info["in_type"]["width"]), int(info["out_type"]["width"])


def supports(src_dir: Path) -> bool:
    """Whether the C++ harness can drive the design in ``src_dir`` (a readable design whose
    stream ports are at most 64 bits wide); errors are left to the caller's own checks."""
    try:
        info, _ = rtl.design_sources(src_dir)
        return max(port_widths(info)) <= MAX_PORT_BITS
    except (ToolError, OSError, KeyError, ValueError):
        return False


def _env() -> dict[str, str]:
    env = verilator_env()
    env.update(rtl.make_overrides())
    return env


def _runtime_dir() -> Path:
    """Verilator's runtime objects compiled for this harness (no VPI, no tracing): shared
    like :func:`nnforge.sim.verilog.build`'s (:func:`nnforge.sim.verilog.runtime_root`)."""
    return rtl.runtime_root() / f"cpp_{cache.key('cpp runtime', rtl.toolchain(), *BUILD_ARGS)[:32]}"


def build(src_dir: Path, build_dir: Path | None, progress: Progress) -> dict:
    """Build the C++ harness around the design in ``src_dir`` in the private build cache
    (:mod:`nnforge.sim.cache`): the Verilog sources and the harness are copied into a fresh
    entry keyed by their content, the Verilator arguments and the tools; an entry is
    reused only by that key. ``build_dir`` is not used (the caller runs there). Returns
    build facts (``reused``, ``seconds``, ``dir``, ``exe``)."""
    info, srcs = rtl.design_sources(src_dir)
    w_in, w_out = port_widths(info)
    if max(w_in, w_out) > MAX_PORT_BITS:
        raise ToolError(f"the C++ Verilator harness drives ports of up to {MAX_PORT_BITS} bits; "
                        f"in_data has {w_in}, out_data {w_out} (use engine='cocotb')")
    digest = cache.key("verilator cpp", rtl.toolchain(), info["top"], *BUILD_ARGS, files=[*srcs, HARNESS])
    t0 = time.monotonic()

    def populate(obj: Path) -> None:
        (obj / "src").mkdir(parents=True, exist_ok=True)
        copies = cache.copy_sources([*srcs, HARNESS], obj / "src")
        # Verilator's runtime objects from an earlier build: make is told to keep them
        # (--old-file) although the makefile Verilator just wrote is newer
        runtime = _runtime_dir()
        keep_old: list[str] = []
        if runtime.is_dir():
            for f in sorted(runtime.iterdir()):
                shutil.copy2(f, obj / f.name)
                if f.suffix == ".o":
                    keep_old += ["-MAKEFLAGS", f"--old-file={f.name}"]
        log = obj / "build.log"
        cmd = [find_tool("verilator"), *BUILD_ARGS, "--top-module", info["top"], "-Mdir", str(obj), *keep_old,
               *map(str, copies)]
        progress(f"verilog (cpp): building {len(srcs)} Verilog files and the C++ harness with Verilator")
        with open(log, "w") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            proc = subprocess.run(cmd, cwd=obj, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise ToolError(f"Verilator build failed (exit {proc.returncode}) for the C++ harness; "
                            f"last lines of its log:\n{log_tail(log)}")
        if not (obj / EXE).exists():
            raise ToolError(f"Verilator build produced no {EXE}; last lines of its log:\n{log_tail(log)}")
        files = list(obj.glob("verilated*.o"))
        rtl.stash_runtime(files + [f.with_suffix(".d") for f in files if f.with_suffix(".d").exists()], runtime)

    obj, reused = cache.entry("verilator-cpp", digest, populate)
    secs = 0.0 if reused else time.monotonic() - t0
    progress(f"verilog (cpp): reusing the harness build {obj.name}" if reused
             else f"verilog (cpp): build finished in {secs:.1f} s")
    return {"reused": reused, "seconds": secs, "dir": str(obj), "exe": str(obj / EXE)}


# ----------------------------------------------------------------------------- files

def write_job(path: Path, x: np.ndarray, n_out: int, widths: tuple[int, int], *, max_cycles: int,
              stall: float, seed: int, reset_cycles: int = 4, progress_every: int = 0) -> None:
    """The harness's job file: ``x`` is (N, n_in) uint64 bit patterns in stream order."""
    x = np.ascontiguousarray(x, dtype="<u8")
    n_vec, n_in = x.shape
    head = np.array([n_vec, n_in, n_out, widths[0], widths[1], max_cycles, reset_cycles, seed,
                     progress_every, 0], dtype="<i8")
    with open(path, "wb") as f:
        f.write(_JOB_MAGIC + head.tobytes() + np.array([stall], dtype="<f8").tobytes())
        f.write(x.tobytes())


def read_result(path: Path) -> dict:
    """The harness's result file as the dict the cocotb testbench writes."""
    data = Path(path).read_bytes()
    if data[:8] != _RES_MAGIC or len(data) < 88:
        raise ToolError(f"{path} is not a result of the C++ harness")
    (status, cycles, vec_in, vec_out, elems, last_ok, n_first, n_last, cpu_ns) = (
        int(v) for v in np.frombuffer(data, "<i8", 9, 8))
    wall = float(np.frombuffer(data, "<f8", 1, 80)[0])
    arrays = np.frombuffer(data, "<i8", n_first + n_last, 88)
    return {"status": "ok" if status == 0 else "timeout", "cycles": cycles, "vectors_in": vec_in,
            "vectors_out": vec_out, "elements_out": elems, "out_last_ok": bool(last_ok),
            "first_in_cycles": [int(v) for v in arrays[:n_first]],
            "last_out_cycles": [int(v) for v in arrays[n_first:]], "wall_seconds": wall,
            "cpu_seconds": cpu_ns * 1e-9}


# ----------------------------------------------------------------------------- run

def run_cpp(hw, src_dir: Path, build_dir: Path, x_int: np.ndarray, progress: Progress,
            expected: np.ndarray | None = None, *, backpressure: float = 0.0, seed: int = 1,
            max_cycles: int | None = None) -> SimRun:
    """Stream every row of ``x_int`` through the design in ``src_dir`` in the C++ harness.
    Arguments, checks and results are those of :func:`nnforge.sim.verilog.run` (without
    ``trace`` and ``axis``); ``extra['engine']`` is ``'cpp'``. A build failure, a hung
    design (no result within ``max_cycles``, by default twice the analytic figures) or a
    crash raises :class:`~nnforge.sim.tools.ToolError` with the end of the log."""
    info, x = rtl.stream_inputs(hw, src_dir, x_int, backpressure)
    n_vec = x.shape[0]
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    built = build(src_dir, build_dir, progress)

    work = build_dir / "run_cpp"
    work.mkdir(exist_ok=True)
    job, out, res = work / "job.bin", work / "out.bin", work / "result.bin"
    for p in (out, res):
        p.unlink(missing_ok=True)
    if max_cycles is None:
        max_cycles = rtl.cycle_budget(info, n_vec, backpressure)
    every = max(1, n_vec // 10)
    write_job(job, x, hw.n_out, port_widths(info), max_cycles=max_cycles, stall=backpressure, seed=seed,
              progress_every=every)
    log = build_dir / "sim_cpp.log"

    progress(f"verilog (cpp): simulating {n_vec} vectors (log: {log})")
    tick = progress.counter("verilog (cpp): vectors", n_vec, every)
    reported = 0
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen([built["exe"], str(job), str(out), str(res)], cwd=work, stdout=subprocess.PIPE,
                                stderr=fh, text=True, bufsize=1)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if line.startswith("progress "):
                    try:
                        done = int(line.split()[1])
                    except ValueError:
                        continue
                    if done > reported:
                        reported = done
                        tick(done)
                else:
                    fh.write(line)
            rc = proc.wait()
        except BaseException:  # interrupted: do not leave the simulation running
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
    wall = time.monotonic() - t0
    if rc != 0 or not res.exists():
        why = f"signal {-rc}" if rc < 0 else f"exit {rc}"
        raise ToolError(f"the Verilator simulation (C++ harness) failed ({why}); last lines of {log}:\n{log_tail(log)}")
    result = read_result(res)
    if result["status"] == "timeout":
        raise ToolError(
            f"the Verilator simulation hung: {result['vectors_out']} of {n_vec} output vectors "
            f"after {result['cycles']} cycles (limit {max_cycles}); last lines of {log}:\n{log_tail(log)}"
        )
    if reported < n_vec:
        tick(n_vec)
    raw = np.fromfile(out, dtype="<u8").reshape(n_vec, hw.n_out)
    return rtl.sim_run(hw, info, raw, result, built, wall, progress, expected,
                      backpressure=backpressure, log=log, engine="cpp")
