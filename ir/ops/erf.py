"""Erf: the error function ``erf(x) = 2 / sqrt(pi) * integral_0^x exp(-t^2) dt``.

ONNX Erf (no attributes). Exporters write GELU as ``0.5 * x * (1 + erf(x / sqrt(2)))``,
which becomes one :mod:`.gelu` node (:mod:`nnforge.passes.rules`); a lone Erf stays.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(erf(dequantize(i)))``; the output type is signed
``act_bits`` wide with the largest frac that still holds 1.0 (``value_range``).
"""

import math

import numpy as np

from .table import table_op

ATTRS: dict = {}

_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x) -> np.ndarray:
    """``erf`` of every value, in float64 (the C library's, through :func:`math.erf`)."""
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(_ERF(x), dtype=np.float64).reshape(x.shape)


def function(attrs, x):
    return erf(x)


DEF = table_op("Erf", function, ATTRS, onnx="Erf", value_range=(-1.0, 1.0), doc="error function")
