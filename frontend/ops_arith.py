"""Translators of Add, Mul and Sum: an activation with a constant (folded into the
neighbouring layer by the passes) or two activations of the same rank."""

from __future__ import annotations

from ..ir import Node
from .errors import ImportError_, q as qn
from .quant_dynamic import scale_product
from .translate import ARITHMETIC, translates


def elementwise(imp, onode, op: str) -> None:
    """A binary elementwise op of an activation and a constant, or of two activations."""
    ins = []
    for i in range(2):
        t = onode.input[i]
        c = imp.const(t)
        if c is None:
            ins.append(imp.activation_input(onode, i))
            continue
        other = imp.resolve(onode.input[1 - i])
        rank = len(imp.g.shape(other)) if other in imp.g.tensors else 0
        while c.ndim > rank and c.shape[0] == 1:
            c = c.reshape(c.shape[1:])  # drop broadcast batch axes
        if c.ndim > rank:
            raise ImportError_(f"node {qn(onode.name)}: {op} constant of shape {c.shape} would broadcast over the batch")
        ins.append(imp.add_const(f"{onode.name}_c{i}", c))
    shapes = [imp.g.shape(t) for t in ins if not imp.g.is_const(t)]
    if len(shapes) == 2 and len(shapes[0]) != len(shapes[1]):
        raise ImportError_(
            f"node {qn(onode.name)}: {op} of activations with per-sample shapes {shapes[0]} and "
            f"{shapes[1]} would broadcast over the batch axis"
        )
    imp.emit(onode, op, ins)


@translates("Add", exact=ARITHMETIC)
def add(imp, onode) -> None:
    elementwise(imp, onode, "Add")


@translates("Mul", exact=ARITHMETIC)
def mul(imp, onode) -> None:
    if not scale_product(imp, onode):
        elementwise(imp, onode, "Mul")


@translates("Sum", exact=ARITHMETIC)
def sum_(imp, onode) -> None:
    """Sum of N activations: a chain of Adds (each requantized in the integer model)."""
    g = imp.g
    xs = [imp.activation_input(onode, i) for i in range(len(onode.input))]
    acc = xs[0]
    for i, x in enumerate(xs[1:], 1):
        last = i == len(xs) - 1
        out = onode.output[0] if last else g.fresh_name(f"{onode.output[0]}_part{i}")
        name = g.fresh_name(f"{onode.name or 'Sum'}_{i}")
        if len(g.shape(acc)) != len(g.shape(x)):
            raise ImportError_(f"node {qn(onode.name)}: Sum of different ranks would broadcast over the batch axis")
        g.add_node(Node(name, "Add", [acc, x], [out]))
        acc = out
    if len(xs) == 1:
        imp.alias[onode.output[0]] = xs[0]
