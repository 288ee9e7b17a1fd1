"""Rounding search for weights (``QuantConfig.rounding = "search"``).

Rounding each weight to nearest minimises each weight's own error, not the error of the
layer's output. Per output channel ``n`` this pass chooses, weight by weight, between
rounding down and up so that the output error on calibration inputs ``X`` shrinks::

    minimise  || Xc (s_n * q_n - w_n) ||^2   over  q_n[k] in {floor(w_n[k] / s_n), ceil(...)}

with ``Xc`` the inputs less their column means, by greedy coordinate descent from
round-to-nearest (a flip is kept only if it lowers the error, so the result is never worse
than nearest on ``X``), a bounded number of sweeps. The error's mean is then taken out by
the bias, ``b_n -= mean(X (s_n * q_n - w_n))`` (this replaces bias correction for the
layer: both at once would correct the mean twice).
``X`` holds the layer's float inputs on calibration samples (a Conv's as im2col rows of
its group), at most :data:`MAX_ROWS` rows.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, run_float
from ..ir.ops import op_def
from ..ir.ops.window import out_sizes, patches, spatial_attrs

MAX_ROWS = 4096
SWEEPS = 2


def layer_inputs(g: Graph, x: np.ndarray, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Per Dense / Conv node of float graph ``g``: its input on samples ``x`` as one matrix
    per group, rows = positions, columns in the order of ``W[n].reshape(-1)``."""
    env = run_float(g, np.asarray(x, dtype=np.float32)[:256], keep=True)
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    for node in g.topo():
        d = op_def(node.op)
        if not d.has(linear=True):
            continue
        v = np.asarray(env[node.inputs[0]], dtype=np.float64)
        w_shape = g.shape(node.inputs[1])
        if not d.has(window=True):  # Dense
            mats = [v.reshape(len(v), -1)]
        else:
            kernel = tuple(w_shape[2:])
            strides, pads, dil = spatial_attrs(node.attrs, len(kernel), kernel)
            outs = out_sizes(v.shape[2:], kernel, strides, pads, dil)
            p = patches(v, kernel, strides, pads, dil, outs)  # (N, C, kp, *outs)
            n, c = p.shape[:2]
            groups = int(node.attr("groups", 1))
            p = p.reshape(n, groups, (c // groups) * p.shape[2], -1)  # (N, G, C/G * kp, P)
            mats = [np.moveaxis(p[:, k], 1, 2).reshape(-1, p.shape[2]) for k in range(groups)]
        out[node.name] = [m[rng.choice(len(m), MAX_ROWS, replace=False)] if len(m) > MAX_ROWS else m
                          for m in mats]
    return out


def search_rounding(w: np.ndarray, w_q: np.ndarray, scales: np.ndarray, lo: int, hi: int,
                    xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``w`` (output channel first) quantized as ``w_q`` with per-row ``scales``:
    the rounding of every row re-chosen on inputs ``xs`` (one matrix per group), and the
    amount to add to each row's bias (``-mean`` of its output error)."""
    m = len(w)
    wf = w.reshape(m, -1)
    q = w_q.reshape(m, -1).copy()
    per_group = m // len(xs)
    centered = [x - x.mean(axis=0) for x in xs]
    bias_shift = np.zeros(m)
    for row in range(m):
        x = centered[row // per_group]
        s = float(scales[row])
        down = np.clip(np.floor(wf[row] / s), lo, hi).astype(np.int64)
        up = np.clip(down + 1, lo, hi)
        e = x @ (q[row] * s - wf[row])  # output error on every input row
        col_sq = np.einsum("ij,ij->j", x, x)
        for _ in range(SWEEPS):
            changed = False
            for k in range(q.shape[1]):
                alt = up[k] if q[row, k] == down[k] else down[k]
                d = (alt - q[row, k]) * s
                if d == 0:
                    continue
                gain = 2 * d * float(e @ x[:, k]) + d * d * col_sq[k]
                if gain < -1e-12 * max(1.0, float(e @ e)):
                    e += d * x[:, k]
                    q[row, k] = alt
                    changed = True
            if not changed:
                break
        bias_shift[row] = -float((xs[row // per_group] @ (q[row] * s - wf[row])).mean())
    return q.reshape(w_q.shape), bias_shift


__all__ = ["MAX_ROWS", "layer_inputs", "search_rounding"]
