"""Stream layouts of the Verilog engine graph, and the refusal every engine uses.

A stream of a tensor of per-sample shape ``s`` (rank ``r``) in layout ``perm`` carries
``x.transpose(perm).reshape(-1)`` per sample ``x``; the identity is the IR's flat order
(CHW), ``(1, ..., r - 1, 0)`` channels last (:func:`channels_last`). Engine builders take
``layouts = {"in": [perm per activation input], "out": perm}`` (``None``, or a ``None``
perm, is the identity), read with :func:`node_layouts`.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from .lower import BackendError
from .naming import sanitize


def refuse(node, why: str):
    """Refuse ``node`` for the Verilog target, naming it (every engine module uses this)."""
    raise BackendError(f"target 'verilog' cannot implement node {sanitize(node.name)!r} (op {node.op}): {why}")


def channels_last(rank: int) -> tuple[int, ...]:
    """The stream layout of a (C, ...) tensor with the channels innermost."""
    return tuple(range(1, rank)) + (0,) if rank >= 2 else tuple(range(rank))


def check_perm(perm, rank: int, what: str) -> tuple[int, ...]:
    """``perm`` checked to be a layout of a rank-``rank`` tensor (``None``: the identity)."""
    if perm is None:
        return tuple(range(rank))
    try:
        p = tuple(int(a) for a in perm)
    except TypeError:
        raise BackendError(f"target 'verilog': layout {perm!r} of {what} is not a sequence of axes") from None
    if sorted(p) != list(range(rank)):
        raise BackendError(f"target 'verilog': layout {p} of {what} is not a permutation of the axes of a "
                           f"rank-{rank} tensor")
    return p


def node_layouts(q: Graph, node, layouts: dict | None) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """``(in perms, out perm)`` of ``node``'s activation inputs (node order) and its output,
    from ``layouts = {"in": [...], "out": perm}`` (``None`` anywhere: the identity), each
    checked against its tensor's rank."""
    acts = [t for t in node.inputs if not q.is_const(t)]
    y = node.outputs[0]
    layouts = layouts or {}
    ins = layouts.get("in")
    if ins is None:
        ins = [None] * len(acts)
    ins = list(ins)
    if len(ins) != len(acts):
        refuse(node, f"got {len(ins)} input layouts for {len(acts)} activation inputs")
    name = sanitize(node.name)
    in_p = [check_perm(p, len(q.shape(t)), f"input {k} of {name}") for k, (p, t) in enumerate(zip(ins, acts))]
    return in_p, check_perm(layouts.get("out"), len(q.shape(y)), f"the output of {name}")


def stream_shape(shape, perm) -> tuple[int, ...]:
    """The shape whose row-major order is the stream of a ``shape`` tensor in layout ``perm``."""
    return tuple(int(shape[a]) for a in perm)


def stream_strides(shape, perm) -> list[int]:
    """Per IR axis of ``shape``: its stride in the stream of layout ``perm``."""
    ps = stream_shape(shape, perm)
    strides = [0] * len(ps)
    for j, a in enumerate(perm):
        strides[a] = int(np.prod(ps[j + 1:]))
    return strides


def same_order(shape, perm_a, perm_b) -> bool:
    """Whether layouts ``perm_a`` and ``perm_b`` of a ``shape`` tensor stream its elements in
    the same order (they may differ in where the axes of size 1 go)."""
    if tuple(perm_a) == tuple(perm_b):
        return True
    idx = np.arange(int(np.prod(shape))).reshape(tuple(shape))
    return np.array_equal(idx.transpose(perm_a).reshape(-1), idx.transpose(perm_b).reshape(-1))


def layout_note(perm: tuple[int, ...]) -> str:
    """The rule's note for a stream not in the IR's order ("" for the identity)."""
    return "" if perm == tuple(range(len(perm))) else f"; streams in layout {perm}"
