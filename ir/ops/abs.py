"""Abs: ``|x|``.

ONNX Abs (no attributes).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type comes from calibration
like any activation.
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    return np.abs(np.asarray(x, dtype=np.float64))


DEF = table_op("Abs", function, ATTRS, onnx="Abs", doc="absolute value")
