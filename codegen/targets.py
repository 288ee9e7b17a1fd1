"""Backends are data: the IR ops each target implements, and the lowering it renders from.

``c`` and ``hls`` render a :class:`.program.Program` (any DAG of their ops; HLS with one
buffer per step for its DATAFLOW region); ``verilog`` renders the Dense-chain
:class:`.lower.HwModel` (the PE/SIMD dense engines) when every op is Dense/Reshape, and
otherwise a simple CNN chain (:class:`.verilog_cnn.CnnModel`, frame engines). :func:`lower_for` refuses a graph the target cannot implement,
naming the node, before any file is written.
"""

from __future__ import annotations

from ..ir import Graph
from .hls_program import HLS_OPS, lower_hls
from .lower import LOWERABLE_OPS, HwModel, lower
from .program import C_OPS, Program, lower_program
from .verilog_cnn import CNN_OPS, CnnModel, lower_cnn

TARGET_OPS: dict[str, frozenset[str]] = {"c": C_OPS, "hls": HLS_OPS, "verilog": LOWERABLE_OPS | CNN_OPS}


def lower_for(q: Graph, target: str) -> Program | HwModel | CnnModel:
    if target not in TARGET_OPS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGET_OPS)}")
    if target == "c":
        return lower_program(q, target)
    if target == "hls":
        return lower_hls(q, target)
    if all(n.op in LOWERABLE_OPS for n in q.topo()):
        return lower(q, target)
    return lower_cnn(q)
