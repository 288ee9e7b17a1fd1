"""BatchNormalization (inference form) as a per-channel scale and shift.

Inputs: ``x`` (per-sample ``(C, ...)``; the channel axis is axis 0 of the sample),
``mul`` and ``add`` (``(C,)``, constants). The frontend computes them from the ONNX
parameters in float64::

    mul = scale / sqrt(var + epsilon)
    add = bias - mean * mul

Float:  ``y = x * mul[c] + add[c]`` which is ``(x - mean) / sqrt(var + eps) * scale + bias``.

Usually ``passes.batchnorm.fold_batchnorm`` folds it into the Conv or Dense before it.
One that stays is quantized (``passes.quantize``) with ``mul`` as a signed power-of-two
type ``frac(mul)`` (per tensor, like weights) and ``add`` at the product scale
``acc_frac = frac(x) + frac(mul)``; the integer reference is then::

    acc = x * mul[c] + add[c]                               (exact int64; acc_width bits)
    y   = saturate(round_half_up(acc >> (acc_frac - frac(y))))
"""

import numpy as np

from ..fixed import requantize
from .base import OpDef, Traits

ATTRS = {"acc_width": 0}


def shape(attrs, in_shapes):
    x, m, a = (tuple(s) for s in in_shapes)
    if len(x) < 1 or m != (x[0],) or a != (x[0],):
        raise ValueError(f"BatchNormalization: input {x}, scale {m}, shift {a} do not fit")
    return [x]


def _bcast(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def float_ref(attrs, inputs):
    x, m, a = (np.asarray(v, dtype=np.float64) for v in inputs)
    return [(x * _bcast(m, x) + _bcast(a, x)).astype(np.float32)]


def int_ref(node, g, inputs):
    x, m, a = (np.asarray(v, dtype=np.int64) for v in inputs)
    acc_frac = g.qtype(node.inputs[0]).frac + g.qtype(node.inputs[1]).frac
    acc = x * _bcast(m, x) + _bcast(a, x)
    return [requantize(acc, acc_frac, g.qtype(node.outputs[0]))]


DEF = OpDef(name="BatchNormalization", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="scale_shift",
            attrs=ATTRS, traits=Traits(elementwise=True, channelwise=True, weights=True),
            arith="multiply_add", doc="per-channel scale and shift")
