"""Log: the natural logarithm ``ln(x)``.

ONNX Log (no attributes). The float reference is ONNX's exactly: ``-inf`` at 0, NaN below.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(ln(dequantize(i)))``, built over the input type's whole range
(an unsigned type always holds 0). Where ``ln`` is not finite the table *saturates*: every
input ``<= 0`` gives the output type's smallest value (``ln``'s limit at ``0+``). The
output type comes from calibration like any activation, so a model whose calibrated input
really reaches 0 or below computes ``-inf`` / NaN in float and the type's smallest value in
integer.
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}
BIG = float(np.finfo(np.float64).max)  # stands for -inf in a table: it saturates


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -BIG)


def float_ref(attrs, inputs):
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.log(np.asarray(inputs[0], dtype=np.float64)).astype(np.float32)]


DEF = table_op("Log", function, ATTRS, onnx="Log", doc="natural logarithm", float_ref=float_ref)
