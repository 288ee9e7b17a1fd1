"""Softmax over one per-sample axis (ONNX opset >= 13 semantics).

At the end of a classifier it is monotonic, so the integer model outputs the logits and
the float wrapper applies softmax; the quantizer records that (see passes/quantize.py).
It has no integer reference of its own.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"axis": -1}


def shape(attrs, in_shapes):
    return [in_shapes[0]]


def float_ref(attrs, inputs):
    x = inputs[0].astype(np.float64)
    axis = attrs.get("axis", -1)
    axis = axis + 1 if axis >= 0 else axis  # per-sample axis -> batched axis
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [(e / e.sum(axis=axis, keepdims=True)).astype(np.float32)]


DEF = OpDef(name="Softmax", shape=shape, float_ref=float_ref, attrs=ATTRS,
            traits=Traits(float_only=True), doc="softmax over one axis")
