"""GlobalMaxPool: the maximum over every spatial axis; per-sample ``(C, *S)`` -> ``(C, 1, ...)``.

Integer: the same maximum of the integers; the output type is the input type.
"""

import numpy as np

from .base import OpDef, Traits, keeps_scale
from .window import global_pool_shape

ATTRS: dict = {}


def shape(attrs, in_shapes):
    return global_pool_shape("GlobalMaxPool", in_shapes)


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


def int_ref(node, g, inputs):
    x = np.asarray(inputs[0], dtype=np.int64)
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


DEF = OpDef(name="GlobalMaxPool", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep",
            dynamic_ref=keeps_scale(int_ref), attrs=ATTRS, traits=Traits(channelwise=True, keeps_type=True),
            arith="max", doc="maximum over the spatial axes")
