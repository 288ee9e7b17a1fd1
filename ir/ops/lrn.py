"""LRN (local response normalization across channels, ONNX semantics), per sample
``(C, *S)``::

    square_sum[c] = sum of x[i]^2 for i in [c - floor((size-1)/2), c + ceil((size-1)/2)]
    y[c] = x[c] / (bias + alpha / size * square_sum[c]) ** beta

Float only for now: it has no integer reference, so a model using it runs in the float
interpreter but is refused by the quantizer.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"size": 1, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}


def shape(attrs, in_shapes):
    return [tuple(in_shapes[0])]


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float64)
    size = int(attrs["size"])
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    sq = x * x
    c = x.shape[1]
    padded = np.pad(sq, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    csum = np.cumsum(np.concatenate([np.zeros_like(padded[:, :1]), padded], axis=1), axis=1)
    square_sum = csum[:, size:size + c] - csum[:, :c]
    y = x / (attrs["bias"] + attrs["alpha"] / size * square_sum) ** attrs["beta"]
    return [y.astype(np.float32)]


DEF = OpDef(name="LRN", shape=shape, float_ref=float_ref, attrs=ATTRS, traits=Traits(float_only=True),
            doc="local response normalization")
