"""The graph IR: a small API over networkx so that passes never touch networkx itself.

Shapes are *per sample*: the batch axis is implicit and never stored. Every op's
reference functions take arrays with a leading batch axis.

Tensors are named values. A tensor is either a graph input, a constant (numpy array in
``consts``) or the single output of one node. Nodes are immutable; a pass that changes
a node replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import networkx as nx
import numpy as np

from .fixed import FixedType
from .ops import infer_shapes, op_def


class GraphError(Exception):
    """The graph is malformed (a bug in a pass or in the frontend)."""


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def with_(self, **changes: Any) -> "Node":
        return replace(self, **changes)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    qtype: FixedType | None = None  # set by quantization


class Graph:
    """A dataflow graph of :class:`Node` objects over named tensors."""

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self._g = nx.DiGraph()
        self._nodes: dict[str, Node] = {}
        self._producer: dict[str, str] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict[str, Any] = {}

    # ---- construction -------------------------------------------------------------
    def add_input(self, name: str, shape: Iterable[int]) -> None:
        self.tensors[name] = TensorInfo(tuple(shape))
        self.inputs.append(name)

    def add_const(self, name: str, value: np.ndarray) -> str:
        if name in self.tensors:
            raise GraphError(f"tensor {name!r} already exists")
        value = np.asarray(value)
        self.consts[name] = value
        self.tensors[name] = TensorInfo(tuple(value.shape))
        return name

    def fresh_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.tensors or name in self._nodes:
            name = f"{base}_{i}"
            i += 1
        return name

    def add_node(self, node: Node, out_shapes: Iterable[tuple[int, ...]] | None = None) -> Node:
        if node.name in self._nodes:
            raise GraphError(f"node {node.name!r} already exists")
        for t in node.inputs:
            if t not in self.tensors:
                raise GraphError(f"node {node.name!r} reads unknown tensor {t!r}")
        if out_shapes is None:
            out_shapes = infer_shapes(self, node)
        for t, shape in zip(node.outputs, out_shapes, strict=True):
            if t in self._producer or t in self.consts or t in self.inputs:
                raise GraphError(f"tensor {t!r} has two producers")
            self._producer[t] = node.name
            prev = self.tensors.get(t)
            self.tensors[t] = TensorInfo(tuple(shape), prev.qtype if prev else None)
        self._nodes[node.name] = node
        self._g.add_node(node.name)
        self._link(node)
        return node

    def _link(self, node: Node) -> None:
        for t in node.inputs:
            p = self._producer.get(t)
            if p is not None:
                self._g.add_edge(p, node.name)
        for t in node.outputs:
            for c in self.consumers(t):
                self._g.add_edge(node.name, c.name)

    def remove_node(self, name: str) -> None:
        node = self._nodes.pop(name)
        for t in node.outputs:
            self._producer.pop(t, None)
        self._g.remove_node(name)

    def replace_node(self, old: str, new: Node) -> None:
        """Put ``new`` where ``old`` was; ``new`` must produce the same output tensors."""
        if tuple(self._nodes[old].outputs) != tuple(new.outputs):
            raise GraphError("replace_node needs the same outputs")
        shapes = [self.tensors[t].shape for t in new.outputs]
        self.remove_node(old)
        self.add_node(new, shapes)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every reader of tensor ``old`` (and the graph outputs) read ``new``."""
        for c in list(self.consumers(old)):
            self._nodes[c.name] = c.with_(inputs=tuple(new if t == old else t for t in c.inputs))
            self._g.remove_edges_from(list(self._g.in_edges(c.name)))
            self._link(self._nodes[c.name])
        self.outputs = [new if t == old else t for t in self.outputs]

    def set_qtype(self, tensor: str, qtype: FixedType | None) -> None:
        self.tensors[tensor] = replace(self.tensors[tensor], qtype=qtype)

    def prune(self) -> None:
        """Drop nodes and constants that no graph output depends on."""
        live_nodes: set[str] = set()
        stack = [self._producer[t] for t in self.outputs if t in self._producer]
        while stack:
            n = stack.pop()
            if n in live_nodes:
                continue
            live_nodes.add(n)
            stack.extend(self._g.predecessors(n))
        for n in [n for n in self._nodes if n not in live_nodes]:
            self.remove_node(n)
        used = {t for n in self._nodes.values() for t in n.inputs} | set(self.outputs)
        used |= set(self.inputs)
        for t in [t for t in self.tensors if t not in used and t not in self._producer]:
            del self.tensors[t]
            self.consts.pop(t, None)

    # ---- queries --------------------------------------------------------------------
    def node(self, name: str) -> Node:
        return self._nodes[name]

    def producer(self, tensor: str) -> Node | None:
        p = self._producer.get(tensor)
        return self._nodes[p] if p is not None else None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self._nodes.values() if tensor in n.inputs]

    def is_const(self, tensor: str) -> bool:
        return tensor in self.consts

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.tensors[tensor].shape

    def qtype(self, tensor: str) -> FixedType | None:
        return self.tensors[tensor].qtype

    def topo(self) -> list[Node]:
        order = nx.lexicographical_topological_sort(self._g, key=lambda n: n)
        return [self._nodes[n] for n in order]

    def __len__(self) -> int:
        return len(self._nodes)

    def verify(self) -> None:
        """Check structural invariants; raise :class:`GraphError` on the first violation."""
        if not nx.is_directed_acyclic_graph(self._g):
            raise GraphError("graph has a cycle")
        for n in self._nodes.values():
            for t in n.inputs:
                if t not in self.tensors:
                    raise GraphError(f"node {n.name!r} reads unknown tensor {t!r}")
                if not (t in self.consts or t in self.inputs or t in self._producer):
                    raise GraphError(f"tensor {t!r} read by {n.name!r} has no producer")
            for t in n.outputs:
                if self._producer.get(t) != n.name:
                    raise GraphError(f"tensor {t!r} producer bookkeeping is wrong")
        for t in self.outputs:
            if t not in self.tensors:
                raise GraphError(f"graph output {t!r} does not exist")
        for n in self._nodes.values():
            unknown = set(n.attrs) - set(op_def(n.op).attrs)
            if unknown:
                raise GraphError(f"node {n.name!r} ({n.op}): unknown attributes {sorted(unknown)}")
            want = infer_shapes(self, n)
            have = [self.tensors[t].shape for t in n.outputs]
            if [tuple(s) for s in want] != have:
                raise GraphError(f"node {n.name!r}: stored shapes {have} != inferred {want}")

    def copy(self) -> "Graph":
        g = Graph(self.name)
        g._g = self._g.copy()
        g._nodes = dict(self._nodes)
        g._producer = dict(self._producer)
        g.tensors = dict(self.tensors)
        g.consts = dict(self.consts)
        g.inputs = list(self.inputs)
        g.outputs = list(self.outputs)
        g.meta = dict(self.meta)
        return g
