"""Fusion of activations into the layer that produces their input."""

from __future__ import annotations

from ..ir import Graph
from ..ir.ops import op_def


def sole_linear_producer(g: Graph, tensor: str):
    """The Dense or Conv (without a fused Relu) that produces ``tensor``, when ``tensor`` has
    one reader and is not a graph output, so the reader can be folded into it; else None."""
    src = g.producer(tensor)
    if src is None or not op_def(src.op).has(linear=True) or src.attr("relu"):
        return None
    if len(g.consumers(tensor)) != 1 or tensor in g.outputs:
        return None
    return src


def fuse_dense_relu(g: Graph) -> bool:
    """``Relu(Dense(x, W, b))`` -> ``Dense(x, W, b, relu=True)``, and the same for ``Conv``,
    when the layer's output has no other reader: ``max(x @ W.T + b, 0)`` (or
    ``max(conv(x, W) + b, 0)``) is then computed in one place."""
    changed = False
    for relu in [n for n in g.topo() if n.op == "Relu"]:
        src = sole_linear_producer(g, relu.inputs[0])
        if src is None:
            continue
        g.remove_node(relu.name)
        g.remove_node(src.name)
        g.add_node(src.with_(outputs=relu.outputs, attrs={**src.attrs, "relu": True}))
        changed = True
    if changed:
        g.prune()
    return changed
