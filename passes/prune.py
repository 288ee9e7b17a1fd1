"""Pruning of the float graph's Dense and Conv weights, before calibration.

* :func:`prune_magnitude` (unstructured): in every Dense / Conv layer, the ``sparsity``
  fraction of weights with the smallest magnitude become 0 (exactly ``floor(sparsity *
  n)`` of the layer's ``n`` weights; ties broken by position). Quantization keeps a zero
  weight zero, so the backends see the zeros: the C backend skips them.
* :func:`prune_structured`: whole output channels (Conv filters, Dense neurons) go, and
  with them everything that reads those channels: the inputs of the next Dense / Conv,
  the channels of a depthwise Conv in between. Channels are tied across a residual Add
  (both operands, the sum and whatever reads it lose the same channels), so the pass
  works on *channel groups*: the tensors that share one channel index, joined by
  channel-wise ops (activations, pools, depthwise Convs, an Add or Mul of two activations
  of one shape, a Reshape of ``(C, 1, 1)`` to ``(C,)``). A group is pruned when it is made by Dense / Conv layers and read by
  Dense / Conv layers only (not a graph input or output, not read by any other op); its
  ``sparsity`` fraction of channels with the smallest importance (the sum, over the
  layers that make it, of the channel's L1 weight norm over the layer's mean) go, at least
  one channel stays. The layers shrink: fewer weights, MACs and activations.

Both return a :class:`PruneReport` (per layer: weights, zeros, channels kept).
:func:`search_sparsity` finds the largest sparsity whose float accuracy on labelled data
stays within a given drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..ir.graph import TensorInfo
from ..ir.ops import infer_shapes, op_def, ops_with
from ..ir.text import name as _pname
from .refit import Reference

LINEAR = ops_with(linear=True)
# ops whose output channel c depends on input channel c only (axis 0 per sample) and that
# read no constant (a constant per channel would have to lose the pruned channels too)
CHANNELWISE = ops_with(channelwise=True, weights=False)


@dataclass
class PruneReport:
    kind: str                       # "magnitude" or "structured"
    sparsity: float                 # the fraction asked for
    layers: dict = field(default_factory=dict)  # layer -> {"weights", "zeros", "channels", "kept"}

    @property
    def weights(self) -> int:
        return sum(v["weights"] for v in self.layers.values())

    @property
    def zeros(self) -> int:
        return sum(v["zeros"] for v in self.layers.values())

    def as_dict(self) -> dict:
        return {"kind": self.kind, "sparsity": self.sparsity, "weights": self.weights, "zeros": self.zeros,
                "layers": self.layers}

    def text(self) -> str:
        what = "weights set to 0" if self.kind == "magnitude" else "channels removed"
        lines = [f"pruning ({self.kind}, {self.sparsity:.0%} {what}): {self.zeros} of {self.weights} weights are 0"
                 if self.kind == "magnitude" else
                 f"pruning ({self.kind}, {self.sparsity:.0%} of the channels of each prunable group): "
                 f"{self.weights} weights left"]
        for name, v in self.layers.items():
            if self.kind == "magnitude":
                lines.append(f"  {name:<24} {v['zeros']:>7} / {v['weights']:<7} zero")
            else:
                lines.append(f"  {name:<24} {v['kept']:>4} / {v['channels']:<4} output channels kept, "
                             f"{v['weights']} weights")
        return "\n".join(lines) + "\n"


def _check_sparsity(sparsity: float) -> float:
    s = float(sparsity)
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity {sparsity} must be in [0, 1): the fraction of weights (or channels) removed")
    return s


def prune_magnitude(g: Graph, sparsity: float, x=None) -> PruneReport:
    """Zero the ``sparsity`` fraction of every Dense / Conv weight tensor of the float graph
    ``g`` (in place, new constant arrays).

    Without data ``x``: the smallest magnitudes of the layer (``floor(sparsity * n)`` of
    them). With calibration samples ``x`` (one-shot pruning, no training): layer by layer
    in graph order, each output channel keeps the weights with the largest ``|w| *
    ||input feature||`` (the input it multiplies, measured on ``x`` through the layers
    pruned so far), and its kept weights and bias are refitted by least squares to give the
    unpruned layer's outputs on the unpruned inputs (:func:`_refit`): the error of a
    pruned layer is corrected by the layers after it."""
    s = _check_sparsity(sparsity)
    report = PruneReport("magnitude", s)
    ref = Reference(g, x) if x is not None else None
    for n in g.topo():
        if n.op not in LINEAR or not g.is_const(n.inputs[1]):
            continue
        w = np.asarray(g.consts[n.inputs[1]], dtype=np.float64)
        if ref is None:
            k = int(np.floor(s * w.size))
            flat = w.reshape(-1).copy()
            if k:
                order = np.argsort(np.abs(flat), kind="stable")
                flat[order[:k]] = 0.0
            new = flat.reshape(w.shape)
        else:
            new = ref.prune_layer(n, s)
        g.consts[n.inputs[1]] = new.astype(g.consts[n.inputs[1]].dtype)
        report.layers[n.name] = {"weights": int(w.size), "zeros": int(np.sum(new == 0))}
    return report


# ----------------------------------------------------------------------------- structured

def _depthwise(g: Graph, n) -> bool:
    """A Conv whose every group is one input and one output channel."""
    w = g.consts.get(n.inputs[1])
    c = g.shape(n.inputs[0])[0]
    return (op_def(n.op).has(linear=True, window=True) and w is not None and int(n.attr("groups", 1)) == c == w.shape[0]
            and w.shape[1] == 1)


class _Groups:
    """Union-find over activation tensors that share a channel index."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, t: str) -> str:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def channel_groups(g: Graph) -> list[dict]:
    """The channel groups of ``g`` (see the module docstring), each a dict with its
    ``tensors``, ``channels``, ``producers`` / ``consumers`` (Dense / Conv nodes making /
    reading it), ``channelwise`` (depthwise Convs inside it), ``reshapes`` and whether it
    is ``prunable`` (and if not, ``why``)."""
    uf = _Groups()
    bad: dict[str, str] = {}
    acts = [t for t in g.tensors if not g.is_const(t)]
    for t in acts:
        uf.find(t)
    for n in g.topo():
        ins = [t for t in n.inputs if not g.is_const(t)]
        if n.op in LINEAR and _depthwise(g, n):
            uf.union(n.inputs[0], n.outputs[0])
        elif n.op in LINEAR:
            continue  # a boundary: output and input channels are separate groups
        elif n.op in CHANNELWISE:
            uf.union(ins[0], n.outputs[0])
        elif (op_def(n.op).has(elementwise=True, join=True) and len(ins) == 2
              and g.shape(ins[0]) == g.shape(ins[1]) == g.shape(n.outputs[0])):  # a residual Add, say
            uf.union(ins[0], n.outputs[0])
            uf.union(ins[1], n.outputs[0])
        elif n.op == "Reshape" and len(g.shape(n.outputs[0])) == 1 and \
                int(np.prod(g.shape(ins[0])[1:], dtype=np.int64)) == 1:
            uf.union(ins[0], n.outputs[0])  # (C, 1, 1) -> (C,)
        else:
            for t in ins + list(n.outputs):
                bad[t] = f"{n.op} {n.name}"
    groups: dict[str, dict] = {}
    for t in acts:
        r = uf.find(t)
        grp = groups.setdefault(r, {"tensors": [], "producers": [], "consumers": [], "channelwise": [],
                                    "reshapes": [], "why": None})
        grp["tensors"].append(t)
        if t in bad:
            grp["why"] = grp["why"] or f"read or made by {bad[t]}"
        if t in g.inputs:
            grp["why"] = grp["why"] or "holds the graph input"
        if t in g.outputs:
            grp["why"] = grp["why"] or "holds a graph output"
    for n in g.topo():
        if n.op in LINEAR and not _depthwise(g, n):
            groups[uf.find(n.outputs[0])]["producers"].append(n.name)
            groups[uf.find(n.inputs[0])]["consumers"].append(n.name)
            if int(n.attr("groups", 1)) != 1:
                for t in (n.inputs[0], n.outputs[0]):
                    groups[uf.find(t)]["why"] = groups[uf.find(t)]["why"] or f"grouped Conv {n.name}"
        elif n.op in LINEAR:
            groups[uf.find(n.outputs[0])]["channelwise"].append(n.name)
        elif n.op == "Reshape" and uf.find(n.inputs[0]) == uf.find(n.outputs[0]):
            groups[uf.find(n.outputs[0])]["reshapes"].append(n.name)
    out = []
    for grp in groups.values():
        shapes = {g.shape(t)[0] if g.shape(t) else None for t in grp["tensors"]}
        grp["channels"] = shapes.pop() if len(shapes) == 1 else None
        if grp["channels"] is None:
            grp["why"] = grp["why"] or "tensors of different channel counts"
        if not grp["producers"]:
            grp["why"] = grp["why"] or "made by no Dense / Conv"
        grp["prunable"] = grp["why"] is None
        out.append(grp)
    return out


