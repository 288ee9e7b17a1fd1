"""Exp: ``e**x``.

ONNX Exp (no attributes). The float reference overflows to ``inf`` as ONNX does.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(exp(dequantize(i)))``; the output type comes from calibration
like any activation, and inputs above the calibrated range saturate at its largest value
(an ``exp`` beyond float64's range counts as the largest float64).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}
BIG = float(np.finfo(np.float64).max)  # stands for +inf in a table: it saturates


def function(attrs, x):
    with np.errstate(over="ignore"):
        return np.minimum(np.exp(np.asarray(x, dtype=np.float64)), BIG)


def float_ref(attrs, inputs):
    with np.errstate(over="ignore"):
        return [np.exp(np.asarray(inputs[0], dtype=np.float64)).astype(np.float32)]


DEF = table_op("Exp", function, ATTRS, onnx="Exp", doc="exponential", float_ref=float_ref)
