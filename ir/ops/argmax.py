"""ArgMax at the model output: the index of the largest value along ``axis`` of a sample.

Attributes as ONNX: ``axis`` (here an axis of the per-sample shape; the frontend refuses
the batch axis), ``keepdims``, ``select_last_index`` (ties: the first index, or the last
one when set).

Float and integer: the same index computation (on the float values, on the integers),
int64 results. Once quantized the output is the index itself: an unsigned integer type of
scale 1 wide enough for ``extent - 1``, so every target's output is the index and its float
view is the same number. The integer form exists only as the graph's last op; the
quantizer refuses it anywhere else.
"""

from __future__ import annotations

import numpy as np

from ..fixed import FixedType
from .base import OpDef

ATTRS: dict = {"axis": 0, "keepdims": True, "select_last_index": False}


def _axis(attrs, rank: int) -> int:
    a = int(attrs.get("axis", 0))
    if not 0 <= a < rank:
        raise ValueError(f"ArgMax axis {a} is not an axis of the {rank}-axis sample")
    return a


def shape(attrs, in_shapes):
    x = tuple(in_shapes[0])
    a = _axis(attrs, len(x))
    return [x[:a] + ((1,) if attrs.get("keepdims", True) else ()) + x[a + 1:]]


def argmax(attrs, x: np.ndarray) -> np.ndarray:
    """The index along the axis on a batched array; ties as ONNX."""
    a = _axis(attrs, x.ndim - 1) + 1
    if attrs.get("select_last_index", False):
        idx = x.shape[a] - 1 - np.argmax(np.flip(x, axis=a), axis=a)
    else:
        idx = np.argmax(x, axis=a)
    if attrs.get("keepdims", True):
        idx = np.expand_dims(idx, a)
    return idx.astype(np.int64)


def float_ref(attrs, inputs):
    return [argmax(attrs, np.asarray(inputs[0], dtype=np.float32))]


def int_ref(node, g, inputs):
    return [argmax(node.attrs, np.asarray(inputs[0], dtype=np.int64))]


def index_type(extent: int) -> FixedType:
    """The output type: unsigned, scale 1, holding ``0 .. extent - 1``."""
    return FixedType(max(1, (extent - 1).bit_length()), 0, signed=False)


def quantize(q, node, ctx) -> None:
    out = node.outputs[0]
    if out not in q.outputs or q.consumers(out):
        raise ctx.refuse(node, "ArgMax is supported only as the last op of the model (its output is an index, "
                               "not a value later layers could read)")
    q.set_qtype(out, index_type(q.shape(node.inputs[0])[_axis(node.attrs, len(q.shape(node.inputs[0])))]))


DEF = OpDef(name="ArgMax", shape=shape, float_ref=float_ref, int_ref=int_ref, quantize=quantize, attrs=ATTRS,
            arith="max", doc="index of the maximum along an axis (the model's last op)")
