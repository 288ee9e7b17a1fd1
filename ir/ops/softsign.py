"""Softsign: ``x / (1 + |x|)``.

ONNX Softsign (no attributes).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type is signed
``act_bits`` wide with the largest frac that still holds 1.0 (``value_range``).
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.abs(x))


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="Softsign", onnx="Softsign", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function, attrs=ATTRS,
            value_range=(-1.0, 1.0),
            traits=Traits(table=True, elementwise=True, channelwise=True), doc="softsign")
