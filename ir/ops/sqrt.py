"""Sqrt: ``sqrt(x)``.

ONNX Sqrt (no attributes). The float reference is ONNX's exactly: NaN below 0.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(sqrt(dequantize(i)))``, built over the input type's whole
range. Where ``sqrt`` is not defined the table *saturates*: every input ``< 0`` gives 0
(``sqrt``'s value at the end of its domain). The output type comes from calibration like
any activation.
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    return np.sqrt(np.maximum(np.asarray(x, dtype=np.float64), 0.0))


def float_ref(attrs, inputs):
    with np.errstate(invalid="ignore"):
        return [np.sqrt(np.asarray(inputs[0], dtype=np.float32))]


DEF = table_op("Sqrt", function, ATTRS, onnx="Sqrt", doc="square root", float_ref=float_ref)
