"""MaxPool over 1-D or 2-D windows (per-sample ``(C, L)`` or ``(C, H, W)``).

Attributes as ONNX: ``kernel_shape``, ``strides``, ``pads`` (begins then ends),
``dilations``, ``ceil_mode``; ``auto_pad`` is resolved to ``pads`` by the frontend.

Float: the maximum of each window; padded cells (and the ceil-mode overhang) hold
``-inf`` so they never win.

Integer: the same maximum on the integers, with padded cells at the smallest int64, so
they never win either; the output type is the input type, so no rounding happens (the
final saturate only matters for a window made of padding alone).
"""

import numpy as np

from ..fixed import saturate
from .base import OpDef, Traits, keeps_scale
from .window import patches, pool_geometry, pool_shape

ATTRS = {"kernel_shape": (), "strides": (), "pads": (), "dilations": (), "ceil_mode": False}


def shape(attrs, in_shapes):
    return pool_shape("MaxPool", attrs, in_shapes)


def _pool(attrs, x, fill):
    return patches(x, *pool_geometry(attrs, x.shape[2:]), fill=fill).max(axis=2)


def float_ref(attrs, inputs):
    return [_pool(attrs, np.asarray(inputs[0], dtype=np.float32), -np.inf).astype(np.float32)]


def int_ref(node, g, inputs):
    y = _pool(node.attrs, np.asarray(inputs[0], dtype=np.int64), np.iinfo(np.int64).min)
    return [saturate(y, g.qtype(node.outputs[0]))]


def float16_ref(node, g, inputs):
    """float16 / bfloat16: the maximum of the widened values (exact; padding never wins)."""
    fmt = g.qtype(node.outputs[0]).format
    return [fmt.narrow(_pool(node.attrs, fmt.widen(inputs[0]), -np.inf))]


DEF = OpDef(name="MaxPool", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep",
            float16_ref=float16_ref, dynamic_ref=keeps_scale(int_ref), attrs=ATTRS,
            traits=Traits(channelwise=True, keeps_type=True, window=True), arith="max", doc="maximum over windows")
