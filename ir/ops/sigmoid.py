"""Sigmoid: ``1 / (1 + exp(-x))``.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(sigmoid(dequantize(i)))``. The output type is unsigned
``act_bits`` wide with the largest frac that still holds 1.0.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + e^-x) without overflow


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="Sigmoid", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function,
            value_range=(0.0, 1.0), attrs=ATTRS, traits=Traits(table=True, elementwise=True, channelwise=True),
            doc="logistic sigmoid")
