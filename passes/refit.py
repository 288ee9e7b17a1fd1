"""Refitting a changed layer to the unchanged network (pruning, weight sharing, low rank).

:class:`Reference` runs the unchanged float graph once on calibration samples and keeps
every layer's input; as layers change, the changed graph's inputs of a layer are
compared with those, and the layer's weights and bias are solved by least squares
(a small ridge on the weights) to give the unchanged layer's outputs on the unchanged
inputs: the error of an earlier change is corrected by the layers after it.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.interp import run_float
from ..ir.ops import op_def
from ..ir.ops.window import out_sizes, patches, spatial_attrs

_MAX_ROWS = 16384  # least-squares rows sampled per layer
_RIDGE = 1e-4      # relative ridge on the weights (not the bias)


def _design_matrix(g: Graph, n, x: np.ndarray) -> list[np.ndarray]:
    """Per group of layer ``n``, the matrix whose rows are the inputs each output value
    sees (a Dense: the samples; a Conv: every window of every sample, im2col), columns in
    the order of ``W.reshape(M, -1)`` within the group."""
    if not op_def(n.op).has(window=True):  # Dense
        return [np.asarray(x, np.float64).reshape(len(x), -1)]
    w = g.consts[n.inputs[1]]
    kernel = w.shape[2:]
    groups = int(n.attr("groups", 1))
    strides, pads, dil = spatial_attrs(n.attrs, len(kernel), kernel)
    outs = out_sizes(x.shape[2:], kernel, strides, pads, dil)
    p = patches(np.asarray(x, np.float64), kernel, strides, pads, dil, outs, fill=0)
    nb, c = x.shape[:2]
    p = p.reshape(nb, groups, (c // groups) * int(np.prod(kernel)), -1)
    return [p[:, gi].transpose(0, 2, 1).reshape(-1, p.shape[2]) for gi in range(groups)]


def _refit(x_new: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights (zero outside ``mask``, rows x features) and biases whose ``x_new @ w.T + b``
    best matches ``target`` (samples x rows) in least squares, a small ridge on the
    weights."""
    rows, feats = mask.shape
    w = np.zeros((rows, feats))
    b = np.zeros(rows)
    for o in range(rows):
        sup = np.flatnonzero(mask[o])
        a = np.concatenate([x_new[:, sup], np.ones((len(x_new), 1))], axis=1)
        ata = a.T @ a
        lam = _RIDGE * (np.trace(ata[:-1, :-1]) / max(len(sup), 1) + 1e-12)
        ata[np.arange(len(sup)), np.arange(len(sup))] += lam
        z = np.linalg.solve(ata, a.T @ target[:, o])
        w[o, sup], b[o] = z[:-1], z[-1]
    return w, b


class Reference:
    """The unpruned graph's layer inputs on ``x``, and the pruned graph's as it changes."""

    def __init__(self, g: Graph, x) -> None:
        self.g, self.x = g, np.asarray(x, np.float32)
        self.orig = g.copy()  # constants are replaced, never changed in place
        self.orig_env = run_float(self.orig, self.x, keep=True)
        self.rng = np.random.default_rng(0)

    def layer_inputs(self, n) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Layer ``n``'s design matrices (:func:`_design_matrix`) in the changed graph and
        in the unchanged one, the same rows of both (at most :data:`_MAX_ROWS`, sampled)."""
        cur = run_float(self.g, self.x, keep=True)[n.inputs[0]]
        old = self.orig_env[self.orig.node(n.name).inputs[0]]  # the same layer's input before any change
        xs_new, xs_old = _design_matrix(self.g, n, cur), _design_matrix(self.orig, self.orig.node(n.name), old)
        rows = len(xs_new[0])
        pick = self.rng.choice(rows, _MAX_ROWS, replace=False) if rows > _MAX_ROWS else slice(None)
        return [a[pick] for a in xs_new], [a[pick] for a in xs_old]

    def refit_layer(self, n, mask: np.ndarray, out_rows=None) -> tuple[np.ndarray, np.ndarray]:
        """New weights (shaped as the layer's, zero outside ``mask``) and bias of layer ``n``
        whose outputs on the current inputs match the unpruned layer's (its output channels
        ``out_rows``, all by default) on the unpruned inputs."""
        o = self.orig.node(n.name)
        w0 = np.asarray(self.orig.consts[o.inputs[1]], np.float64)
        b0 = np.asarray(self.orig.consts[o.inputs[2]], np.float64) if len(o.inputs) > 2 else np.zeros(w0.shape[0])
        if out_rows is not None:
            w0, b0 = w0[out_rows], b0[out_rows]
        xs_new, xs_old = self.layer_inputs(n)
        groups = len(xs_new)
        mg = w0.shape[0] // groups
        w_new = np.zeros(mask.shape)
        b_new = np.zeros(w0.shape[0])
        m2 = mask.reshape(w0.shape[0], -1)
        for gi in range(groups):
            rs = slice(gi * mg, (gi + 1) * mg)
            target = xs_old[gi] @ w0.reshape(w0.shape[0], -1)[rs].T + b0[rs]
            w_g, b_new[rs] = _refit(xs_new[gi], target, m2[rs])
            w_new.reshape(w0.shape[0], -1)[rs] = w_g
        return w_new, b_new

    def prune_layer(self, n, s: float) -> np.ndarray:
        """Layer ``n``'s weights with ``s`` of each output channel's zeroed (the smallest
        ``|w| * ||x||``), the rest and the bias refitted; the bias is set in the graph."""
        w = np.asarray(self.g.consts[n.inputs[1]], np.float64)
        xs_new, _ = self.layer_inputs(n)
        groups = len(xs_new)
        mg = w.shape[0] // groups
        w2 = w.reshape(w.shape[0], -1)
        norms = np.concatenate([np.repeat(np.linalg.norm(xs_new[gi], axis=0)[None], mg, axis=0)
                                for gi in range(groups)])
        score = np.abs(w2) * norms
        k = int(np.floor(s * w2.shape[1]))
        mask = np.ones(w2.shape, dtype=bool)
        if k:
            order = np.argsort(score, axis=1, kind="stable")[:, :k]
            np.put_along_axis(mask, order, False, axis=1)
        w_new, b_new = self.refit_layer(n, mask.reshape(w.shape))
        if len(n.inputs) > 2:
            self.g.consts[n.inputs[2]] = b_new.astype(self.g.consts[n.inputs[2]].dtype)
        return w_new
