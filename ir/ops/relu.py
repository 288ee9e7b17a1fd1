"""Relu: ``max(x, 0)``. Integer reference: ``max(x, 0)`` requantized to the output type."""

import numpy as np

from ..fixed import requantize

OP = "Relu"
ATTRS: dict = {}


def shape(attrs, in_shapes):
    return [in_shapes[0]]


def float_ref(attrs, inputs):
    return [np.maximum(inputs[0], 0).astype(np.float32)]


def int_ref(node, g, inputs):
    t_in = g.qtype(node.inputs[0])
    return [requantize(np.maximum(inputs[0], 0), t_in.frac, g.qtype(node.outputs[0]))]
