"""Mixed precision: per-layer weight widths that meet an accuracy budget at the lowest cost.

The search is greedy over the layers that hold weights (Dense, Conv, an unfolded
BatchNormalization, a Mul by a constant): starting from every layer at the widest width,
each round tries narrowing every layer by one step of ``widths`` (quantize, run the
golden integer model on the validation set, count correct argmax labels) and keeps the
step that saves the most weight-memory bits per accuracy point lost, among those whose
accuracy stays within ``max_drop`` of the float model's. It stops when no step fits.
Every configuration tried is reported with its cost (weight memory bits and
bit-operations: MACs times weight bits times activation bits) and accuracy, and the
Pareto front of them is marked.

The budget holds on the validation data the search ran on; like any selection on data,
it is optimistic elsewhere, the more so the smaller the set (on the digits CNN, a
search on 180 labelled images met a one-point budget there and lost four points on the
other 180), so give it a validation set of realistic size, separate from the test data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..ir import Graph, quantize_float, run_float, run_int
from ..ir.ops import op_def, ops_with
from ..ir.text import name as _pname
from .calibrate import Range
from .prequant import quantize_graph
from .quantize import QuantConfig

WIDTHS = (8, 6, 5, 4, 3, 2)
_WEIGHTED = ops_with(weights=True)  # ops whose constant operands have the weight width


@dataclass
class Point:
    bits: dict[str, int]
    weight_bits_total: int
    bitops: int
    accuracy: float
    pareto: bool = False

    def as_dict(self) -> dict:
        return {"bits": dict(self.bits), "weight_memory_bits": self.weight_bits_total, "bitops": self.bitops,
                "accuracy": self.accuracy, "pareto": self.pareto}


@dataclass
class MixedResult:
    config: QuantConfig
    chosen: Point
    uniform: Point  # every layer at the widest width
    float_accuracy: float
    max_drop: float
    tried: list[Point] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"float_accuracy": self.float_accuracy, "max_drop": self.max_drop,
                "chosen": self.chosen.as_dict(), "uniform": self.uniform.as_dict(),
                "tried": [p.as_dict() for p in self.tried]}

    def text(self) -> str:
        lines = [f"mixed precision: float accuracy {self.float_accuracy:.2%}, budget {self.max_drop:.2%} drop",
                 f"  uniform {max(self.uniform.bits.values())}-bit weights: {self.uniform.weight_bits_total} bits, "
                 f"accuracy {self.uniform.accuracy:.2%}",
                 f"  chosen: {self.chosen.weight_bits_total} bits "
                 f"({self.chosen.weight_bits_total / self.uniform.weight_bits_total:.0%} of uniform), "
                 f"accuracy {self.chosen.accuracy:.2%}",
                 "  layer widths: " + ", ".join(f"{_pname(k)} {v}" for k, v in self.chosen.bits.items()),
                 "  Pareto points tried (weight bits, accuracy): "
                 + "; ".join(f"{p.weight_bits_total} {p.accuracy:.2%}" for p in self.tried if p.pareto)]
        return "\n".join(lines) + "\n"


def weighted_layers(g: Graph) -> list:
    return [n for n in g.topo() if n.op in _WEIGHTED and any(g.is_const(t) for t in n.inputs)]


def _weight_count(g: Graph, node) -> int:
    # the multiplying constant, the first one read: Dense/Conv weights, BN's scale, Mul's constant
    t = next(t for t in node.inputs if g.is_const(t))
    return int(np.asarray(g.consts[t]).size)


def _macs(q: Graph, node) -> int:
    out = int(np.prod(q.shape(node.outputs[0])))
    if op_def(node.op).has(linear=True):  # every output reads one row of W
        return out * int(np.prod(np.asarray(q.consts[node.inputs[1]]).shape[1:]))
    return out


def search(f: Graph, ranges: dict[str, Range], base: QuantConfig, x_val: np.ndarray, y_val: np.ndarray,
           max_drop: float, widths=WIDTHS, progress=None, means=None, inputs=None) -> MixedResult:
    """Greedy per-layer weight widths for ``f`` (the float graph after the float passes)."""
    widths = tuple(sorted(set(int(w) for w in widths), reverse=True))
    y_val = np.asarray(y_val).reshape(-1)
    if len(y_val) != len(x_val) or len(y_val) == 0:
        raise ValueError("mixed precision needs validation data with one label per sample")
    layers = weighted_layers(f)
    if not layers:
        raise ValueError("the model has no layer with weights to narrow")
    float_acc = float(np.mean(np.argmax(run_float(f, x_val)[0].reshape(len(x_val), -1), axis=1) == y_val))
    counts = {n.name: _weight_count(f, n) for n in layers}
    cache: dict[tuple, Point] = {}
    tried: list[Point] = []

    def evaluate(bits: dict[str, int]) -> Point:
        key = tuple(sorted(bits.items()))
        if key in cache:
            return cache[key]
        cfg = replace(base, layer_weight_bits=key)
        q = quantize_graph(f, ranges, cfg, means, inputs)
        xq = quantize_float(x_val, q.qtype(q.inputs[0]))
        out = run_int(q, xq)[0].reshape(len(x_val), -1)
        acc = float(np.mean(np.argmax(out, axis=1) == y_val))
        bitops = sum(_macs(q, n) * bits[n.name] * base.act_bits for n in layers)
        p = Point(dict(bits), sum(counts[k] * b for k, b in bits.items()), bitops, acc)
        cache[key] = p
        tried.append(p)
        if progress:
            progress(f"mixed precision: {p.weight_bits_total} weight bits -> {acc:.2%}")
        return p

    bits = {n.name: widths[0] for n in layers}
    uniform = current = evaluate(bits)
    floor = float_acc - max_drop
    while True:
        best, best_score = None, -np.inf
        for name in bits:
            i = widths.index(bits[name])
            if i + 1 >= len(widths):
                continue
            trial = evaluate({**bits, name: widths[i + 1]})
            if trial.accuracy < floor:
                continue
            saved = current.weight_bits_total - trial.weight_bits_total
            lost = max(current.accuracy - trial.accuracy, 0.0)
            score = saved / (lost + 1e-3)
            if score > best_score:
                best, best_score = trial, score
        if best is None:
            break
        bits, current = dict(best.bits), best
    for p in tried:  # Pareto: no other point is at least as cheap and at least as accurate, one strictly
        p.pareto = not any(o is not p and o.weight_bits_total <= p.weight_bits_total and o.accuracy >= p.accuracy
                           and (o.weight_bits_total < p.weight_bits_total or o.accuracy > p.accuracy) for o in tried)
    chosen = current if current.accuracy >= floor else uniform
    cfg = replace(base, layer_weight_bits=tuple(sorted(chosen.bits.items())))
    return MixedResult(cfg, chosen, uniform, float_acc, max_drop, tried)
