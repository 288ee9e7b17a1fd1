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


MAX_ROWS = 1 << 16  # output indices of one resized axis


def source_coordinate(o, ctm: str, scale: float, n_in: int, n_out: int) -> np.ndarray:
    """ONNX's ``x_original`` of output indices ``o`` (``scale`` the axis' scale factor), in
    float32 arithmetic as onnxruntime computes it (a nearest rounding depends on it), as
    float64."""
    f = np.float32
    x, s, half = np.asarray(o, dtype=f), f(scale), f(0.5)
    if ctm == "align_corners":
        v = np.zeros_like(x) if n_out == 1 else x * f(n_in - 1) / f(n_out - 1)
    elif ctm == "asymmetric":
        v = x / s
    elif ctm == "pytorch_half_pixel":
        v = (x + half) / s - half if n_out > 1 else np.zeros_like(x)
    elif ctm == "half_pixel":
        v = (x + half) / s - half
    elif ctm == "half_pixel_symmetric":
        offset = f(n_in) / f(2) * (f(1) - f(n_out) / (s * f(n_in)))
        v = offset + (x + half) / s - half
    elif ctm == "tf_half_pixel_for_nn":
        v = (x + half) / s
    else:
        raise ValueError(f"coordinate_transformation_mode {ctm!r}")
    return np.asarray(v, dtype=f).astype(np.float64)


def _nearest(x: np.ndarray, nearest_mode: str) -> np.ndarray:
    lo = np.floor(x)
    r = x - lo
    up = {"round_prefer_floor": r > 0.5, "round_prefer_ceil": r >= 0.5, "floor": np.zeros(r.shape, bool),
          "ceil": np.ones(r.shape, bool)}[nearest_mode] & (r != 0)
    return (lo + up).astype(np.int64)


def cubic_weights(r: np.ndarray, a: float) -> list[np.ndarray]:
    """Keys' cubic kernel at distances ``1 + r, r, 1 - r, 2 - r`` (taps ``floor(x) - 1 .. + 2``)."""
    def k(d: np.ndarray) -> np.ndarray:
        d = np.abs(d)
        near = ((a + 2) * d - (a + 3)) * d * d + 1
        far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return np.where(d <= 1, near, np.where(d < 2, far, 0.0))
    return [k(1 + r), k(r), k(1 - r), k(2 - r)]


def point_taps(x: np.ndarray, mode: str, nearest_mode: str, cubic_a: float) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights ``(n, T)`` of coordinates ``x`` before the edge rule."""
    if mode == "nearest":
        return _nearest(x, nearest_mode)[:, None], np.ones((len(x), 1))
    lo = np.floor(x)
    r = x - lo
    lo = lo.astype(np.int64)
    if mode == "linear":
        return np.stack([lo, lo + 1], 1), np.stack([1.0 - r, r], 1)
    return np.stack([lo - 1, lo, lo + 1, lo + 2], 1), np.stack(cubic_weights(r, cubic_a), 1)


def fold_edges(idx: np.ndarray, w: np.ndarray, n_in: int, exclude_outside: bool) -> tuple[np.ndarray, np.ndarray]:
    """The taps on ``[0, n_in)`` as ``(first index, weights (n, T))`` from the first index on:
    an outside index reads the edge (or is excluded and the remaining weights renormalized,
    in tap order); weights of one index added in tap order."""
    if exclude_outside:
        inside = (idx >= 0) & (idx < n_in)
        if not inside.any(1).all():
            raise ValueError("an output index reads no input index")
        total = np.zeros(len(idx))
        for t in range(idx.shape[1]):
            total = total + np.where(inside[:, t], w[:, t], 0.0)
        w = np.where((total != 0)[:, None], w / np.where(total != 0, total, 1.0)[:, None], w)
        clamped = np.where(inside, idx, np.max(np.where(inside, idx, -1), 1, keepdims=True))
    else:
        inside = np.ones(idx.shape, bool)
        clamped = np.clip(idx, 0, n_in - 1)
    first = np.min(np.where(inside, clamped, n_in), 1)
    out = np.zeros(idx.shape)
    rows = np.arange(len(idx))
    for t in range(idx.shape[1]):
        out[rows, clamped[:, t] - first] += np.where(inside[:, t], w[:, t], 0.0)
    return first, out
def axis_rows(n_in: int, n_out: int, scale: float, *, mode: str, ctm: str, nearest_mode: str = "round_prefer_floor",
              cubic_a: float = -0.75, exclude_outside: bool = False):
    """The IR rows ``(start, weights)`` of one axis, or None when the axis is unchanged
    (every output index reads its own input index with weight 1, or the scale is 1 and the
    extent kept: an axis not resized, whatever the coordinate rule)."""
    if n_in == n_out and scale == 1.0:
        return None
    x = source_coordinate(np.arange(n_out), ctm, scale, n_in, n_out)
    first, w = fold_edges(*point_taps(x, mode, nearest_mode, cubic_a), n_in, exclude_outside)
    nz = w != 0.0
    w = np.where(nz, w, 0.0)
    some = nz.any(1)
    lo = first + np.where(some, np.argmax(nz, 1), 0)
    hi = first + np.where(some, w.shape[1] - 1 - np.argmax(nz[:, ::-1], 1), 0)
    o = np.arange(n_out)
    if n_in == n_out and np.all((nz.sum(1) == 1) & (lo == o) & (w[o, lo - first] == 1.0)):
        return None
    width = int(np.max(hi - lo + 1))
    start = np.minimum(lo, n_in - width)
    pos = start[:, None] + np.arange(width) - first[:, None]
    padded = np.concatenate([w, np.zeros((n_out, width + 1))], 1)
    rows = padded[o[:, None], np.where((pos >= 0) & (pos < w.shape[1]), pos, w.shape[1])]
    return tuple((int(s), tuple(float(v) for v in r)) for s, r in zip(start.tolist(), rows.tolist()))
