"""Reshape to a fixed per-sample shape (row-major, as ONNX). Covers Flatten too.

Data is unchanged in both domains: every backend stores tensors flat, row-major.
"""

import numpy as np

from .base import OpDef, Traits, keeps_scale

ATTRS = {"shape": ()}


def shape(attrs, in_shapes):
    target = tuple(attrs["shape"])
    if int(np.prod(target, dtype=np.int64)) != int(np.prod(in_shapes[0], dtype=np.int64)):
        raise ValueError(f"Reshape: cannot reshape {in_shapes[0]} to {target}")
    return [target]


def float_ref(attrs, inputs):
    x = inputs[0]
    return [x.reshape((x.shape[0],) + tuple(attrs["shape"]))]


def int_ref(node, g, inputs):
    t_in, t_out = g.qtype(node.inputs[0]), g.qtype(node.outputs[0])
    if t_in != t_out:
        raise ValueError(f"Reshape {node.name!r} must keep its fixed-point type")
    return float_ref(node.attrs, inputs)


DEF = OpDef(name="Reshape", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep",
            float16_ref=int_ref, dynamic_ref=keeps_scale(int_ref), attrs=ATTRS,
            traits=Traits(keeps_type=True, moves_data=True), arith="view", doc="reshape (and flatten)")
