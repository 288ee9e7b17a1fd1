"""Relu: ``max(x, 0)``. Integer reference: ``max(x, 0)`` requantized to the output type."""

import numpy as np

from ..fixed import requantize, saturate
from .base import OpDef, Traits

ATTRS: dict = {}


def shape(attrs, in_shapes):
    return [in_shapes[0]]


def float_ref(attrs, inputs):
    return [np.maximum(inputs[0], 0).astype(np.float32)]


def int_ref(node, g, inputs):
    t_in = g.qtype(node.inputs[0])
    return [requantize(np.maximum(inputs[0], 0), t_in.frac, g.qtype(node.outputs[0]))]


def float16_ref(node, g, inputs):
    """float16 / bfloat16: ``x > 0 ? x : +0``."""
    fmt = g.qtype(node.outputs[0]).format
    return [fmt.narrow(fmt.widen(inputs[0]), relu=True)]


def dynamic_ref(node, g, inputs, fracs):
    """Run-time scales: the values and their frac pass through, clamped at 0."""
    return saturate(np.maximum(inputs[0], 0), g.qtype(node.outputs[0])), fracs[0], False


DEF = OpDef(name="Relu", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="unsigned",
            float16_ref=float16_ref, dynamic_ref=dynamic_ref, attrs=ATTRS,
            traits=Traits(elementwise=True, channelwise=True), arith="compare", doc="max(x, 0)")
