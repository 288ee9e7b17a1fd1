"""AveragePool over 1-D or 2-D windows (per-sample ``(C, L)`` or ``(C, H, W)``).

Attributes as ONNX: ``kernel_shape``, ``strides``, ``pads`` (begins then ends),
``dilations``, ``ceil_mode``, ``count_include_pad``; ``auto_pad`` is resolved to ``pads``
by the frontend.

Float: the sum of the input cells of each window (pads hold 0) divided by ``count``:
the number of window cells inside the input (``count_include_pad = 0``) or inside the
input plus its explicit pads (``count_include_pad = 1``); cells of the ceil-mode
overhang past the end pads never count.

Integer: the output type is the input type. ``sum`` is exact in int64, then the division
rounds half up, in integers (``//`` is floor division, as Python and numpy define it)::

    y = (2 * sum + count) // (2 * count)          == floor(sum / count + 1/2)
"""

import numpy as np

from ..fixed import saturate
from .base import OpDef, Traits, keeps_scale
from .window import patches, pool_geometry, pool_shape, window_counts

ATTRS = {"kernel_shape": (), "strides": (), "pads": (), "dilations": (), "ceil_mode": False,
         "count_include_pad": False}


def shape(attrs, in_shapes):
    return pool_shape("AveragePool", attrs, in_shapes)


def _sum_count(attrs, x):
    geo = pool_geometry(attrs, x.shape[2:])
    s = patches(x, *geo, fill=0).sum(axis=2)
    count = window_counts(x.shape[2:], *geo, include_pad=bool(attrs.get("count_include_pad")))
    return s, count


def div_round_half_up(total: np.ndarray, count) -> np.ndarray:
    """``floor(total / count + 1/2)`` in integers: ``(2*total + count) // (2*count)``."""
    total = np.asarray(total, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    return (2 * total + count) // (2 * count)


def float_ref(attrs, inputs):
    s, count = _sum_count(attrs, np.asarray(inputs[0], dtype=np.float64))
    return [(s / count).astype(np.float32)]


def int_ref(node, g, inputs):
    s, count = _sum_count(node.attrs, np.asarray(inputs[0], dtype=np.int64))
    return [saturate(div_round_half_up(s, count), g.qtype(node.outputs[0]))]


DEF = OpDef(name="AveragePool", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="mean",
            dynamic_ref=keeps_scale(int_ref), attrs=ATTRS,
            traits=Traits(channelwise=True, keeps_type=True, window=True), arith="mean", doc="average over windows")