def prune_structured(g: Graph, sparsity: float, x=None) -> PruneReport:
    """Remove the ``sparsity`` fraction of the channels of every prunable channel group of
    the float graph ``g`` (in place), with the weights that make and read them. With
    calibration samples ``x``, each Dense / Conv that lost inputs then gets its weights
    and bias refitted by least squares (in graph order) to give the unpruned layer's
    outputs on the unpruned inputs."""
    s = _check_sparsity(sparsity)
    report = PruneReport("structured", s)
    ref = Reference(g, x) if x is not None else None
    rows_of: dict[str, np.ndarray] = {}  # layer -> output channels kept
    refit: set[str] = set()
    orig = {n.name: int(np.asarray(g.consts[n.inputs[1]]).shape[0]) for n in g.topo() if n.op in LINEAR}
    for grp in channel_groups(g):
        if not grp["prunable"]:
            continue
        c = grp["channels"]
        score = np.zeros(c)
        for name in grp["producers"]:
            w = np.abs(np.asarray(g.consts[g.node(name).inputs[1]], dtype=np.float64)).reshape(c, -1).sum(axis=1)
            score += w / max(w.mean(), 1e-30)
        n_keep = max(1, c - int(np.floor(s * c)))
        keep = np.sort(np.argsort(-score, kind="stable")[:n_keep])
        for name in grp["producers"]:
            n = g.node(name)
            rows_of[name] = keep
            g.consts[n.inputs[1]] = np.asarray(g.consts[n.inputs[1]])[keep]
            if len(n.inputs) > 2:
                g.consts[n.inputs[2]] = np.asarray(g.consts[n.inputs[2]])[keep]
        for name in grp["consumers"]:
            n = g.node(name)
            refit.add(name)
            g.consts[n.inputs[1]] = np.asarray(g.consts[n.inputs[1]])[:, keep]
        for name in grp["channelwise"]:
            n = g.node(name)
            g.consts[n.inputs[1]] = np.asarray(g.consts[n.inputs[1]])[keep]
            if len(n.inputs) > 2:
                g.consts[n.inputs[2]] = np.asarray(g.consts[n.inputs[2]])[keep]
            g.replace_node(name, n.with_(attrs={**n.attrs, "groups": int(n_keep)}))
        for name in grp["reshapes"]:
            n = g.node(name)
            g.replace_node(name, n.with_(attrs={**n.attrs, "shape": (int(n_keep),)}))
    for name in list(g.consts):
        g.tensors[name] = TensorInfo(tuple(np.asarray(g.consts[name]).shape))
    _reinfer(g)
    if ref is not None:
        for n in g.topo():
            if n.name in refit and n.op in LINEAR:
                w = g.consts[n.inputs[1]]
                w_new, b_new = ref.refit_layer(n, np.ones(w.shape, dtype=bool), rows_of.get(n.name))
                g.consts[n.inputs[1]] = w_new.astype(w.dtype)
                if len(n.inputs) > 2:
                    g.consts[n.inputs[2]] = b_new.astype(g.consts[n.inputs[2]].dtype)
    for n in g.topo():
        if n.op in LINEAR:
            w = np.asarray(g.consts[n.inputs[1]])
            report.layers[n.name] = {"weights": int(w.size), "zeros": 0, "channels": orig[n.name],
                                     "kept": int(w.shape[0])}
    return report


