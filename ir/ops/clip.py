"""Clip: ``min(max(x, min), max)`` with constant bounds (either may be absent); ONNX's
``min > max`` case gives ``max`` everywhere, as here. Relu6 is ``Clip(0, 6)``.

Integer: the quantizer rounds each bound to the *input* type with the contract's rule
(``lo_q = quantize_float(min, type(x))``, saturated; an absent bound is the type's end) and
the op clamps the integers: ``y = min(max(x, lo_q), hi_q)``. The output keeps the input's
width and frac (unsigned when ``lo_q >= 0``, which cannot lose a value). Since rounding is
monotonic and ``x`` is on the grid, this equals quantizing the float result exactly.
"""

import numpy as np

from ..fixed import saturate
from .base import OpDef, Traits

ATTRS = {"min": None, "max": None, "lo_q": None, "hi_q": None}


def shape(attrs, in_shapes):
    return [in_shapes[0]]


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    lo, hi = attrs.get("min"), attrs.get("max")
    if lo is not None:
        x = np.maximum(x, np.float32(lo))
    if hi is not None:
        x = np.minimum(x, np.float32(hi))
    return [x.astype(np.float32)]


def int_ref(node, g, inputs):
    lo, hi = node.attr("lo_q"), node.attr("hi_q")
    if lo is None or hi is None:
        raise ValueError(f"node {node.name!r} (Clip) was not quantized")
    y = np.minimum(np.maximum(np.asarray(inputs[0], dtype=np.int64), int(lo)), int(hi))
    return [saturate(y, g.qtype(node.outputs[0]))]


DEF = OpDef(name="Clip", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="bounds", attrs=ATTRS,
            traits=Traits(elementwise=True, channelwise=True), arith="clamp", doc="clamp to constant bounds")
