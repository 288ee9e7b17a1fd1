"""Elementwise Mul with numpy broadcasting (per sample), e.g. by a per-channel constant.

Integer: the exact product of the integers has scale ``frac(a) + frac(b)``; it is
requantized to the output type with the contract's rule.
"""

import numpy as np

from ..fixed import requantize
from .base import OpDef, Traits

ATTRS: dict = {}


def shape(attrs, in_shapes):
    return [tuple(np.broadcast_shapes(*in_shapes))]


def float_ref(attrs, inputs):
    return [(np.asarray(inputs[0], dtype=np.float32) * np.asarray(inputs[1], dtype=np.float32))]


def int_ref(node, g, inputs):
    frac = g.qtype(node.inputs[0]).frac + g.qtype(node.inputs[1]).frac
    prod = np.asarray(inputs[0], dtype=np.int64) * np.asarray(inputs[1], dtype=np.int64)
    return [requantize(prod, frac, g.qtype(node.outputs[0]))]


DEF = OpDef(name="Mul", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="product", attrs=ATTRS,
            traits=Traits(elementwise=True, join=True, weights=True), arith="multiply", doc="elementwise product")
