"""GlobalAveragePool: the mean over every spatial axis; per-sample ``(C, *S)`` -> ``(C, 1, ...)``.

Integer: the output type is the input type; with ``count = prod(S)`` and the exact int64
``sum`` over the spatial axes, the division rounds half up (``//`` is floor division)::

    y = (2 * sum + count) // (2 * count)          == floor(sum / count + 1/2)
"""

import numpy as np

from ..fixed import saturate
from .avgpool import div_round_half_up
from .base import OpDef, Traits, keeps_scale
from .window import global_pool_shape

ATTRS: dict = {}


def shape(attrs, in_shapes):
    return global_pool_shape("GlobalAveragePool", in_shapes)


def _axes(x):
    return tuple(range(2, x.ndim))


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float64)
    return [x.mean(axis=_axes(x), keepdims=True).astype(np.float32)]


def int_ref(node, g, inputs):
    x = np.asarray(inputs[0], dtype=np.int64)
    count = int(np.prod(x.shape[2:]))
    s = x.sum(axis=_axes(x), keepdims=True)
    return [saturate(div_round_half_up(s, count), g.qtype(node.outputs[0]))]


def float16_ref(node, g, inputs):
    """float16 / bfloat16: ``acc = +0``, ``acc = acc + x`` over the positions in row-major
    order (fp32 steps), then ``narrow(acc * r)`` with the fp32 constant ``r = fp32(1 / count)``."""
    fmt = g.qtype(node.outputs[0]).format
    xf = fmt.widen(inputs[0])
    flat = xf.reshape(xf.shape[0], xf.shape[1], -1)
    acc = np.zeros(flat.shape[:2], dtype=np.float32)
    for p in range(flat.shape[2]):
        acc = acc + flat[:, :, p]
    y = fmt.finite(acc, "GlobalAveragePool") * np.float32(1.0 / flat.shape[2])
    return [fmt.narrow(y).reshape(xf.shape[:2] + (1,) * (xf.ndim - 2))]


DEF = OpDef(name="GlobalAveragePool", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="mean",
            float16_ref=float16_ref, dynamic_ref=keeps_scale(int_ref), attrs=ATTRS,
            traits=Traits(channelwise=True, keeps_type=True), arith="mean", doc="mean over the spatial axes")
