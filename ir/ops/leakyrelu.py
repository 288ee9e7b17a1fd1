"""LeakyRelu: ``x`` for ``x >= 0``, ``alpha * x`` otherwise (ONNX default alpha 0.01).

Integer: the quantizer turns ``alpha`` into a multiplier ``mult`` with a power-of-two scale
``2**-mult_frac`` (``mult = quantize_float(alpha)`` in a signed ``weight_bits`` type, the
largest ``mult_frac >= 0`` that keeps it unsaturated). Both branches are brought to the
scale ``acc_frac = frac(x) + mult_frac`` exactly and requantized with the contract's rule::

    acc = x * 2**mult_frac     if x >= 0
        = x * mult             if x <  0
    y   = saturate(round_half_up(acc >> (acc_frac - frac(y))))
"""

import numpy as np

from ..fixed import requantize
from .base import OpDef, Traits

ATTRS = {"alpha": 0.01, "mult": None, "mult_frac": None}


def shape(attrs, in_shapes):
    return [in_shapes[0]]


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    return [np.where(x >= 0, x, x * np.float32(attrs.get("alpha", 0.01))).astype(np.float32)]


def int_ref(node, g, inputs):
    mult, mf = node.attr("mult"), node.attr("mult_frac")
    if mult is None or mf is None:
        raise ValueError(f"node {node.name!r} (LeakyRelu) was not quantized")
    x = np.asarray(inputs[0], dtype=np.int64)
    acc = np.where(x >= 0, x << np.int64(mf), x * np.int64(mult))
    return [requantize(acc, g.qtype(node.inputs[0]).frac + int(mf), g.qtype(node.outputs[0]))]


DEF = OpDef(name="LeakyRelu", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="multiplier",
            attrs=ATTRS, traits=Traits(elementwise=True, channelwise=True), arith="select_multiply",
            doc="x, or alpha * x below 0")
