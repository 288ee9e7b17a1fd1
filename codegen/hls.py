"""The HLS C++ backend: a Vitis HLS top function with interface, dataflow, pipeline and
partial-unroll pragmas, a C-simulation testbench and a Vitis HLS Tcl script. The same
source compiles with plain g++ (no vendor headers) for bit-exact C simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .c import _join
from .lower import LOWERABLE_OPS, HwModel, c_int_type
from .render import render

TARGET = "hls"
DEFAULT_PART = "xc7z020clg400-1"
DEFAULT_CLOCK_NS = 10.0
SUPPORTED_OPS = LOWERABLE_OPS


def layer_context(hw: HwModel) -> tuple[list[dict], list[dict]]:
    """Per-layer numbers and the static activation buffers of the Dense chain."""
    layers, buffers = [], []
    for i, l in enumerate(hw.layers):
        last = i == len(hw.layers) - 1
        in_ctype = c_int_type(l.in_t.width, l.in_t.signed)
        out_ctype = c_int_type(l.out_t.width, l.out_t.signed)
        dst = "out" if last else f"nnf_buf{i}"
        if not last:
            buffers.append({"name": dst, "ctype": out_ctype, "size": l.n_out})
        layers.append({
            "name": l.name, "n_in": l.n_in, "n_out": l.n_out, "w_t": str(l.w_t),
            "acc_width": l.acc_width, "shift": l.shift, "lo": l.lo, "hi": l.hi,
            "in_ctype": in_ctype, "out_ctype": out_ctype,
            "w_ctype": c_int_type(l.w_t.width, True),
            "b_ctype": c_int_type(l.bias_width, True),
            "acc_ctype": "int32_t" if l.acc_width <= 32 else "int64_t",
            "weight_rows": [_join(row) for row in l.weights],
            "weights_flat": _join(np.asarray(l.weights).reshape(-1)),
            "bias_list": _join(l.bias),
            "src": "in" if i == 0 else f"nnf_buf{i - 1}",
            "dst": dst,
        })
    return layers, buffers


def model_context(hw: HwModel, softmax: bool) -> dict:
    layers, buffers = layer_context(hw)
    return {
        "model": hw.name, "n_in": hw.n_in, "n_out": hw.n_out,
        "in_t": str(hw.in_t), "out_t": str(hw.out_t),
        "in_frac": hw.in_t.frac, "out_frac": hw.out_t.frac,
        "in_lo": hw.in_t.lo, "in_hi": hw.in_t.hi,
        "in_ctype": c_int_type(hw.in_t.width, hw.in_t.signed),
        "out_ctype": c_int_type(hw.out_t.width, hw.out_t.signed),
        "softmax": softmax, "layers": layers, "buffers": buffers,
    }


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
