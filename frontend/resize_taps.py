"""The tap rows of an ONNX Resize on one axis (the ``taps`` of IR ``Resize``): each output
index's input coordinate by the coordinate rule, its neighbours and weights by the
interpolation mode, ONNX's edge rule (an index outside the input reads the edge value)
or ``exclude_outside`` (its weight is dropped and the rest renormalized) folded in.

Follows the ONNX operator definition: ``x_original`` from ``x_resized`` per
``coordinate_transformation_mode``; linear reads ``floor(x)`` and ``floor(x) + 1``; cubic
the four indices around ``floor(x)`` with the Keys kernel of parameter ``cubic_coeff_a``;
nearest one index chosen by ``nearest_mode``.
"""

from __future__ import annotations

import math

import numpy as np

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coordinate(o: int, ctm: str, scale: float, n_in: int, n_out: int) -> float:
    """ONNX's ``x_original`` of output index ``o`` (``scale`` the axis' scale factor), in
    float32 arithmetic as onnxruntime computes it (a nearest rounding depends on it)."""
    f = np.float32
    x, s, half = f(o), f(scale), f(0.5)
    if ctm == "align_corners":
        return 0.0 if n_out == 1 else float(x * f(n_in - 1) / f(n_out - 1))
    if ctm == "asymmetric":
        return float(x / s)
    if ctm == "pytorch_half_pixel":
        return float((x + half) / s - half) if n_out > 1 else 0.0
    if ctm == "half_pixel":
        return float((x + half) / s - half)
    if ctm == "half_pixel_symmetric":
        offset = f(n_in) / f(2) * (f(1) - f(n_out) / (s * f(n_in)))
        return float(offset + (x + half) / s - half)
    if ctm == "tf_half_pixel_for_nn":
        return float((x + half) / s)
    raise ValueError(f"coordinate_transformation_mode {ctm!r}")


def _nearest(x: float, nearest_mode: str) -> int:
    lo = math.floor(x)
    r = x - lo
    if r == 0:
        return lo
    up = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5, "floor": False, "ceil": True}[nearest_mode]
    return lo + 1 if up else lo


def cubic_weights(r: float, a: float) -> list[float]:
    """Keys' cubic kernel at distances ``1 + r, r, 1 - r, 2 - r`` (taps ``floor(x) - 1 .. + 2``)."""
    def k(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return ((a + 2) * d - (a + 3)) * d * d + 1
        if d < 2:
            return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return 0.0
    return [k(1 + r), k(r), k(1 - r), k(2 - r)]


def point_taps(x: float, mode: str, nearest_mode: str, cubic_a: float) -> list[tuple[int, float]]:
    """(input index, weight) pairs of coordinate ``x`` before the edge rule."""
    if mode == "nearest":
        return [(_nearest(x, nearest_mode), 1.0)]
    lo = math.floor(x)
    r = x - lo
    if mode == "linear":
        return [(lo, 1.0 - r), (lo + 1, r)]
    return list(zip(range(lo - 1, lo + 3), cubic_weights(r, cubic_a)))


def fold_edges(taps: list[tuple[int, float]], n_in: int, exclude_outside: bool) -> dict[int, float]:
    """The taps on ``[0, n_in)``: an outside index reads the edge (or is excluded and the
    remaining weights renormalized); weights of one index added."""
    if exclude_outside:
        inside = [(i, w) for i, w in taps if 0 <= i < n_in]
        total = sum(w for _, w in inside)
        taps = [(i, w / total) for i, w in inside] if total else inside
    out: dict[int, float] = {}
    for i, w in taps:
        j = min(max(i, 0), n_in - 1)
        out[j] = out.get(j, 0.0) + w
    return out


def axis_rows(n_in: int, n_out: int, scale: float, *, mode: str, ctm: str, nearest_mode: str = "round_prefer_floor",
              cubic_a: float = -0.75, exclude_outside: bool = False):
    """The IR rows ``(start, weights)`` of one axis, or None when the axis is unchanged
    (every output index reads its own input index with weight 1, or the scale is 1 and the
    extent kept: an axis not resized, whatever the coordinate rule)."""
    if n_in == n_out and scale == 1.0:
        return None
    folded = []
    for o in range(n_out):
        taps = fold_edges(point_taps(source_coordinate(o, ctm, scale, n_in, n_out), mode, nearest_mode, cubic_a),
                          n_in, exclude_outside)
        folded.append({i: w for i, w in taps.items() if w != 0.0} or {min(taps): 0.0})
    if n_in == n_out and all(f == {o: 1.0} for o, f in enumerate(folded)):
        return None
    width = max(max(f) - min(f) + 1 for f in folded)
    rows = []
    for f in folded:
        start = min(min(f), n_in - width)
        rows.append((start, tuple(float(f.get(start + t, 0.0)) for t in range(width))))
    return tuple(rows)
