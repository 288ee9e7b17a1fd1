"""Gemm (ONNX semantics, per sample): ``Y = alpha * A @ op(B) + beta * C``.

A is the activation (per-sample shape ``(K,)``, so transA is not allowed), B is
``(K, N)`` or ``(N, K)`` when ``transB``, C broadcasts to ``(N,)``. Canonicalized into
``Dense`` before quantization, so it has no integer reference.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"alpha": 1.0, "beta": 1.0, "transB": 0}


def shape(attrs, in_shapes):
    (k,), b = in_shapes[0], in_shapes[1]
    bk, n = (b[1], b[0]) if attrs.get("transB", 0) else b
    if bk != k:
        raise ValueError(f"Gemm: A has {k} columns but B has {bk} rows")
    return [(n,)]


def float_ref(attrs, inputs):
    a, b = inputs[0], inputs[1]
    if attrs.get("transB", 0):
        b = b.T
    y = attrs.get("alpha", 1.0) * (a @ b)
    if len(inputs) > 2:
        y = y + attrs.get("beta", 1.0) * inputs[2]
    return [y.astype(np.float32)]


DEF = OpDef(name="Gemm", shape=shape, float_ref=float_ref,
            refusal="Gemm should have become Dense (a canonicalization pass is missing)", attrs=ATTRS,
            traits=Traits(float_only=True), doc="general matrix multiply (becomes Dense)")
