"""ThresholdedRelu: ``x`` where ``x > alpha``, else 0.

ONNX ThresholdedRelu (opset 10); default ``alpha = 1.0``.

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]`` with
``table[i] = quantize_float(f(dequantize(i)))``; the output type comes from calibration
like any activation.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS = {"alpha": 1.0}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > float(attrs.get("alpha", 1.0)), x, 0.0)


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="ThresholdedRelu", onnx="ThresholdedRelu", shape=shape, float_ref=float_ref, int_ref=int_ref,
            function=function, attrs=ATTRS, traits=Traits(table=True, elementwise=True, channelwise=True),
            doc="x above alpha, else 0")
