"""Softplus: ``log(exp(x) + 1)``.

ONNX Softplus (no attributes).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type comes from calibration
like any activation.
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))  # without overflow


DEF = table_op("Softplus", function, ATTRS, onnx="Softplus", doc="softplus")
