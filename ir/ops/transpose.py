"""Transpose of the per-sample axes (``perm`` never moves the batch axis). Integers are
moved, not changed: the output type is the input type."""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"perm": ()}


def shape(attrs, in_shapes):
    perm = tuple(attrs["perm"])
    if sorted(perm) != list(range(len(in_shapes[0]))):
        raise ValueError(f"Transpose: perm {perm} does not fit per-sample shape {in_shapes[0]}")
    return [tuple(in_shapes[0][p] for p in perm)]


def float_ref(attrs, inputs):
    return [np.transpose(inputs[0], (0,) + tuple(p + 1 for p in attrs["perm"]))]


def int_ref(node, g, inputs):
    if g.qtype(node.inputs[0]) != g.qtype(node.outputs[0]):
        raise ValueError(f"Transpose {node.name!r} must keep its fixed-point type")
    return float_ref(node.attrs, inputs)


DEF = OpDef(name="Transpose", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep", attrs=ATTRS,
            traits=Traits(keeps_type=True, moves_data=True), doc="permutation of the axes")
