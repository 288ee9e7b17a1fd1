"""Sqrt: ``sqrt(x)``.

ONNX Sqrt (no attributes). The float reference is ONNX's exactly: NaN below 0.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(sqrt(dequantize(i)))``, built over the input type's whole
range. Where ``sqrt`` is not defined the table *saturates*: every input ``< 0`` gives 0
(``sqrt``'s value at the end of its domain). The output type comes from calibration like
any activation.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    return np.sqrt(np.maximum(np.asarray(x, dtype=np.float64), 0.0))


def float_ref(attrs, inputs):
    with np.errstate(invalid="ignore"):
        return [np.sqrt(np.asarray(inputs[0], dtype=np.float32))]


DEF = OpDef(name="Sqrt", onnx="Sqrt", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function, attrs=ATTRS,
            traits=Traits(table=True, elementwise=True, channelwise=True), doc="square root")
