"""Folding a constant scale or offset into the Dense / Conv that produces its input.

``Mul(Dense(x, W, b), m)`` -> ``Dense(x, W * m[n], b * m[n])`` and
``Add(Dense(x, W, b), a)`` -> ``Dense(x, W, b + a[n])`` (the same for ``Conv``), when the
constant is a scalar or one value per output channel (``(N,)`` for Dense, ``(M, 1, ...)``
for Conv) and the layer's output has no other reader. Exported graphs write a layer's
rescale this way (onnxruntime's dynamic quantization: integer MatMul, then the scales,
then the bias). Weight scales the model gave (``meta['weight_scales']``) follow a Mul:
``s[n] * |m[n]|`` (the integers are unchanged; a negative factor flips their sign).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from .fuse import sole_linear_producer


def _per_channel(c: np.ndarray, layer, g: Graph) -> np.ndarray | None:
    """The constant as one value per output channel of ``layer``, or None."""
    n = g.shape(layer.inputs[1])[0]
    out_rank = len(g.shape(layer.outputs[0]))
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.full(n, float(c.reshape(-1)[0]))
    if layer.op == "Dense" and c.shape in ((n,), (1, n)):
        return c.reshape(n)
    if layer.op == "Conv" and c.size == n and c.ndim <= out_rank and c.shape[-(out_rank - 1):] == (1,) * (out_rank - 1):
        return c.reshape(n)
    return None


def fold_affine_into_linear(g: Graph) -> bool:
    """Fold every foldable Mul / Add by a constant into its Dense / Conv (see module doc)."""
    changed = False
    for node in [n for n in g.topo() if n.op in ("Mul", "Add")]:  # structure: pattern
        if node.name not in {n.name for n in g.topo()}:
            continue
        consts = [t for t in node.inputs if g.is_const(t)]
        acts = [t for t in node.inputs if not g.is_const(t)]
        if len(consts) != 1 or len(acts) != 1:
            continue
        layer = sole_linear_producer(g, acts[0])
        if layer is None:
            continue
        c = _per_channel(g.consts[consts[0]], layer, g)
        if c is None:
            continue
        if node.op == "Mul":
            fold_scale_shift(g, layer, node, c, np.zeros_like(c))
        else:
            fold_scale_shift(g, layer, node, np.ones_like(c), c)
        changed = True
    if changed:
        g.prune()
    return changed


def fold_scale_shift(g: Graph, layer, node, mul: np.ndarray, add: np.ndarray) -> None:
    """Replace ``node`` (computing ``layer``'s output ``* mul[n] + add[n]``, per output
    channel) and ``layer`` by one layer with ``W' = W * mul[n]``, ``b' = b * mul[n] + add[n]``
    (float64), writing ``node``'s output; weight scales the model gave follow ``mul``."""
    x, w_name, b_name = layer.inputs
    w = g.consts[w_name].astype(np.float64)
    b = g.consts[b_name].astype(np.float64)
    mul, add = np.asarray(mul, dtype=np.float64), np.asarray(add, dtype=np.float64)
    new_w = g.add_const(g.fresh_name(f"{layer.name}_W"), (w * mul.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32))
    new_b = g.add_const(g.fresh_name(f"{layer.name}_b"), (b * mul + add).astype(np.float32))
    scales = g.meta.get("weight_scales", {})
    if w_name in scales:
        s = np.broadcast_to(np.asarray(scales[w_name]["scale"], dtype=np.float64), mul.shape) * np.abs(mul)
        g.meta["weight_scales"] = {**scales, new_w: {**scales[w_name], "scale": s.tolist()}}
    g.remove_node(node.name)
    g.remove_node(layer.name)
    g.add_node(layer.with_(inputs=(x, new_w, new_b), outputs=node.outputs))
