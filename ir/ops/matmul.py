"""MatMul with a constant right operand (per sample): ``Y[..., n] = sum_k A[..., k] B[k, n]``.

Canonicalized into ``Dense`` before quantization, so it has no integer reference.
"""

import numpy as np

OP = "MatMul"
ATTRS: dict = {}


def shape(attrs, in_shapes):
    a, b = in_shapes
    if len(b) != 2 or a[-1] != b[0]:
        raise ValueError(f"MatMul: cannot multiply per-sample {a} by {b}")
    return [tuple(a[:-1]) + (b[1],)]


def float_ref(attrs, inputs):
    return [np.matmul(inputs[0], inputs[1]).astype(np.float32)]
