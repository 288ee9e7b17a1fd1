"""HardSwish: ``x * max(0, min(1, x / 6 + 0.5))`` (ONNX opset 14).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]``; the
output type comes from calibration like any activation.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="HardSwish", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function,
            attrs=ATTRS, traits=Traits(table=True, elementwise=True, channelwise=True),
            doc="x times a hard sigmoid")
