"""Weight sharing: every Dense / Conv layer's weights take at most 2^k distinct values, on
the float graph before calibration.

Per layer, the weights are clustered into 2^k values by one-dimensional k-means (Lloyd's
iterations from evenly spaced quantiles; a zero weight, from pruning, stays exactly 0 and
is one of the 2^k values). With calibration samples the shared values and the biases are then
refitted by least squares, the assignment fixed: a layer's output is linear in its shared
values (``y = sum_c v_c * (x . [w in cluster c]) + b``), so the values that best reproduce
the unshared layer's outputs on its inputs are one small least-squares problem. Quantized
with one scale per tensor, the layer then holds at most 2^k distinct integers (plus 0), so
a backend can store k-bit indices and a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..ir.ops import ops_with
from .refit import Reference

LINEAR = ops_with(linear=True)

_ITERATIONS = 50


@dataclass
class ShareReport:
    bits: int
    layers: dict = field(default_factory=dict)  # layer -> {"weights", "values"}

    def as_dict(self) -> dict:
        return {"kind": "share", "bits": self.bits, "layers": self.layers,
                "weights": sum(v["weights"] for v in self.layers.values())}

    def text(self) -> str:
        lines = [f"weight sharing (2^{self.bits} = {1 << self.bits} values per layer, k-means):"]
        for name, v in self.layers.items():
            lines.append(f"  {name:<24} {v['weights']:>7} weights, {v['values']} distinct nonzero values")
        return "\n".join(lines) + "\n"


def kmeans_1d(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids ascending, the index of each value's centroid) of ``values`` in at most
    ``n`` clusters (fewer when there are fewer distinct values)."""
    v = np.asarray(values, np.float64).reshape(-1)
    distinct = np.unique(v)
    if len(distinct) <= n:
        return distinct, np.searchsorted(distinct, v)
    c = np.quantile(v, (np.arange(n) + 0.5) / n)
    for _ in range(_ITERATIONS):
        idx = _nearest(c, v)
        new = np.array([v[idx == i].mean() if np.any(idx == i) else c[i] for i in range(n)])
        if np.allclose(new, c, rtol=0, atol=1e-12):
            break
        c = new
    c = np.unique(c)
    return c, _nearest(c, v)


def _nearest(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    mid = (c[1:] + c[:-1]) / 2
    return np.searchsorted(mid, v)


def share_weights(g: Graph, bits: int, x=None) -> ShareReport:
    """Cluster every Dense / Conv weight tensor of ``g`` (in place) into 2^``bits`` shared
    values; with calibration samples ``x`` the values and biases are refitted (see the
    module docstring)."""
    bits = int(bits)
    if not 1 <= bits <= 8:
        raise ValueError(f"weight sharing takes 1 to 8 index bits (2 to 256 values), not {bits}")
    report = ShareReport(bits)
    ref = Reference(g, x) if x is not None else None
    for n in g.topo():
        if n.op not in LINEAR or not g.is_const(n.inputs[1]):
            continue
        w = np.asarray(g.consts[n.inputs[1]], np.float64)
        nz = w != 0
        # a zero weight (pruned) is one of the 2^bits values: the indices still fit the bits
        c, idx = kmeans_1d(w[nz], (1 << bits) - (0 if nz.all() else 1))
        shared = np.zeros_like(w)
        if ref is not None and nz.any():
            c, b = _refit_values(ref, n, w.shape, nz, idx, c)
            if len(n.inputs) > 2:
                g.consts[n.inputs[2]] = b.astype(g.consts[n.inputs[2]].dtype)
        shared[nz] = c[idx]
        g.consts[n.inputs[1]] = shared.astype(g.consts[n.inputs[1]].dtype)
        report.layers[n.name] = {"weights": int(w.size), "values": int(len(np.unique(shared[nz])))}
    return report


def _refit_values(ref: Reference, n, shape, nz: np.ndarray, idx: np.ndarray,
                  c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shared values and biases that best reproduce the unshared layer ``n`` (least
    squares over the calibration inputs, the assignment ``idx`` of the nonzero weights
    ``nz`` fixed)."""
    o = ref.orig.node(n.name)
    w0 = np.asarray(ref.orig.consts[o.inputs[1]], np.float64)
    b0 = np.asarray(ref.orig.consts[o.inputs[2]], np.float64) if len(o.inputs) > 2 else np.zeros(w0.shape[0])
    xs_new, xs_old = ref.layer_inputs(n)
    groups = len(xs_new)
    m = shape[0]
    mg = m // groups
    assign = np.full(nz.shape, -1)
    assign[nz] = idx
    assign = assign.reshape(m, -1)
    k = len(c)
    cols, rhs = [], []
    for gi in range(groups):
        for r in range(gi * mg, (gi + 1) * mg):
            target = xs_old[gi] @ w0.reshape(m, -1)[r] + b0[r]
            feats = np.zeros((len(target), k + m))
            for ci in range(k):
                sel = assign[r] == ci
                if sel.any():
                    feats[:, ci] = xs_new[gi][:, sel].sum(axis=1)
            feats[:, k + r] = 1.0  # this output channel's bias
            cols.append(feats)
            rhs.append(target)
    a, y = np.concatenate(cols), np.concatenate(rhs)
    ata = a.T @ a
    ata[np.arange(k), np.arange(k)] += 1e-6 * (np.trace(ata[:k, :k]) / k + 1e-12)
    ata[np.arange(k, k + m), np.arange(k, k + m)] += 1e-9
    z = np.linalg.solve(ata, a.T @ y)
    return z[:k], z[k:]
