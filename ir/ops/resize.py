"""Resize (nearest, integer factors): ONNX Resize / Upsample with ``mode="nearest"``,
``coordinate_transformation_mode="asymmetric"`` and ``nearest_mode="floor"`` (what PyTorch
exports for ``nn.Upsample(mode="nearest")``) and integer scale factors. Then output
index ``o`` on an axis of factor ``s`` reads input index ``floor(o / s)``: every value is
repeated ``s`` times along the axis.

``scales`` has one integer factor per per-sample axis (the channel factor is 1).
Integer: the same copy; the type is unchanged.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"scales": ()}


def shape(attrs, in_shapes):
    x = tuple(in_shapes[0])
    s = tuple(int(v) for v in attrs.get("scales", ()))
    if len(s) != len(x) or min(s, default=1) < 1:
        raise ValueError(f"Resize: scales {s} do not fit input {x}")
    return [tuple(d * f for d, f in zip(x, s))]


def _repeat(x, scales):
    for axis, f in enumerate(scales, 1):
        if f != 1:
            x = np.repeat(x, int(f), axis=axis)
    return x


def float_ref(attrs, inputs):
    return [_repeat(np.asarray(inputs[0], dtype=np.float32), attrs["scales"])]


def int_ref(node, g, inputs):
    return [_repeat(np.asarray(inputs[0], dtype=np.int64), node.attr("scales"))]


DEF = OpDef(name="Resize", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep", attrs=ATTRS,
            traits=Traits(keeps_type=True, moves_data=True), doc="nearest upsampling by integer factors")
