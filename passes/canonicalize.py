"""Canonicalization: every fully connected layer becomes one ``Dense`` op."""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node


def _dense_from(g: Graph, name: str, x: str, w_kn: np.ndarray, b: np.ndarray, out: str,
                scales_of: str | None = None) -> Node:
    """Build a Dense node reading ``x`` with weights given as ``(K, N)``; the weights keep
    the integer scales the model gave constant ``scales_of`` (``meta['weight_scales']``,
    per output channel, so a transpose does not change them)."""
    w = g.add_const(g.fresh_name(f"{name}_W"), np.ascontiguousarray(w_kn.T, dtype=np.float32))
    scales = g.meta.get("weight_scales", {})
    if scales_of in scales:  # a new dict: graph copies share meta's values
        g.meta["weight_scales"] = {**scales, w: scales[scales_of]}
    bias = g.add_const(g.fresh_name(f"{name}_b"), np.asarray(b, dtype=np.float32))
    return Node(name, "Dense", [x, w, bias], [out])


def gemm_to_dense(g: Graph) -> bool:
    """``Gemm(A, B, C)`` -> ``Dense(A, W, b)`` with ``W = alpha * op(B)^T`` and ``b = beta * C``
    (``b = 0`` without C). Returns True if anything changed."""
    changed = False
    for node in [n for n in g.topo() if n.op == "Gemm"]:
        b = g.consts[node.inputs[1]].astype(np.float64)
        if node.attr("transB", 0):
            b = b.T
        w_kn = node.attr("alpha", 1.0) * b
        n_out = w_kn.shape[1]
        c = g.consts[node.inputs[2]].reshape(-1) if len(node.inputs) > 2 else np.zeros(1)
        bias = node.attr("beta", 1.0) * np.broadcast_to(c, (n_out,))
        keep = node.inputs[1] if node.attr("alpha", 1.0) == 1.0 else None  # alpha changes the scale
        g.replace_node(node.name, _dense_from(g, node.name, node.inputs[0], w_kn, bias, node.outputs[0], keep))
        changed = True
    if changed:
        g.prune()
    return changed


def matmul_add_to_dense(g: Graph) -> bool:
    """``Add(MatMul(x, B), c)`` -> ``Dense(x, B^T, c)`` when ``c`` is a constant vector of
    the output width (or a scalar) and the MatMul result has no other reader; a lone
    ``MatMul(x, B)`` on a 1-D sample -> ``Dense(x, B^T, 0)``."""
    changed = False
    for node in [n for n in g.topo() if n.op == "MatMul"]:
        x, bname = node.inputs
        if len(g.shape(x)) != 1:
            continue  # batched matmul over extra axes stays MatMul
        b = g.consts[bname]
        n_out = b.shape[1]
        bias = np.zeros(n_out)
        out = node.outputs[0]
        readers = g.consumers(out)
        if len(readers) == 1 and readers[0].op == "Add" and out not in g.outputs:
            add = readers[0]
            other = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
            c = g.consts.get(other)
            # c must be a bias: the Add keeps the MatMul's shape (a (n, 1) constant would not)
            if c is not None and c.size in (1, n_out) and g.shape(add.outputs[0]) == g.shape(out):
                bias = np.broadcast_to(c.reshape(-1), (n_out,))
                g.remove_node(add.name)
                g.remove_node(node.name)
                g.add_node(_dense_from(g, node.name, x, b, bias, add.outputs[0], bname))
                changed = True
                continue
        g.replace_node(node.name, _dense_from(g, node.name, x, b, bias, out, bname))
        changed = True
    if changed:
        g.prune()
    return changed
