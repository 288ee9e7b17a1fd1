"""Pad, constant mode: ``pads`` has the begin pads of every per-sample axis, then the end
pads (all >= 0); new cells hold ``value``.

Float only: a Pad with value 0 on spatial axes before a Conv is folded into the Conv's
pads by :func:`nnforge.passes.pad.fold_pad_into_conv`; any other Pad has no integer
semantics and quantization refuses it.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"pads": (), "value": 0.0}


def shape(attrs, in_shapes):
    x = tuple(in_shapes[0])
    p = tuple(int(v) for v in attrs.get("pads", ()))
    if len(p) != 2 * len(x) or min(p, default=0) < 0:
        raise ValueError(f"Pad: pads {p} do not fit input {x}")
    return [tuple(d + p[i] + p[len(x) + i] for i, d in enumerate(x))]


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    r = x.ndim - 1
    p = attrs["pads"]
    width = [(0, 0)] + [(int(p[i]), int(p[r + i])) for i in range(r)]
    return [np.pad(x, width, mode="constant", constant_values=np.float32(attrs.get("value", 0.0)))]


REFUSAL = ("this Pad could not be folded into a following Conv (folding needs value 0, padding of spatial axes "
           "only, and Convs as its only readers), and a standalone Pad has no integer implementation")

DEF = OpDef(name="Pad", shape=shape, float_ref=float_ref, attrs=ATTRS, refusal=REFUSAL,
            traits=Traits(float_only=True), doc="constant padding")
