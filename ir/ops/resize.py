"""Resize: ONNX Resize / Upsample in two forms.

Nearest with integer factors (attribute ``scales``, no ``taps``): ``mode="nearest"``,
``coordinate_transformation_mode="asymmetric"`` and ``nearest_mode="floor"`` (what PyTorch
exports for ``nn.Upsample(mode="nearest")``) and integer scale factors. Output index ``o``
on an axis of factor ``s`` reads input index ``floor(o / s)``: every value is repeated
``s`` times along the axis. ``scales`` has one integer factor per per-sample axis (the
channel factor is 1). Integer: the same copy; the type is unchanged.

Interpolation (attribute ``taps``; ``mode`` "linear", "cubic" or "nearest"): ``taps`` has
one entry per per-sample axis, ``None`` (unchanged) or one row per output index
``(start, (w_0, ..., w_{T-1}))``: output index ``o`` is ``sum_t w_t x[start + t]``, the taps
inside the input, ``T`` the same for every row of the axis. The frontend states every
coordinate rule, rounding, edge clamp and ``exclude_outside`` in these rows. Separable
over the axes: ``y = sum prod_axes w * x``.

- Float: that sum in float64, rounded once to float32.
- Integer: :func:`int_taps` makes each weight an integer at :data:`FRAC` fractional bits;
  with ``n`` resized axes and ``P`` the product of a term's integer weights,
  ``y = saturate(round_shift(sum P * x, n * FRAC), type)``; the type is the input's (a
  cubic overshoot saturates). ``sum |P| * max |x|`` must fit 62 bits.
"""

import numpy as np

from ..fixed import round_shift, saturate
from .base import OpDef, Traits

ATTRS = {"scales": (), "mode": "nearest", "taps": ()}
MODES = ("nearest", "linear", "cubic")
FRAC = 12  # fractional bits of an integer weight, per resized axis
ACC_BITS = 62  # |accumulator| bound of the integer form


def shape(attrs, in_shapes):
    x = tuple(in_shapes[0])
    if attrs.get("taps"):
        check_taps(attrs, x)
        return [tuple(d if t is None else len(t) for d, t in zip(x, attrs["taps"]))]
    s = tuple(int(v) for v in attrs.get("scales", ()))
    if len(s) != len(x) or min(s, default=1) < 1:
        raise ValueError(f"Resize: scales {s} do not fit input {x}")
    return [tuple(d * f for d, f in zip(x, s))]


def check_taps(attrs, x) -> None:
    """Refuse ``taps`` that do not fit per-sample shape ``x`` (see the module notes)."""
    taps, mode = attrs["taps"], attrs.get("mode", "nearest")
    if mode not in MODES:
        raise ValueError(f"Resize: mode {mode!r} is not one of {MODES}")
    if len(taps) != len(x):
        raise ValueError(f"Resize: {len(taps)} tap tables for the rank-{len(x)} input {x}")
    for axis, (rows, n) in enumerate(zip(taps, x)):
        if rows is None:
            continue
        if not rows:
            raise ValueError(f"Resize: axis {axis} has no output index")
        width = {len(w) for _, w in rows}
        if len(width) != 1 or min(width) < 1:
            raise ValueError(f"Resize: axis {axis} has rows of different tap counts {sorted(width)}")
        for start, w in rows:
            if int(start) < 0 or int(start) + len(w) > n:
                raise ValueError(f"Resize: axis {axis} reads taps {int(start)}..{int(start) + len(w) - 1} "
                                 f"outside its {n} inputs")


def _round_half_even(v: float) -> int:
    return int(np.round(np.float64(v)))


def _int_row(w) -> tuple:
    iw = [_round_half_even(float(v) * (1 << FRAC)) for v in w]
    if abs(float(np.sum(np.asarray(w, dtype=np.float64))) - 1.0) < 1e-9:
        k = int(np.argmax(np.abs(np.asarray(w, dtype=np.float64))))
        iw[k] += (1 << FRAC) - sum(iw)
    return tuple(iw)


def int_taps(taps) -> tuple:
    """Per axis, ``None`` or ``(starts, weights, T)``: the integer weights at :data:`FRAC`
    fractional bits (round half to even), each row corrected to sum to ``2**FRAC`` when
    its float weights sum to 1 (its largest-magnitude weight takes the difference). Every
    target takes its integers from here."""
    out = []
    for rows in taps:
        if rows is None:
            out.append(None)
            continue
        out.append((tuple(int(s) for s, _ in rows), tuple(_int_row(w) for _, w in rows), len(rows[0][1])))
    return tuple(out)


def resized_axes(taps) -> int:
    return sum(rows is not None for rows in taps)


def accumulator_bound(taps, max_abs: int) -> int:
    """The largest ``|sum P * x|`` for inputs of magnitude at most ``max_abs``."""
    bound = int(max_abs)
    for axis in int_taps(taps):
        if axis is not None:
            bound *= max(sum(abs(v) for v in w) for w in axis[1])
    return bound


def _matrix(starts, weights, n_in: int, dtype) -> np.ndarray:
    m = np.zeros((len(starts), n_in), dtype=dtype)
    for o, (s, w) in enumerate(zip(starts, weights)):
        m[o, s:s + len(w)] += np.asarray(w, dtype=dtype)
    return m


def _apply(x: np.ndarray, mats) -> np.ndarray:
    """Apply one (out, in) matrix per per-sample axis (None: unchanged) to batch ``x``."""
    for axis, m in enumerate(mats, 1):
        if m is not None:
            x = np.moveaxis(np.tensordot(x, m, axes=([axis], [1])), -1, axis)
    return x


def _repeat(x, scales):
    for axis, f in enumerate(scales, 1):
        if f != 1:
            x = np.repeat(x, int(f), axis=axis)
    return x


def float_ref(attrs, inputs):
    taps = attrs.get("taps")
    if not taps:
        return [_repeat(np.asarray(inputs[0], dtype=np.float32), attrs["scales"])]
    x = np.asarray(inputs[0], dtype=np.float64)
    mats = [None if rows is None else _matrix([int(s) for s, _ in rows], [w for _, w in rows], n, np.float64)
            for rows, n in zip(taps, x.shape[1:])]
    return [_apply(x, mats).astype(np.float32)]


def int_ref(node, g, inputs):
    taps = node.attr("taps")
    if not taps:
        return [_repeat(np.asarray(inputs[0], dtype=np.int64), node.attr("scales"))]
    t_in, t_out = g.qtype(node.inputs[0]), g.qtype(node.outputs[0])
    if t_in is None or t_out is None:
        raise ValueError(f"Resize {node.name!r}: the integer form needs the input and output types")
    if accumulator_bound(taps, max(abs(t_in.lo), abs(t_in.hi))) >= 1 << ACC_BITS:
        raise ValueError(f"Resize {node.name!r}: its accumulator does not fit {ACC_BITS} bits")
    x = np.asarray(inputs[0], dtype=np.int64)
    mats = [None if axis is None else _matrix(axis[0], axis[1], n, np.int64)
            for axis, n in zip(int_taps(taps), x.shape[1:])]
    acc = _apply(x, mats)
    return [saturate(round_shift(acc, resized_axes(taps) * FRAC), t_out)]


DEF = OpDef(name="Resize", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep", attrs=ATTRS,
            traits=Traits(keeps_type=True, moves_data=True),
            doc="nearest upsampling by integer factors, or separable interpolation (linear, cubic, nearest)")
