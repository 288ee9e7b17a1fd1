"""Dense: the canonical fully connected layer, with an optional fused Relu.

Inputs: ``x`` (per-sample ``(K,)``), ``W`` (``(N, K)``, constant), ``b`` (``(N,)``, constant).

Float:   ``y = x @ W.T + b``, then ``max(y, 0)`` if ``relu``.

Integer: ``W`` has scale 2**-w_frac (``g.qtype(W)``), ``x`` has ``g.qtype(x)``, and ``b`` is
stored at the accumulator scale ``acc_frac = frac(x) + frac(W)``::

    acc = b + sum_k x[k] * W[n, k]                 (exact; fits acc_width bits)
    y   = saturate(round_half_up(acc >> (acc_frac - frac(y))))

A fused Relu is the saturation itself: its output type is unsigned, so ``lo = 0``.
``acc_width`` is derived by the quantizer from the actual weights and input range.

Per-channel scales (per-channel weight formats, real scales from models quantized
elsewhere) replace the single shift by the node attributes ``rq_mult`` (one integer per
output channel) and ``rq_shift``; row ``n`` of ``b`` is then at its own channel's scale::

    y[n] = saturate(round_half_up((acc[n] * rq_mult[n]) >> rq_shift))

(:func:`requant_params` gives these numbers for every node, 1 and the single shift
when the attributes are absent.) ``rounding="half_even"`` rounds the requantization's ties
to even instead (:func:`nnforge.ir.fixed.round_shift`; a model that states it, imported).
"""

import numpy as np

from ..fixed import ROUNDINGS, requantize_mult, round_shift
from .base import OpDef, Traits

ATTRS = {"relu": False, "acc_width": 0, "rq_mult": None, "rq_shift": None, "rounding": "half_up"}


def check_rounding(op: str, attrs) -> None:
    if attrs.get("rounding", "half_up") not in ROUNDINGS:
        raise ValueError(f"{op}: rounding must be one of {', '.join(ROUNDINGS)}, got {attrs.get('rounding')!r}")


def shape(attrs, in_shapes):
    check_rounding("Dense", attrs)
    (k,), w, b = in_shapes
    if len(w) != 2 or w[1] != k or tuple(b) != (w[0],):
        raise ValueError(f"Dense: input {k}, weights {w}, bias {b} do not fit")
    return [(w[0],)]


def float_ref(attrs, inputs):
    x, w, b = inputs
    y = x.astype(np.float32) @ w.T.astype(np.float32) + b.astype(np.float32)
    if attrs.get("relu"):
        y = np.maximum(y, 0)
    return [y.astype(np.float32)]


# float64 holds every integer of magnitude up to 2**53 exactly
_EXACT_F64 = 2**53


def exact_dtype(x: np.ndarray, w: np.ndarray, k: int):
    """The dtype in which sums of ``k`` products of elements of the integer arrays ``x``
    and ``w`` are exact: float64 (BLAS, much faster than numpy's int64 matmul) when
    ``k * max|x| * max|w| < 2**53``, since then every product and every partial sum, in
    any order, is an integer that float64 represents exactly; else int64."""
    def max_abs(a):
        return max(abs(int(a.min())), abs(int(a.max()))) if a.size else 0
    return np.float64 if k * max_abs(x) * max_abs(w) < _EXACT_F64 else np.int64


def accumulate(attrs, x, w, b) -> np.ndarray:
    """The exact int64 accumulator ``b + x @ W.T`` (no requantization)."""
    x, w, b = (np.asarray(a, dtype=np.int64) for a in (x, w, b))
    dt = exact_dtype(x, w, w.shape[1])
    return (x.astype(dt) @ w.T.astype(dt)).astype(np.int64) + b


def int_ref(node, g, inputs):
    return [linear_output(node, g, accumulate(node.attrs, *inputs), axis=-1)]


def requant_params(node, g) -> tuple[np.ndarray, int]:
    """``(mult, shift)`` of a linear layer's requantization: ``mult`` one integer per output
    channel; without per-channel attributes all ones and ``frac(x) + frac(W) - frac(y)``."""
    if node.attrs.get("rq_mult") is not None:
        return np.asarray(node.attrs["rq_mult"], dtype=np.int64), int(node.attrs["rq_shift"])
    acc_frac = g.qtype(node.inputs[0]).frac + g.qtype(node.inputs[1]).frac
    n = g.shape(node.inputs[1])[0]
    return np.ones(n, dtype=np.int64), acc_frac - g.qtype(node.outputs[0]).frac


def linear_output(node, g, acc: np.ndarray, axis: int) -> np.ndarray:
    """The output of a linear layer (Dense, Conv) from its exact accumulator (channels on
    ``axis``): the fused Relu, then requantize to the output type."""
    out_t = g.qtype(node.outputs[0])
    if node.attrs.get("relu") and out_t.lo < 0:
        acc = np.maximum(acc, 0)
    mult, shift = requant_params(node, g)
    return requantize_mult(acc, mult, shift, out_t, axis, rounding_of(node))


def rounding_of(node) -> str:
    """A linear layer's requantization rounding: ``half_up`` (the contract's) or ``half_even``."""
    return node.attrs.get("rounding", "half_up")


def ties_to_even(node, shift: int) -> bool:
    """Whether a linear layer's requantization by ``shift`` bits rounds ties to even (a
    shift of 0 or less drops no bits: nothing to round)."""
    return rounding_of(node) == "half_even" and shift > 0


def float16_ref(node, g, inputs):
    """float16 / bfloat16 (:mod:`nnforge.ir.floats`): ``acc = b``, then ``acc = acc + x[k] * W[:, k]``
    for ``k`` ascending, each step rounded to fp32; the fused Relu; narrowed."""
    x, w, b = inputs
    fmt = g.qtype(node.outputs[0]).format
    xf, wf = fmt.widen(x), fmt.widen(w)
    acc = np.broadcast_to(fmt.widen(b), (xf.shape[0], wf.shape[0])).copy()
    for k in range(wf.shape[1]):
        acc = acc + xf[:, k:k + 1] * wf[None, :, k]
    return [fmt.narrow(acc, relu=bool(node.attrs.get("relu")), what="Dense")]


def dynamic_accumulator(node, g, acc: np.ndarray, b: np.ndarray, fracs) -> tuple[np.ndarray, np.ndarray, bool]:
    """Run-time scales (:mod:`nnforge.ir.dynamic`) of a linear layer from its exact sum of
    products ``acc`` (channels on axis 1): ``acc_frac = f_x + frac(W)`` per sample, the bias
    (stored at ``frac(b)``) enters as ``round_shift(b, frac(b) - acc_frac)``, the fused Relu
    clamps at 0; the run-time shift into the output type follows."""
    acc_frac = fracs[0] + g.qtype(node.inputs[1]).frac
    b_frac = g.qtype(node.inputs[2]).frac
    per_channel = (-1,) + (1,) * (acc.ndim - 2)
    acc = acc + np.stack([round_shift(b, int(b_frac - f)).reshape(per_channel) for f in acc_frac])
    if node.attrs.get("relu"):
        acc = np.maximum(acc, 0)
    return acc, acc_frac, True


def dynamic_ref(node, g, inputs, fracs):
    x, w, b = inputs
    return dynamic_accumulator(node, g, accumulate(node.attrs, x, w, np.zeros_like(b)), b, fracs)


DEF = OpDef(name="Dense", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="weights",
            float16_ref=float16_ref, dynamic_ref=dynamic_ref, attrs=ATTRS,
            traits=Traits(weights=True, linear=True), doc="fully connected layer")
