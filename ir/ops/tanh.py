"""Tanh. Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]``
with ``table[i] = quantize_float(tanh(dequantize(i)))``; the output type is signed
``act_bits`` wide with the largest frac that still holds 1.0."""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    return np.tanh(np.asarray(x, dtype=np.float64))


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="Tanh", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function,
            value_range=(-1.0, 1.0), attrs=ATTRS,
            traits=Traits(table=True, elementwise=True, channelwise=True), doc="hyperbolic tangent")
