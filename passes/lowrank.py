"""Low-rank approximation of Dense and 1x1 Conv layers, on the float graph before
calibration.

A layer ``y = W x + b`` with ``W`` of shape (N, K) becomes two thinner layers,
``h = A x`` (r x K, no bias, no activation) and ``y = B h + b`` (N x r, the layer's own
activation), from the singular value decomposition ``W = U S V^T``: ``A = sqrt(S_r)
V_r^T``, ``B = U_r sqrt(S_r)`` (the square root on both sides keeps the two weight
ranges alike for quantization). The rank ``r`` is the smallest whose singular values hold
``energy`` of the sum of their squares (the Frobenius norm kept). A layer is split only
when ``r * (N + K) < N * K``: fewer weights and MACs. A 1x1 Conv (one group) splits the
same way into two 1x1 Convs, the first with the layer's strides and pads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph, Node
from ..ir.ops import op_def
from .refit import Reference


@dataclass
class LowRankReport:
    energy: float
    layers: dict = field(default_factory=dict)  # layer -> {"shape", "rank", "weights", "weights_after"}

    def as_dict(self) -> dict:
        return {"kind": "low_rank", "energy": self.energy, "layers": self.layers,
                "weights": sum(v["weights"] for v in self.layers.values()),
                "weights_after": sum(v["weights_after"] for v in self.layers.values())}

    def text(self) -> str:
        d = self.as_dict()
        lines = [f"low rank ({self.energy:.0%} of each layer's energy kept): {d['weights']} -> "
                 f"{d['weights_after']} weights"]
        for name, v in self.layers.items():
            split = f"rank {v['rank']} of {min(v['shape'])}" if v["rank"] else "kept whole (no saving)"
            lines.append(f"  {name:<24} {v['shape'][0]} x {v['shape'][1]}: {split}, {v['weights']} -> "
                         f"{v['weights_after']} weights")
        return "\n".join(lines) + "\n"


def rank_for(s: np.ndarray, energy: float) -> int:
    """The fewest leading singular values ``s`` (descending) holding ``energy`` of sum(s^2)."""
    e = np.cumsum(np.asarray(s, np.float64) ** 2)
    if e[-1] <= 0:
        return 1
    return int(np.searchsorted(e / e[-1], energy - 1e-12) + 1)


def low_rank(g: Graph, energy: float, x=None) -> LowRankReport:
    """Split every Dense and one-group 1x1 Conv of ``g`` (in place) whose rank for
    ``energy`` saves weights; returns what was done. With calibration samples ``x``, the
    second layer of each split is then refitted by least squares (in graph order) to give
    the unsplit layer's outputs on the unchanged network's inputs
    (:class:`~.refit.Reference`), which corrects what the dropped directions lose on the
    data."""
    ref = Reference(g, x) if x is not None else None
    split = []
    if not 0.0 < float(energy) <= 1.0:
        raise ValueError(f"energy {energy} must be in (0, 1]: the share of each layer's squared singular values kept")
    report = LowRankReport(float(energy))
    for n in g.topo():
        d = op_def(n.op)
        if not d.has(linear=True) or not g.is_const(n.inputs[1]):
            continue
        w = np.asarray(g.consts[n.inputs[1]], np.float64)
        if d.has(window=True) and (w.ndim < 3 or any(k != 1 for k in w.shape[2:]) or int(n.attr("groups", 1)) != 1):
            continue
        n_out, k = w.shape[0], w.shape[1]
        u, s, vt = np.linalg.svd(w.reshape(n_out, k), full_matrices=False)
        r = rank_for(s, float(energy))
        if r * (n_out + k) >= n_out * k:
            report.layers[n.name] = {"shape": [n_out, k], "rank": 0, "weights": n_out * k, "weights_after": n_out * k}
            continue
        root = np.sqrt(s[:r])
        a = (root[:, None] * vt[:r]).reshape((r, k) + w.shape[2:])
        b = (u[:, :r] * root[None, :]).reshape((n_out, r) + w.shape[2:])
        mid = g.fresh_name(f"{n.outputs[0]}_lowrank")
        a_w = g.add_const(g.fresh_name(f"{n.name}_A"), a.astype(np.float32))
        a_b = g.add_const(g.fresh_name(f"{n.name}_A_b"), np.zeros(r, np.float32))
        b_w = g.add_const(g.fresh_name(f"{n.name}_B"), b.astype(np.float32))
        first_attrs = {k_: v for k_, v in n.attrs.items() if k_ != "relu"}
        second_attrs = dict(n.attrs)
        if d.has(window=True):  # the second 1x1 conv: no stride, no pad
            second_attrs.update(strides=(1,) * (w.ndim - 2), pads=(0,) * (2 * (w.ndim - 2)),
                                dilations=(1,) * (w.ndim - 2))
        first = Node(g.fresh_name(f"{n.name}_A"), n.op, [n.inputs[0], a_w, a_b], [mid], first_attrs)
        second = Node(n.name, n.op, [mid, b_w, n.inputs[2]], list(n.outputs), second_attrs)
        g.remove_node(n.name)
        g.add_node(first)
        g.add_node(second)
        report.layers[n.name] = {"shape": [n_out, k], "rank": r, "weights": n_out * k,
                                 "weights_after": r * (n_out + k)}
        split.append(n.name)
    g.prune()
    if ref is not None:
        for name in split:
            n = g.node(name)
            w = g.consts[n.inputs[1]]
            w_new, b_new = ref.refit_layer(n, np.ones(w.shape, dtype=bool))
            g.consts[n.inputs[1]] = w_new.astype(w.dtype)
            g.consts[n.inputs[2]] = b_new.astype(g.consts[n.inputs[2]].dtype)
    return report
