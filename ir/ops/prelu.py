"""PRelu: ``x`` for ``x >= 0``, ``slope[c] * x`` otherwise, one slope per channel.

Inputs: ``x`` (per-sample ``(C, ...)``; the channel is axis 0 of the sample) and the
constant ``slope``, which broadcasts to the sample as ONNX broadcasts (right-aligned):
a slope per channel is ``(C, 1, ..., 1)`` (``(C,)`` for a ``(C,)`` sample), one slope
is a scalar or ``(1,)``. Any other shape (a slope per position) is refused; the frontend
writes those as ``Relu(x) + slope * min(x, 0)``.

Integer: the quantizer turns the slopes into multipliers ``mult[c]`` with one
power-of-two scale ``2**-mult_frac``, exactly as LeakyRelu's ``alpha``: ``mult`` is the
slope constant quantized to a signed ``weight_bits`` type whose frac is ``mult_frac``
(the largest ``>= 0`` that keeps every slope unsaturated; the constant's type holds it).
Both branches are brought to ``acc_frac = frac(x) + mult_frac`` exactly and requantized
with the contract's rule::

    acc = x * 2**mult_frac     if x >= 0
        = x * mult[c]          if x <  0
    y   = saturate(round_half_up(acc >> (acc_frac - frac(y))))

which is ``slope[c] * x`` with ``slope[c] = mult[c] * 2**-mult_frac``.
"""

import numpy as np

from ..fixed import requantize
from .base import OpDef, Traits


def slope_fits(slope_shape, x_shape) -> str:
    """Why a slope of ``slope_shape`` is not one per channel (or one) of a sample of
    ``x_shape`` (ONNX broadcasting); "" when it is."""
    s, x = tuple(int(d) for d in slope_shape), tuple(int(d) for d in x_shape)
    if len(s) > len(x):
        return f"slope of shape {s} has more axes than the sample {x}"
    padded = (1,) * (len(x) - len(s)) + s
    if not x and not s:
        return ""
    if any(d != 1 for d in padded[1:]) or padded[:1] not in ((1,), x[:1]):
        return f"slope of shape {s} is neither one per channel (axis 0) of a sample {x} nor a scalar"
    return ""


def channel_slopes(slope, x_shape) -> np.ndarray:
    """The slope of each channel, ``(C,)`` (a scalar slope repeated)."""
    x_shape = tuple(int(d) for d in x_shape) or (1,)
    s = np.asarray(slope)
    return np.broadcast_to(s.reshape((1,) * (len(x_shape) - s.ndim) + s.shape), x_shape).reshape(x_shape[0], -1)[:, 0]


def shape(attrs, in_shapes):
    x, s = (tuple(v) for v in in_shapes)
    why = slope_fits(s, x)
    if why:
        raise ValueError(f"PRelu: {why}")
    return [x]


def float_ref(attrs, inputs):
    x = np.asarray(inputs[0], dtype=np.float32)
    s = np.asarray(inputs[1], dtype=np.float32)
    return [np.where(x >= 0, x, x * s).astype(np.float32)]


def int_ref(node, g, inputs):
    s_t = g.qtype(node.inputs[1])
    if s_t is None:
        raise ValueError(f"node {node.name!r} (PRelu) was not quantized")
    x = np.asarray(inputs[0], dtype=np.int64)
    mult = np.asarray(inputs[1], dtype=np.int64)
    acc = np.where(x >= 0, x << np.int64(s_t.frac), x * mult)
    return [requantize(acc, g.qtype(node.inputs[0]).frac + s_t.frac, g.qtype(node.outputs[0]))]


DEF = OpDef(name="PRelu", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="multiplier",
            traits=Traits(elementwise=True, channelwise=True, weights=True),
            arith="select_multiply", doc="x, or slope[c] * x below 0 (a slope per channel)")
