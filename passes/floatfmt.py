"""Run a float32 model in float16 or bfloat16 (the contract: :mod:`nnforge.ir.floats`).

``to_float(f, fmt)`` copies the float graph; every weight and bias becomes its ``fmt``
bit pattern (round to nearest even, saturated, -0 stored as +0) and every tensor gets
the type ``fmt``. Nothing is calibrated: a float format needs no ranges. A layer whose
float32 accumulator could overflow (weights beyond any trained model's) is refused.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.floats import FLOAT_OPS, FORMATS, check_range, float_type, from_f32, to_f32
from ..ir.ops import op_def


class FloatFormatError(ValueError):
    """The graph has an op (or weights) the float16 / bfloat16 contract does not cover."""


def to_float(f: Graph, fmt: str) -> Graph:
    if fmt not in FORMATS:
        raise FloatFormatError(f"--float must be one of {', '.join(FORMATS)}, got {fmt!r}")
    ff = FORMATS[fmt]
    bad = sorted({n.op for n in f.topo()} - FLOAT_OPS)
    if bad:
        raise FloatFormatError(f"float16 / bfloat16 runs {', '.join(sorted(FLOAT_OPS))}; this model also has "
                               f"{', '.join(bad)}")
    g = f.copy()
    t = float_type(fmt)
    for node in g.topo():
        if op_def(node.op).has(linear=True):
            w, b = node.inputs[1], node.inputs[2]
            for c in (w, b):
                g.consts[c] = from_f32(np.asarray(f.consts[c], dtype=np.float32), ff)
            check_range(g.consts[w], g.consts[b], ff, f"{node.op} {node.name!r}")
        elif any(g.is_const(i) for i in node.inputs):
            raise FloatFormatError(f"{node.op} {node.name!r} has a constant operand; float16 / bfloat16 "
                                   "takes constants only as Dense / Conv weights")
    for name in g.tensors:
        g.set_qtype(name, t)
    g.meta = dict(g.meta, float_format=fmt)
    g.verify()
    return g


def parse_neuzip(spec: str | None) -> tuple[str, int]:
    """``None`` -> ("", 0); ``lossless`` -> ("lossless", 0); ``lossy:K`` -> ("lossy", K)."""
    if spec is None or spec == "":
        return "", 0
    if spec == "lossless":
        return "lossless", 0
    if spec.startswith("lossy:"):
        try:
            k = int(spec[6:])
        except ValueError:
            k = -1
        if 1 <= k <= 10:
            return "lossy", k
    raise ValueError(f"--neuzip must be 'lossless' or 'lossy:K' with K mantissa bits 1..10, got {spec!r}")


LOSSY_BLOCK = 32  # weights sharing one scale in NeuZip lossy storage


def lossy_weights(q: Graph, k: int) -> Graph:
    """Every Dense / Conv weight as NeuZip lossy storage keeps it: ``K`` mantissa bits
    under one power-of-two scale per block of :data:`LOSSY_BLOCK` (row-major), then
    narrowed to the graph's float format (exact when K + 1 fits its significand)."""
    from .neuzip import lossy_values

    fmt = q.qtype(q.inputs[0]).format
    g = q.copy()
    for node in g.topo():
        if op_def(node.op).has(linear=True):
            w = node.inputs[1]
            vals = lossy_values(to_f32(g.consts[w], fmt).reshape(-1), k, LOSSY_BLOCK)
            g.consts[w] = from_f32(vals, fmt).reshape(g.consts[w].shape)
    g.meta = dict(g.meta, neuzip=f"lossy:{k}")
    return g
