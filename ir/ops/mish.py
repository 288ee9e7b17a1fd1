"""Mish: ``x * tanh(softplus(x))`` with ``softplus(x) = log(exp(x) + 1)``.

ONNX Mish (opset 18, no attributes); also what ``Mul(x, Tanh(Softplus(x)))`` becomes (:mod:`nnforge.passes.rules`).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type comes from calibration
like any activation.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return x * np.tanh(np.logaddexp(0.0, x))


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="Mish", onnx="Mish", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function, attrs=ATTRS,
            traits=Traits(table=True, elementwise=True, channelwise=True), doc="x * tanh(softplus(x))")
