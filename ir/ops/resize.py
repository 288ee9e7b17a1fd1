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

import functools
import math

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
            if not all(math.isfinite(float(v)) for v in w):
                raise ValueError(f"Resize: axis {axis} has a weight that is not finite")
            if int(start) < 0 or int(start) + len(w) > n:
                raise ValueError(f"Resize: axis {axis} reads taps {int(start)}..{int(start) + len(w) - 1} "
                                 f"outside its {n} inputs")


def _int_rows(w) -> tuple:
    """Each row of float weights ``w`` at :data:`FRAC` bits (see :func:`int_taps`)."""
    w = np.asarray(w, dtype=np.float64)
    iw = np.round(w * (1 << FRAC)).astype(np.int64)
    whole = np.abs(np.sum(w, axis=1) - 1.0) < 1e-9
    k = np.argmax(np.abs(w), axis=1)
    iw[np.arange(len(w)), k] += np.where(whole, (1 << FRAC) - iw.sum(1), 0)
    return tuple(tuple(r) for r in iw.tolist())


def _int_table(weights) -> tuple:
    if len({len(w) for w in weights}) == 1:
        return _int_rows(weights)
    return tuple(_int_rows([w])[0] for w in weights)


def int_taps(taps) -> tuple:
    """Per axis, ``None`` or ``(starts, weights, T)``: the integer weights at :data:`FRAC`
    fractional bits (round half to even), each row corrected to sum to ``2**FRAC`` when
    its float weights sum to 1 (its largest-magnitude weight takes the difference). Every
    target takes its integers from here (computed once per table)."""
    return _int_taps(tuple(None if rows is None else tuple((int(s), tuple(float(v) for v in w)) for s, w in rows)
                           for rows in taps))


@functools.lru_cache(maxsize=64)
def _int_taps(taps: tuple) -> tuple:
    return tuple(None if rows is None else (tuple(s for s, _ in rows), _int_table([w for _, w in rows]),
                                            len(rows[0][1]))
                 for rows in taps)


def resized_axes(taps) -> int:
    return sum(rows is not None for rows in taps)


def accumulator_bound(taps, max_abs: int) -> int:
    """The largest ``|sum P * x|`` for inputs of magnitude at most ``max_abs``."""
    bound = int(max_abs)
    for axis in int_taps(taps):
        if axis is not None:
            bound *= max(sum(abs(v) for v in w) for w in axis[1])
    return bound


def checked_bound(taps, x_t) -> int:
    """:func:`accumulator_bound` for inputs of type ``x_t``; ValueError when it does not fit
    :data:`ACC_BITS` bits (the integer form, and every target, refuse such a node)."""
    bound = accumulator_bound(taps, max(abs(x_t.lo), abs(x_t.hi)))
    if bound >= 1 << ACC_BITS:
        raise ValueError(f"its accumulator does not fit {ACC_BITS} bits (bound {bound})")
    return bound


def _apply(x: np.ndarray, tables, dtype) -> np.ndarray:
    """Apply one ``(starts, weights)`` table per per-sample axis (None: unchanged) to batch
    ``x``: ``y[o] = sum_t w[o, t] * x[starts[o] + t]``, in ``dtype``, the taps in order."""
    x = np.asarray(x, dtype=dtype)
    for axis, table in enumerate(tables, 1):
        if table is None:
            continue
        starts = np.asarray(table[0], dtype=np.int64)
        w = np.asarray(table[1], dtype=dtype).reshape(len(starts), -1)
        along = [1] * x.ndim
        along[axis] = len(starts)
        acc = np.zeros(x.shape[:axis] + (len(starts),) + x.shape[axis + 1:], dtype=dtype)
        for t in range(w.shape[1]):
            acc += w[:, t].reshape(along) * np.take(x, starts + t, axis=axis)
        x = acc
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
    tables = [None if rows is None else ([s for s, _ in rows], [w for _, w in rows]) for rows in taps]
    return [_apply(inputs[0], tables, np.float64).astype(np.float32)]


def int_ref(node, g, inputs):
    taps = node.attr("taps")
    if not taps:
        return [_repeat(np.asarray(inputs[0], dtype=np.int64), node.attr("scales"))]
    t_in, t_out = g.qtype(node.inputs[0]), g.qtype(node.outputs[0])
    if t_in is None or t_out is None:
        raise ValueError(f"Resize {node.name!r}: the integer form needs the input and output types")
    try:
        checked_bound(taps, t_in)
    except ValueError as e:
        raise ValueError(f"Resize {node.name!r}: {e}") from None
    acc = _apply(inputs[0], int_taps(taps), np.int64)
    return [saturate(round_shift(acc, resized_axes(taps) * FRAC), t_out)]


DEF = OpDef(name="Resize", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="keep", attrs=ATTRS,
            traits=Traits(keeps_type=True, moves_data=True),
            doc="nearest upsampling by integer factors, or separable interpolation (linear, cubic, nearest)")
