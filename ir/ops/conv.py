"""Conv: 1-D or 2-D convolution (cross-correlation, as ONNX), with an optional fused Relu.

Inputs: ``x`` (per-sample ``(C, L)`` or ``(C, H, W)``), ``W`` (``(M, C/groups, *k)``,
constant), ``b`` (``(M,)``, constant; zeros when the model has none).
Attributes as ONNX: ``strides``, ``pads`` (begins then ends), ``dilations``, ``groups``;
``auto_pad`` is resolved to explicit ``pads`` by the frontend.

Float: for output channel ``m`` in group ``g = m // (M/groups)``::

    y[m, o] = b[m] + sum_{c, k} W[m, c, k] * xpad[g*C/groups + c, o*s + k*d]

then ``max(y, 0)`` if ``relu``. ``xpad`` is ``x`` with zeros in the pads.

Integer: exactly the contract of :mod:`.dense`. ``W`` has scale 2**-frac(W), ``b`` is stored at
the accumulator scale ``acc_frac = frac(x) + frac(W)``, the pads hold the integer 0 (the
value 0.0 in every power-of-two type)::

    acc = b[m] + sum_{c, k} x[...] * W[m, c, k]         (exact int64; fits acc_width bits)
    y   = saturate(round_half_up(acc >> (acc_frac - frac(y))))

A fused Relu clamps ``acc`` at 0 (its output type is unsigned, so saturation does it).
Per-channel ``rq_mult`` / ``rq_shift`` as in :mod:`.dense`.
"""

import numpy as np

from ._window import out_sizes, patches, spatial_attrs
from .dense import exact_dtype, linear_output

OP = "Conv"
ATTRS = {"strides": (), "pads": (), "dilations": (), "groups": 1, "relu": False, "acc_width": 0,
         "rq_mult": None, "rq_shift": None}


def shape(attrs, in_shapes):
    x, w, b = (tuple(s) for s in in_shapes)
    nd = len(x) - 1
    groups = int(attrs.get("groups", 1))
    if nd not in (1, 2) or len(w) != nd + 2:
        raise ValueError(f"Conv: input {x} and weights {w} are not a 1-D or 2-D convolution")
    m, cg = w[0], w[1]
    if groups < 1 or x[0] != cg * groups or m % groups or b != (m,):
        raise ValueError(f"Conv: input {x}, weights {w}, bias {b}, groups {groups} do not fit")
    kernel = w[2:]
    strides, pads, dil = spatial_attrs(attrs, nd, kernel)
    return [(m, *out_sizes(x[1:], kernel, strides, pads, dil))]


def _conv(attrs, x, w, b, dtype):
    """The convolution plus bias, in ``dtype``; for int64 the products are summed in
    float64 where that is exact (see :func:`.dense.exact_dtype`) and returned as int64."""
    n, c = x.shape[:2]
    m = w.shape[0]
    kernel = w.shape[2:]
    nd = len(kernel)
    groups = int(attrs.get("groups", 1))
    strides, pads, dil = spatial_attrs(attrs, nd, kernel)
    outs = out_sizes(x.shape[2:], kernel, strides, pads, dil)
    kp = int(np.prod(kernel))
    acc_t = dtype
    if dtype == np.int64:
        acc_t = exact_dtype(x, w, (c // groups) * kp)
    p = patches(x.astype(acc_t), kernel, strides, pads, dil, outs, fill=0)
    op = int(np.prod(outs))
    p = p.reshape(n, groups, (c // groups) * kp, op)
    wm = w.astype(acc_t).reshape(groups, m // groups, (c // groups) * kp)
    y = np.matmul(wm, p).reshape(n, m, *outs).astype(dtype, copy=False)
    return y + b.astype(dtype).reshape((m,) + (1,) * nd)


def float_ref(attrs, inputs):
    x, w, b = inputs
    y = _conv(attrs, np.asarray(x), np.asarray(w), np.asarray(b), np.float64)
    if attrs.get("relu"):
        y = np.maximum(y, 0)
    return [y.astype(np.float32)]


def accumulate(attrs, x, w, b) -> np.ndarray:
    """The exact int64 accumulator (no requantization)."""
    x, w, b = (np.asarray(a, dtype=np.int64) for a in (x, w, b))
    return _conv(attrs, x, w, b, np.int64)


def int_ref(node, g, inputs):
    return [linear_output(node, g, accumulate(node.attrs, *inputs), axis=1)]
