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

from .base import OpDef, Traits
from .dense import check_rounding, dynamic_accumulator, exact_dtype, linear_output
from .window import out_sizes, patches, spatial_attrs

ATTRS = {"strides": (), "pads": (), "dilations": (), "groups": 1, "relu": False, "acc_width": 0,
         "rq_mult": None, "rq_shift": None, "rounding": "half_up"}


def shape(attrs, in_shapes):
    check_rounding("Conv", attrs)
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


def float16_ref(node, g, inputs):
    """float16 / bfloat16 (:mod:`nnforge.ir.floats`): ``acc = b``, then for every input channel,
    kernel row and kernel column ascending ``acc = acc + x * w`` (fp32 steps); the fused
    Relu; narrowed. A 1-D convolution runs as a 2-D one of height 1."""
    x, w, b = (np.asarray(v) for v in inputs)
    fmt = g.qtype(node.outputs[0]).format
    attrs = node.attrs
    one_d = x.ndim == 3
    kernel = w.shape[2:]
    strides, pads, dil = spatial_attrs(attrs, len(kernel), kernel)
    outs = out_sizes(x.shape[2:], kernel, strides, pads, dil)
    if one_d:  # (N, C, L) as (N, C, 1, L)
        x, w = x[:, :, None, :], w[:, :, None, :]
        strides, dil, outs = (1, *strides), (1, *dil), (1, *outs)
        pads = (0, pads[0], 0, pads[1])
    xf = np.pad(fmt.widen(x), [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    wf = fmt.widen(w)
    n, m = x.shape[0], w.shape[0]
    groups = int(attrs.get("groups", 1))
    cg, mg = w.shape[1], m // groups
    kh, kw = w.shape[2:]
    (oh, ow), (sh, sw), (dh, dw) = outs, strides, dil
    acc = np.broadcast_to(fmt.widen(b)[None, :, None, None], (n, m, oh, ow)).copy()
    for gi in range(groups):
        sl = slice(gi * mg, (gi + 1) * mg)
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    xs = xf[:, gi * cg + ci, ky * dh:ky * dh + sh * (oh - 1) + 1:sh,
                            kx * dw:kx * dw + sw * (ow - 1) + 1:sw]
                    acc[:, sl] = acc[:, sl] + xs[:, None] * wf[sl, ci, ky, kx][None, :, None, None]
    y = fmt.narrow(acc, relu=bool(attrs.get("relu")), what="Conv")
    return [y[:, :, 0, :] if one_d else y]


def dynamic_ref(node, g, inputs, fracs):
    x, w, b = inputs
    return dynamic_accumulator(node, g, accumulate(node.attrs, x, w, np.zeros_like(b)), b, fracs)


DEF = OpDef(name="Conv", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="weights",
            float16_ref=float16_ref, dynamic_ref=dynamic_ref, attrs=ATTRS,
            traits=Traits(weights=True, window=True, linear=True), doc="1-D or 2-D convolution")
