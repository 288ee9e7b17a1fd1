"""MatMul with a constant right operand (per sample): ``Y[..., n] = sum_k A[..., k] B[k, n]``.

Canonicalized into ``Dense`` before quantization, so it has no integer reference.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS: dict = {}


def shape(attrs, in_shapes):
    a, b = in_shapes
    if len(b) != 2 or a[-1] != b[0]:
        raise ValueError(f"MatMul: cannot multiply per-sample {a} by {b}")
    return [tuple(a[:-1]) + (b[1],)]


def float_ref(attrs, inputs):
    return [np.matmul(inputs[0], inputs[1]).astype(np.float32)]


DEF = OpDef(name="MatMul", shape=shape, float_ref=float_ref,
            refusal="MatMul should have become Dense (a canonicalization pass is missing)", attrs=ATTRS,
            traits=Traits(float_only=True), doc="matrix product by a constant (becomes Dense)")
