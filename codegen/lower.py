"""Lowering a quantized graph to a hardware model: the plain numbers every backend lays
out. Python computes every number here; templates only lay text out.

Backends are data: each declares the IR ops it supports; :func:`lower` refuses a graph
with any other op before a file is written (the Dense chain's are the keys of
:data:`DENSE_CHAIN`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import FixedType, Graph
from ..ir.fixed import signed_width_for
from ..ir.ops.dense import requant_params, ties_to_even
from .errors import BackendError
from .naming import sanitize
from .registry import Lowerings

# The Dense chain's lowering table: the IR ops a chain may hold (its keys) and what each
# becomes (a :class:`DenseLayer`, or None: a Reshape is a free view of the flat vector).
DENSE_CHAIN = Lowerings("dense chain")


@dataclass(frozen=True)
class DenseLayer:
    """``y[n] = sat(round_half_up(((b[n] + sum_k x[k] * w[n, k]) * mult[n]) >> shift), lo, hi)``.

    ``shift`` may be <= 0 (then it is an exact left shift by ``-shift``). ``lo``/``hi``
    are the output range; a fused Relu shows up as ``lo == max(out_t.lo, 0)``. ``mult``
    holds the per-output-channel multipliers (integers >= 0,
    :func:`nnforge.ir.ops.dense.requant_params`); None when every one is 1. ``even``: the
    shift rounds ties to even instead (:func:`nnforge.ir.ops.dense.ties_to_even`).
    """

    name: str
    n_in: int
    n_out: int
    in_t: FixedType
    w_t: FixedType
    out_t: FixedType
    weights: np.ndarray = field(repr=False)  # (n_out, n_in) int64
    bias: np.ndarray = field(repr=False)  # (n_out,) int64, at the accumulator scale
    acc_width: int
    shift: int
    lo: int
    hi: int
    relu: bool
    mult: np.ndarray | None = field(default=None, repr=False)  # (n_out,) int64, or None: all 1
    tensor: str = ""  # the IR tensor of the output
    even: bool = False

    @property
    def macs(self) -> int:
        return self.n_in * self.n_out

    @property
    def bias_width(self) -> int:
        m = int(np.abs(self.bias).max()) if self.bias.size else 0
        return signed_width_for(-m, m)


@dataclass(frozen=True)
class ModelIO:
    """What every lowered model shares (see :func:`interface`): its name and the type, size
    and per-sample shape of its input and output."""

    name: str
    in_t: FixedType
    out_t: FixedType
    n_in: int
    n_out: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class HwModel(ModelIO):
    layers: tuple[DenseLayer, ...]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def check_ops(q: Graph, target: str, supported) -> None:
    """Refuse a graph with an op the target lacks, naming the (sanitized) node."""
    for n in q.topo():
        if n.op not in supported:
            raise BackendError(f"target {target!r} cannot implement node {sanitize(n.name)!r} (op {n.op}); "
                               f"supported ops: {', '.join(sorted(supported))}")


@DENSE_CHAIN.lowers("Reshape")
def _flat_view(node, q: Graph, used: set[str]) -> None:
    return None


@DENSE_CHAIN.lowers("Dense")
def _dense_layer(node, q: Graph, used: set[str]) -> DenseLayer:
    x, w, b = node.inputs
    out_t = q.qtype(node.outputs[0])
    mult, shift = requant_params(node, q)
    relu = bool(node.attr("relu"))
    return DenseLayer(
        name=sanitize(node.name, used, prefix="layer"),
        n_in=q.shape(w)[1], n_out=q.shape(w)[0],
        in_t=q.qtype(x), w_t=q.qtype(w), out_t=out_t,
        weights=np.asarray(q.consts[w], dtype=np.int64),
        bias=np.asarray(q.consts[b], dtype=np.int64),
        acc_width=int(node.attr("acc_width")), tensor=node.outputs[0],
        shift=int(shift),
        lo=max(out_t.lo, 0) if relu else out_t.lo, hi=out_t.hi, relu=relu,
        mult=None if np.all(mult == 1) else np.asarray(mult, dtype=np.int64), even=ties_to_even(node, shift),
    )


def lower(q: Graph, target: str = "any") -> HwModel:
    """The Dense chain the HLS and Verilog engines implement (each node lowered by its
    entry in :data:`DENSE_CHAIN`)."""
    check_ops(q, target, DENSE_CHAIN.ops())
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    used: set[str] = set()
    layers = []
    cur = q.inputs[0]
    for node in q.topo():
        if node.inputs[0] != cur:
            raise BackendError(f"node {sanitize(node.name)!r} is not on a single chain; branches are not supported yet")
        cur = node.outputs[0]
        layer = DENSE_CHAIN[node.op](node, q, used)
        if layer is not None:
            layers.append(layer)
    if cur != q.outputs[0]:
        raise BackendError("the graph output is not at the end of the layer chain")
    if not layers:
        raise BackendError("the model has no layer to implement")
    return HwModel(**interface(q), layers=tuple(layers))


def interface(q: Graph) -> dict:
    """The fields every lowered model shares: its name and the types, sizes and per-sample
    shapes of the (single) graph input and output."""
    inp, outp = q.inputs[0], q.outputs[0]
    return {
        "name": sanitize(q.name, prefix="model"), "in_t": q.qtype(inp), "out_t": q.qtype(outp),
        "n_in": int(np.prod(q.shape(inp))), "n_out": int(np.prod(q.shape(outp))),
        "input_shape": tuple(q.shape(inp)), "output_shape": tuple(q.shape(outp)),
    }


def c_int_type(width: int, signed: bool) -> str:
    """The smallest <stdint.h> type holding ``width`` bits."""
    for bits in (8, 16, 32, 64):
        if width <= bits:
            return f"{'' if signed else 'u'}int{bits}_t"
    raise BackendError(f"no C integer type holds {width} bits")
