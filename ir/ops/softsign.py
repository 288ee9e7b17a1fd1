"""Softsign: ``x / (1 + |x|)``.

ONNX Softsign (no attributes).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type is signed
``act_bits`` wide with the largest frac that still holds 1.0 (``value_range``).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.abs(x))


DEF = table_op("Softsign", function, ATTRS, onnx="Softsign", value_range=(-1.0, 1.0), doc="softsign")
