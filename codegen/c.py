"""The C backend: C99 for microcontrollers, no malloc, static buffers, const weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .lower import HwModel, c_int_type
from .render import render

TARGET = "c"
FILES = ("nnforge_model.h", "nnforge_model.c")


def _join(values) -> str:
    return ", ".join(str(int(v)) for v in values)


def layer_context(hw: HwModel) -> tuple[list[dict], list[dict]]:
    """Per-layer numbers and the static activation buffers (shared with the HLS backend)."""
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


def write(hw: HwModel, outdir: Path, softmax: bool = False) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = model_context(hw, softmax)
    paths = []
    for name in FILES:
        path = outdir / name
        path.write_text(render("c", name + ".j2", **ctx))
        paths.append(path)
    return paths
