"""The HLS C++ backend: a Vitis HLS top function with interface, dataflow, pipeline and
partial-unroll pragmas, a C-simulation testbench and a Vitis HLS Tcl script. The same
source compiles with plain g++ (no vendor headers) for bit-exact C simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .c import _join, model_context
from .lower import HwModel
from .render import render

TARGET = "hls"
DEFAULT_PART = "xc7z020clg400-1"
DEFAULT_CLOCK_NS = 10.0


def unroll_factor(n_in: int, limit: int = 8) -> int:
    """Inputs multiplied per cycle in a neuron: the largest divisor of n_in up to limit."""
    return max(d for d in range(1, min(limit, n_in) + 1) if n_in % d == 0)


def write(hw: HwModel, outdir: Path, tb_x: np.ndarray, tb_y: np.ndarray,
          part: str = DEFAULT_PART, clock_ns: float = DEFAULT_CLOCK_NS) -> list[Path]:
    """Write the HLS sources; ``tb_x`` / ``tb_y`` (integer vectors and their golden
    outputs) become the C-simulation testbench's vectors."""
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = model_context(hw, softmax=False)
    for layer in ctx["layers"]:
        layer["simd"] = unroll_factor(layer["n_in"])
    samples = [{"x": _join(np.ravel(x)), "y": _join(np.ravel(y))} for x, y in zip(tb_x, tb_y, strict=True)]
    files = {
        "nnforge_hls.h": render("hls", "nnforge_hls.h.j2", **ctx),
        "nnforge_hls.cpp": render("hls", "nnforge_hls.cpp.j2", **ctx),
        "tb_nnforge_hls.cpp": render("hls", "tb_nnforge_hls.cpp.j2"),
        "tb_vectors.h": render("hls", "tb_vectors.h.j2", samples=samples),
        "run_hls.tcl": render("hls", "run_hls.tcl.j2", part=part, clock_ns=clock_ns),
    }
    paths = []
    for name, text in files.items():
        (outdir / name).write_text(text)
        paths.append(outdir / name)
    return paths
