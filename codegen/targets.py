"""Backends are data: each target's lowering table (the ops it implements) and the
lowering it renders from.

``c`` and ``hls`` render a :class:`.program.Program` (any DAG of the ops in their tables,
:data:`.program.LOWERINGS` and :data:`.hls_program.LOWERINGS`; HLS with one buffer per
step for its DATAFLOW region); ``verilog`` (table :data:`.verilog_cnn.LOWERINGS`) renders
the Dense-chain :class:`.lower.HwModel` (the PE/SIMD dense engines) when every op is in
that chain's table, :data:`.lower.DENSE_CHAIN`, and otherwise the engine graph
(:class:`.verilog_cnn.CnnModel`, line-buffer window engines). :func:`lower_for` refuses a graph
the target cannot implement, naming the node, before any file is written.
"""

from __future__ import annotations

from typing import Callable

from ..ir import Graph
from .hls_program import LOWERINGS as HLS_LOWERINGS, lower_hls
from .lower import DENSE_CHAIN, HwModel, lower
from .program import LOWERINGS as C_LOWERINGS, Program, lower_program
from .verilog_cnn import LOWERINGS as VERILOG_LOWERINGS, CnnModel, lower_cnn


def _lower_verilog(q: Graph) -> HwModel | CnnModel:
    if all(n.op in DENSE_CHAIN for n in q.topo()):
        return lower(q, "verilog")
    return lower_cnn(q)


# target -> (the ops it implements, its lowering of a quantized graph)
_TARGETS: dict[str, tuple[frozenset[str], Callable[[Graph], Program | HwModel | CnnModel]]] = {
    "c": (C_LOWERINGS.ops(), lower_program),
    "hls": (HLS_LOWERINGS.ops(), lower_hls),
    "verilog": (VERILOG_LOWERINGS.ops(), _lower_verilog),
}
TARGET_OPS: dict[str, frozenset[str]] = {name: ops for name, (ops, _) in _TARGETS.items()}


def lower_for(q: Graph, target: str) -> Program | HwModel | CnnModel:
    if target not in _TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(_TARGETS)}")
    return _TARGETS[target][1](q)
