"""Dynamic quantization (the C target's ``--dynamic`` option): every activation's
power-of-two scale is chosen at run time, per input, from the values it actually holds.

The quantized graph gives the widths and signedness of every tensor and the weights; a
tensor's fractional bits ``f`` are not fixed but computed per sample (block floating
point, one exponent per tensor). Integer-only, with the rules of :mod:`.fixed`:

* every run-time ``f`` of a tensor stays within :data:`DYN_RANGE` bits of the tensor's
  static frac ``F`` (a dynamic range of 2**16 either way; beyond it values saturate or
  lose bits, as a static design would), which bounds every shift, so nothing overflows;
* the model input (float): ``f = frac_for_range(max|x|, width, signed)`` (the largest
  ``f`` that keeps the sample unsaturated) clipped to ``[F - DYN_RANGE, F + DYN_RANGE]``,
  ``q = sat(floor(x * 2**f + 0.5))``;
* Dense / Conv: ``acc_frac = f_x + frac(W)``; the bias, stored at ``frac(b)``, enters as
  ``round_shift(b, frac(b) - acc_frac)``; ``acc = b' + sum x * W`` (exact), the fused Relu
  clamps it at 0; then the output's shift ``s`` is the smallest ``s >= 0`` with
  ``round_shift(acc, s)`` inside the output type for every value of the tensor, clipped
  to ``[acc_frac - F_y - DYN_RANGE, acc_frac - F_y + DYN_RANGE]``, so
  ``y = sat(round_shift(acc, s))`` and ``f_y = acc_frac - s``;
* Relu, MaxPool, GlobalMaxPool, Reshape: the values and ``f`` pass through (Relu
  clamps at 0); GlobalAveragePool / AveragePool: as their integer references, same ``f``;
* Add of two activations: both aligned exactly to ``max(f_a, f_b)``, added, then the
  same run-time shift as a linear layer.

Any other op is refused. Each op's part is its ``dynamic_ref`` (:mod:`nnforge.ir.ops`): the
exact accumulator at its per-sample frac, or values that keep their scale; the run-time
shift of an accumulator (:func:`dynamic_shift`) is applied here, once for every op.
:func:`run_dynamic` is the golden model the generated C (``nnforge_run_dynamic``) matches
bit for bit: the output integers and their ``f``.
"""

from __future__ import annotations

import numpy as np

from .fixed import FixedType, frac_for_range, quantize_float, round_shift, round_shift_rows, saturate
from .graph import Graph
from .ops import op_def, ops_defining

DYNAMIC_OPS = ops_defining("dynamic_ref")
MAX_SHIFT = 62
DYN_RANGE = 16  # bits a run-time frac may move from the tensor's static one, either way


class DynamicError(ValueError):
    pass


def check_dynamic(q: Graph) -> None:
    """Refuse a graph dynamic quantization does not cover, naming the node."""
    for n in q.topo():
        d = op_def(n.op)
        if d.dynamic_ref is None:
            raise DynamicError(f"node {n.name!r}: op {n.op} is not supported with dynamic quantization "
                               f"(supported: {', '.join(sorted(DYNAMIC_OPS))})")
        if d.has(linear=True) and n.attr("rq_mult") is not None:
            raise DynamicError(f"node {n.name!r}: dynamic quantization uses one power-of-two scale per tensor "
                               f"(no per-channel or real scales)")
        if d.has(join=True) and (n.attr("rq_mult") is not None or any(q.is_const(t) for t in n.inputs)):
            raise DynamicError(f"node {n.name!r}: dynamic quantization supports {n.op} of two activations only")
        # the bias enters shifted left by up to DYN_RANGE bits; a join aligns its operands
        # by up to |F_a - F_b| + 2 DYN_RANGE bits: both must stay inside int64
        if d.has(linear=True) and int(n.attr("acc_width")) + DYN_RANGE > 61:
            raise DynamicError(f"node {n.name!r}: a {n.attr('acc_width')}-bit accumulator leaves no room for "
                               f"{DYN_RANGE} bits of run-time range")
        if d.has(join=True):
            ta, tb = (q.qtype(t) for t in n.inputs)
            if max(ta.width, tb.width) + abs(ta.frac - tb.frac) + 2 * DYN_RANGE > 61:
                raise DynamicError(f"node {n.name!r}: its operands' scales are too far apart for run-time scales")


def input_frac(x: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """Per sample: the largest frac that keeps ``max|x|`` unsaturated."""
    m = np.abs(np.asarray(x, dtype=np.float64).reshape(len(x), -1)).max(axis=1)
    return np.array([frac_for_range(float(v), width, signed) for v in m], dtype=np.int64)


def dynamic_shift(acc: np.ndarray, lo: int, hi: int, acc_frac: np.ndarray, static_frac: int) -> np.ndarray:
    """Per sample (axis 0): the smallest ``s >= 0`` with every ``round_shift(acc, s)`` in
    ``[lo, hi]``, clipped so the output frac ``acc_frac - s`` stays within DYN_RANGE of
    ``static_frac``."""
    a = np.asarray(acc, dtype=np.int64).reshape(len(acc), -1)
    amax, amin = a.max(axis=1), a.min(axis=1)
    out = np.zeros(len(a), dtype=np.int64)
    for i in range(len(a)):
        s = 0
        while s < MAX_SHIFT and not (lo <= int(round_shift(amin[i], s)) and int(round_shift(amax[i], s)) <= hi):
            s += 1
        out[i] = min(max(s, int(acc_frac[i]) - static_frac - DYN_RANGE), int(acc_frac[i]) - static_frac + DYN_RANGE)
    return out


def _per_sample(v: np.ndarray, ndim: int) -> np.ndarray:
    return np.asarray(v, dtype=np.int64).reshape((-1,) + (1,) * (ndim - 1))


def run_dynamic(q: Graph, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run float samples ``x`` (batch first) through ``q`` with run-time scales: the
    output integers and, per sample, their fractional bits."""
    check_dynamic(q)
    x = np.asarray(x, dtype=np.float64)
    inp = q.inputs[0]
    t = q.qtype(inp)
    f_in = np.clip(input_frac(x, t.width, t.signed), t.frac - DYN_RANGE, t.frac + DYN_RANGE)
    xq = np.stack([quantize_float(x[i], FixedType(t.width, int(f_in[i]), t.signed)) for i in range(len(x))])
    env: dict[str, np.ndarray] = {inp: xq}
    frac: dict[str, np.ndarray] = {inp: f_in}
    for node in q.topo():
        ins = [env.get(a) if a in env else np.asarray(q.consts[a], dtype=np.int64) for a in node.inputs]
        out = node.outputs[0]
        out_t = q.qtype(out)
        y, f, shifted = op_def(node.op).dynamic_ref(node, q, ins, [frac.get(a) for a in node.inputs])
        if shifted:  # an exact accumulator at frac f: the run-time shift into the output type
            s = dynamic_shift(y, out_t.lo, out_t.hi, f, out_t.frac)
            y, f = saturate(round_shift_rows(y, s), out_t), f - s
        env[out], frac[out] = y, f
    o = q.outputs[0]
    return env[o], frac[o]


def dequantize_dynamic(y: np.ndarray, frac: np.ndarray) -> np.ndarray:
    return np.ldexp(np.asarray(y, dtype=np.float64), -_per_sample(frac, np.asarray(y).ndim))


__all__ = ["DYNAMIC_OPS", "DynamicError", "check_dynamic", "dequantize_dynamic", "dynamic_shift", "input_frac",
           "run_dynamic"]
