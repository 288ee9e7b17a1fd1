"""HardSigmoid: ``max(0, min(1, alpha * x + beta))`` (ONNX defaults alpha 0.2, beta 0.5).

Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]``; the
output type is unsigned ``act_bits`` wide with the largest frac that still holds 1.0.
"""

import numpy as np

from .base import OpDef, Traits
from .table import int_ref, shape

ATTRS = {"alpha": 0.2, "beta": 0.5}


def function(attrs, x):
    a, b = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    # float32 arithmetic as onnxruntime (alpha * x + beta in float32)
    x32 = np.asarray(x, dtype=np.float32)
    return np.clip(np.float32(a) * x32 + np.float32(b), 0, 1).astype(np.float64)


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]


DEF = OpDef(name="HardSigmoid", shape=shape, float_ref=float_ref, int_ref=int_ref, function=function,
            value_range=(0.0, 1.0), attrs=ATTRS, traits=Traits(table=True, elementwise=True, channelwise=True),
            doc="piecewise-linear sigmoid")
