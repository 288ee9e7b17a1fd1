"""Concat along one per-sample axis (never the batch axis).

Integer: every input is requantized (ir/fixed.requantize: round half up, saturate) from
its own type to the output type, then the integers are concatenated.
"""

import numpy as np

from ..fixed import requantize
from .base import OpDef, Traits

ATTRS = {"axis": 0}


def shape(attrs, in_shapes):
    axis = attrs["axis"]
    first = tuple(in_shapes[0])
    for s in in_shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
            raise ValueError(f"Concat: shapes {in_shapes} differ off axis {axis}")
    return [first[:axis] + (sum(s[axis] for s in in_shapes),) + first[axis + 1:]]


def float_ref(attrs, inputs):
    return [np.concatenate([np.asarray(x, dtype=np.float32) for x in inputs], axis=attrs["axis"] + 1)]


def int_ref(node, g, inputs):
    out_t = g.qtype(node.outputs[0])
    parts = [requantize(x, g.qtype(t).frac, out_t) for x, t in zip(inputs, node.inputs)]
    return [np.concatenate(parts, axis=node.attrs["axis"] + 1)]


DEF = OpDef(name="Concat", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="calibrated", attrs=ATTRS,
            traits=Traits(join=True), arith="move", doc="concatenation along one axis")
