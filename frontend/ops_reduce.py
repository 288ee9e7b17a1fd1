"""Translators of the reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin over axes of
a sample, and ArgMax at the model output (registered with :func:`.translate.translates`).

- Axes come from the ``axes`` attribute, or from the constant second input in the opsets
  that moved them there (13 for ReduceSum, 18 for the others). No axes means every axis
  (the batch axis among them: refused), or the identity with ``noop_with_empty_axes``.
- A reduction over the batch axis is refused: every sample is computed on its own.
- A mean or maximum over every spatial axis of a ``(C, *S)`` sample stays what it is, a
  ``GlobalAveragePool`` / ``GlobalMaxPool`` (plus a Reshape when ``keepdims`` is 0); every
  other reduction is the IR op of the same name (:mod:`nnforge.ir.ops.reduce`).
- ArgMax only as the model's last op: its output is an index, not a value later layers read.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node
from .errors import ImportError_, node_label
from .translate import VALUES, translates

# the opset from which each reduction reads its axes from an input instead of an attribute
AXES_INPUT = {"ReduceSum": 13, "ReduceMean": 18, "ReduceMax": 18, "ReduceMin": 18}
GLOBAL_POOL = {"ReduceMean": "GlobalAveragePool", "ReduceMax": "GlobalMaxPool"}


def _refuse(onode, why: str) -> ImportError_:
    return ImportError_(f"{node_label(onode)}: {why}")


def _axes(imp, onode, rank: int) -> list[int] | None:
    """The reduced axes of the full tensor (batch axis 0), sorted; None for every axis."""
    if imp.opset >= AXES_INPUT[onode.op_type]:
        given = len(onode.input) > 1 and onode.input[1]
        axes = imp.const(onode.input[1]) if given else None
        if given and axes is None:
            raise _refuse(onode, "the axes must be a constant")
    else:
        axes = imp.attrs(onode).get("axes")
    if axes is None or not len(axes):
        return None
    axes = sorted({int(a) % rank for a in np.asarray(axes).reshape(-1)})
    return axes


def _sample_axes(onode, axes: list[int] | None, rank: int) -> list[int]:
    axes = list(range(rank)) if axes is None else axes
    if 0 in axes:
        raise _refuse(onode, f"{onode.op_type} over axes {axes} includes the batch axis 0; nnforge computes "
                             f"every sample on its own, so only axes of a sample (1 .. {rank - 1}) can be reduced")
    return [a - 1 for a in axes]


@translates("ReduceMax", "ReduceMin", exact=VALUES)
@translates("ReduceMean", "ReduceSum")
def reduce(imp, onode) -> None:
    op = onode.op_type
    x = imp.activation_input(onode)
    a = imp.attrs(onode)
    shape = imp.g.shape(x)
    axes = _axes(imp, onode, len(shape) + 1)
    if axes is None and a.get("noop_with_empty_axes", 0):
        imp.alias[onode.output[0]] = x
        return
    sample_axes = _sample_axes(onode, axes, len(shape) + 1)
    keep = bool(a.get("keepdims", 1))
    if op in GLOBAL_POOL and len(shape) >= 2 and sample_axes == list(range(1, len(shape))):
        _global_pool(imp, onode, GLOBAL_POOL[op], x, keep)
    else:
        imp.emit(onode, op, [x], {"axes": tuple(sample_axes), "keepdims": keep})
    imp.check_inferred(onode)


def _global_pool(imp, onode, pool: str, x: str, keep: bool) -> None:
    """The reduction over every spatial axis: the global pool (and a Reshape to ``(C,)``)."""
    if keep:
        imp.emit(onode, pool, [x])
        return
    g = imp.g
    mid = g.fresh_name(f"{onode.output[0]}_keep")
    name = g.fresh_name(onode.name or onode.op_type)
    g.add_node(Node(name, pool, [x], [mid]))
    g.add_node(Node(g.fresh_name(f"{name}_squeeze"), "Reshape", [mid], [onode.output[0]], {"shape": (g.shape(x)[0],)}))


@translates("ArgMax")
def argmax(imp, onode) -> None:
    x = imp.activation_input(onode)
    a = imp.attrs(onode)
    out = onode.output[0]
    graph = imp.model.graph
    if out not in {o.name for o in graph.output} or any(out in n.input for n in graph.node):
        raise _refuse(onode, "ArgMax is supported only as the last op of the model (its output is an index, not "
                             "a value later layers could read)")
    rank = len(imp.g.shape(x)) + 1
    axis = int(a.get("axis", 0)) % rank
    if axis == 0:
        raise _refuse(onode, "ArgMax over the batch axis 0; nnforge computes every sample on its own, so only an "
                             f"axis of a sample (1 .. {rank - 1}) can be reduced")
    imp.emit(onode, "ArgMax", [x], {"axis": axis - 1, "keepdims": bool(a.get("keepdims", 1)),
                                    "select_last_index": bool(a.get("select_last_index", 0))})
    imp.check_inferred(onode)
