"""Elementwise Add with numpy broadcasting (per sample).

Integer reference: both operands are brought to the finer scale exactly (left shift),
added, then requantized to the output type with the contract's rule.
"""

import numpy as np

from ..fixed import requantize, round_shift

OP = "Add"
ATTRS: dict = {}


def shape(attrs, in_shapes):
    return [tuple(np.broadcast_shapes(*in_shapes))]


def float_ref(attrs, inputs):
    return [(inputs[0] + inputs[1]).astype(np.float32)]


def int_ref(node, g, inputs):
    ta, tb = g.qtype(node.inputs[0]), g.qtype(node.inputs[1])
    f = max(ta.frac, tb.frac)
    acc = round_shift(inputs[0], ta.frac - f) + round_shift(inputs[1], tb.frac - f)
    return [requantize(acc, f, g.qtype(node.outputs[0]))]
