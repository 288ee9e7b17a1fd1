"""Neg: ``-x``.

ONNX Neg (no attributes).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type comes from calibration
like any activation.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    return -np.asarray(x, dtype=np.float64)


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="Neg", onnx="Neg", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function, attrs=ATTRS,
            traits=Traits(table=True, elementwise=True, channelwise=True), doc="negation")
