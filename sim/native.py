"""Build and run the C and HLS C++ sources natively (gcc / g++) on integer vectors."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cache
from .progress import QUIET, Progress
from .result import SimRun
from .tools import ToolError, find_tool, run_tool

HARNESS = Path(__file__).resolve().parent / "harness"

C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
EXE = "harness"
CXX_FLAGS = ["-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas", "-Wno-unused-label"]


def build(compiler: str, sources: list[Path], include: Path | None, build_dir: Path | None, flags: list[str],
          progress: Progress, libs: tuple[str, ...] = ()) -> Path:
    """Compile ``sources`` (with the headers directly in ``include``) in the private build
    cache (:mod:`nnforge.sim.cache`) and return the executable. The files are copied into a
    fresh folder and compiled there by name, with no include path: only they can get into
    the binary. An entry is reused only when its key (every file's content, the command
    line, the compiler's path and version) is the same. ``build_dir`` is where the caller
    runs the program; nothing is built or read there."""
    exe = find_tool(compiler)
    headers = sorted(p for p in Path(include).glob("*.h*") if p.is_file() and not p.is_symlink()) if include else []
    files = [*headers, *map(Path, sources)]
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise ToolError(f"{compiler} build: two files named alike among {', '.join(names)}")
    args = [*flags, *(p.name for p in sources), "-o", EXE, *libs]
    digest = cache.key(f"native {compiler}", cache.tool_identity(exe), *args, files=files)

    def populate(tmp: Path) -> None:
        cache.copy_sources(files, tmp)
        progress(f"{compiler}: compiling {', '.join(p.name for p in sources)}")
        run_tool([exe, *args], cwd=tmp, what=f"{compiler} build")

    folder, _ = cache.entry(compiler.replace("+", "x"), digest, populate)
    return folder / EXE


def _workdir(path: Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_harness(exe: Path, x_int: np.ndarray, n_out: int, build_dir: Path) -> np.ndarray:
    n = len(x_int)
    build_dir = _workdir(build_dir)
    fin, fout = build_dir / "in.bin", build_dir / "out.bin"
    x32 = np.asarray(x_int, dtype=np.int64)
    if x32.size and (x32.min() < -(2**31) or x32.max() >= 2**31):
        raise ValueError("harness inputs must fit in int32")
    x32.astype("<i4").tofile(fin)
    proc = subprocess.run([str(exe), str(fin), str(fout), str(n)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{exe.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    y = np.fromfile(fout, dtype="<i4").astype(np.int64)
    if y.size != n * n_out:
        raise ToolError(f"{exe.name} wrote {y.size} values, expected {n * n_out}")
    return y.reshape(n, n_out)


@dataclass(frozen=True)
class Native:
    """How one generated source is compiled into the harness: its file in the target's
    folder, the compiler, its flags and libraries. Named once here; the targets use these."""

    source: str
    compiler: str
    flags: tuple[str, ...]
    libs: tuple[str, ...] = ()

    def build(self, src_dir: Path, build_dir: Path, progress: Progress, extra: tuple[str, ...] = ()) -> Path:
        sources = [Path(src_dir) / self.source, HARNESS / "harness.c"]
        return build(self.compiler, sources, Path(src_dir), build_dir, [*self.flags, *extra], progress, libs=self.libs)


C = Native("nnforge_model.c", "gcc", tuple(C_FLAGS), ("-lm",))
HLS = Native("nnforge_hls.cpp", "g++", (*CXX_FLAGS, "-DNNFORGE_HARNESS_HLS", "-x", "c++"))


def trace(native: Native, src_dir: Path, build_dir: Path, x_int: np.ndarray, n_out: int,
          progress: Progress) -> dict[int, np.ndarray]:
    """Run one sample through the C or HLS C++ sources (``native``: :data:`C` or
    :data:`HLS`) built with -DNNFORGE_TRACING: every step's output values, by step index."""
    exe = native.build(src_dir, build_dir, progress, ("-DNNFORGE_TRACING",))
    build_dir = _workdir(build_dir)
    fin, fout, ftrace = build_dir / "in.bin", build_dir / "out.bin", build_dir / "trace.bin"
    np.asarray(x_int, dtype=np.int64).reshape(1, -1).astype("<i4").tofile(fin)
    proc = subprocess.run([str(exe), str(fin), str(fout), "1", str(ftrace)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{exe.name} (trace) failed (exit {proc.returncode}): {proc.stderr.strip()}")
    rec = np.fromfile(ftrace, dtype=np.dtype([("step", "<i4"), ("value", "<i8")]))
    return {int(s): rec["value"][rec["step"] == s].astype(np.int64) for s in np.unique(rec["step"])}


def run(native: Native, label: str, hw, src_dir: Path, build_dir: Path, x_int: np.ndarray,
        progress: Progress) -> SimRun:
    """Build the sources with ``native`` and run them on ``x_int`` (``label`` names the
    backend in progress lines)."""
    exe = native.build(src_dir, build_dir, progress)
    progress(f"{label}: running {len(x_int)} samples")
    return SimRun(y=run_harness(exe, x_int, hw.n_out, build_dir))


def run_c(hw, src_dir: Path, build_dir: Path, x_int: np.ndarray, progress: Progress) -> SimRun:
    """Compile the C backend with gcc -std=c99 -Wall -Wextra -Werror and run it."""
    return run(C, "c", hw, src_dir, build_dir, x_int, progress)


def time_c(src_dir: Path, build_dir: Path, x_int: np.ndarray, repeats: int = 20,
           progress: Progress | None = None) -> float:
    """Nanoseconds per inference of the C backend (gcc -O2), the fastest of ``repeats``
    passes over the samples ``x_int`` (``sim/harness/bench.c``)."""

    sources = [Path(src_dir) / C.source, HARNESS / "bench.c"]
    exe = build("gcc", sources, Path(src_dir), Path(build_dir), C_FLAGS, progress or QUIET, libs=("-lm",))
    fin = _workdir(build_dir) / "bench_in.bin"
    np.asarray(x_int, dtype=np.int64).reshape(len(x_int), -1).astype("<i4").tofile(fin)
    proc = subprocess.run([str(exe), str(fin), str(len(x_int)), str(int(repeats))], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{exe.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return float(proc.stdout.split()[0])


def run_hls(hw, src_dir: Path, build_dir: Path, x_int: np.ndarray, progress: Progress) -> SimRun:
    """C simulation of the HLS C++ backend with plain g++ (no vendor headers)."""
    return run(HLS, "hls", hw, src_dir, build_dir, x_int, progress)


def run_dynamic_c(src_dir: Path, build_dir: Path, x: np.ndarray, n_out: int, float_out: bool = False):
    """Compile ``nnforge_dynamic.c`` with the harness (gcc -std=c99 -pedantic -Werror; in the
    private build cache, see :func:`build`) and run
    the float samples ``x`` (batch first) through ``nnforge_run_dynamic``. Returns
    ``(y, frac)``: ``(N, n_out)`` int64 and ``(N,)`` int64; with ``float_out`` also the
    ``(N, n_out)`` float32 results of ``nnforge_run_dynamic_float``. ``build_dir`` holds
    the run's input and output files."""
    src_dir, build_dir = Path(src_dir), Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build("gcc", [src_dir / "nnforge_dynamic.c", HARNESS / "dynamic_harness.c"], src_dir, build_dir,
                C_FLAGS, QUIET, libs=("-lm",))
    x32 = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))
    n = len(x32)
    fin, fout, ffrac, ffloat = (build_dir / f for f in ("dyn_in.bin", "dyn_out.bin", "dyn_frac.bin",
                                                         "dyn_float.bin"))
    x32.astype("<f4").tofile(fin)
    cmd = [str(exe), str(fin), str(fout), str(ffrac), str(n)] + ([str(ffloat)] if float_out else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError(f"{exe.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    y = np.fromfile(fout, dtype="<i8").astype(np.int64)
    frac = np.fromfile(ffrac, dtype="<i4").astype(np.int64)
    if y.size != n * n_out or frac.size != n:
        raise ToolError(f"{exe.name} wrote {y.size} values and {frac.size} fracs, expected {n * n_out} and {n}")
    if not float_out:
        return y.reshape(n, n_out), frac
    yf = np.fromfile(ffloat, dtype="<f4")
    if yf.size != n * n_out:
        raise ToolError(f"{exe.name} wrote {yf.size} float values, expected {n * n_out}")
    return y.reshape(n, n_out), frac, yf.reshape(n, n_out)
