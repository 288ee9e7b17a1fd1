"""Reciprocal: ``1 / x``.

ONNX Reciprocal (no attributes). The float reference is ONNX's exactly: ``+inf`` at
``+0`` (``-inf`` at ``-0``).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(1 / dequantize(i))``, built over the input type's whole range,
which holds 0. There the table *saturates*: the input 0 gives the output type's largest
value (``1 / +0 = +inf``). The output type comes from calibration like any activation, so
values of ``1 / x`` beyond the calibrated range saturate too.
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}
BIG = float(np.finfo(np.float64).max)  # stands for +inf in a table: it saturates


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x != 0, 1.0 / np.where(x != 0, x, 1.0), BIG)


def float_ref(attrs, inputs):
    with np.errstate(divide="ignore"):
        return [(np.float32(1.0) / np.asarray(inputs[0], dtype=np.float32)).astype(np.float32)]


DEF = table_op("Reciprocal", function, ATTRS, onnx="Reciprocal", doc="reciprocal", float_ref=float_ref)