def _reinfer(g: Graph) -> None:
    """Every activation's shape again, in topological order (after constants changed)."""
    for n in g.topo():
        for t, shape in zip(n.outputs, infer_shapes(g, n), strict=True):
            g.tensors[t] = TensorInfo(tuple(shape), g.tensors[t].qtype)


def search_sparsity(g: Graph, kind: str, x: np.ndarray, y: np.ndarray, max_drop: float, x_cal=None,
                    steps=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)) -> tuple[float, float, float]:
    """The largest of ``steps`` whose pruned float model (``kind``: magnitude or
    structured, refitted on ``x_cal`` when given) loses at most ``max_drop`` accuracy on
    ``(x, y)`` against ``g``; returns (sparsity, its accuracy, the unpruned accuracy); 0.0
    when none does."""
    from ..ir.interp import run_float

    def acc(h: Graph) -> float:
        out = run_float(h, x)[0]
        return float(np.mean(np.argmax(out.reshape(len(x), -1), axis=1) == y))

    base = acc(g)
    best = (0.0, base)
    for s in steps:
        h = g.copy()
        (prune_magnitude if kind == "magnitude" else prune_structured)(h, s, x_cal)
        a = acc(h)
        if base - a <= max_drop:
            best = (s, a)
    return best[0], best[1], base


def compression_text(c: dict) -> str:
    """The text of a compression record (``design.compression``: a report's ``as_dict``),
    layer names printable."""
    c = {**c, "layers": {_pname(k): v for k, v in c["layers"].items()}}
    if c["kind"] == "low_rank":
        from .lowrank import LowRankReport

        return LowRankReport(c["energy"], c["layers"]).text()
    if c["kind"] == "share":
        from .share import ShareReport

        return ShareReport(c["bits"], c["layers"]).text()
    return PruneReport(c["kind"], c["sparsity"], c["layers"]).text()
