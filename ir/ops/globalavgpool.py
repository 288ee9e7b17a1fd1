"""GlobalAveragePool: the mean over every spatial axis; per-sample ``(C, *S)`` -> ``(C, 1, ...)``.

Integer: the output type is the input type; with ``count = prod(S)`` and the exact int64
``sum`` over the spatial axes, the division rounds half up (``//`` is floor division)::

    y = (2 * sum + count) // (2 * count)          == floor(sum / count + 1/2)
"""

import numpy as np

from ..fixed import saturate
from ._window import global_pool_shape
from .avgpool import div_round_half_up

OP = "GlobalAveragePool"
ATTRS: dict = {}


def shape(attrs, in_shapes):
    return global_pool_shape(OP, in_shapes)


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
