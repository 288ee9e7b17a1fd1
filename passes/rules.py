"""Rewrite rules over the float graph: a pattern, the reason it does not apply, the
replacement, and the algebra in the docstring. :data:`RULES` runs first in
:data:`nnforge.passes.FLOAT_PIPELINE`, in order, once each.

Every rule is ``(g: Graph) -> bool`` (changed) and visits each node of the graph once.
An intermediate value may be replaced only when nothing else reads it and it is not a
graph output, so a rewrite never changes what any other node sees.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from ..ir.ops import op_def, ops_with

SQRT1_2 = 1.0 / np.sqrt(2.0)
RTOL = 1e-6  # constants of a pattern are float32: they match within this


def _scalar(g: Graph, t: str) -> float | None:
    """The value of ``t`` if it is a constant holding one number, else None."""
    c = g.consts.get(t)
    return float(np.asarray(c).reshape(())) if c is not None and np.size(c) == 1 else None


def _is(value: float | None, want: float) -> bool:
    return value is not None and abs(value - want) <= RTOL * abs(want)


def _sole_reader(g: Graph, t: str, op: str | None = None):
    """The one node reading ``t`` (of op ``op`` if given), when ``t`` is not a graph output."""
    readers = g.consumers(t)
    if len(readers) != 1 or t in g.outputs or (op is not None and readers[0].op != op):
        return None
    return readers[0]


def _other(node, t: str) -> str | None:
    """The input of a binary ``node`` that is not ``t`` (None if both are ``t``)."""
    a, b = node.inputs
    return b if a == t and b != t else a if b == t and a != t else None


def _scaled(g: Graph, t: str, factor: float):
    """``(x, node)`` when ``t = Mul(x, c)`` with ``c`` the scalar ``factor``, else None."""
    node = g.producer(t)
    if node is None or node.op != "Mul":
        return None
    for x, c in (node.inputs, node.inputs[::-1]):
        if _is(_scalar(g, c), factor) and not g.is_const(x):
            return x, node
    return None


def _replace(g: Graph, dead: list, op: str, x: str, out, name: str) -> None:
    """Remove the nodes ``dead`` and compute their last output ``out`` as ``op(x)``."""
    for node in dead:
        g.remove_node(node.name)
    g.add_node(Node(name, op, [x], [out]))


def _gelu_product(g: Graph, a: str, x: str):
    """The nodes computing ``0.5 * x * a`` from ``a`` (two Muls, in any order: ``(x * a) * 0.5``,
    ``x * (0.5 * a)``, ``(0.5 * x) * a``), the last one last; else None."""
    m1 = _sole_reader(g, a, "Mul")
    if m1 is None:
        return None
    p = _other(m1, a)
    if p == x:  # (x * a) * 0.5
        m2 = _sole_reader(g, m1.outputs[0], "Mul")
        ok = m2 is not None and _is(_scalar(g, _other(m2, m1.outputs[0]) or ""), 0.5)
        return [m1, m2] if ok else None
    if _is(_scalar(g, p or ""), 0.5):  # x * (0.5 * a)
        m2 = _sole_reader(g, m1.outputs[0], "Mul")
        return [m1, m2] if m2 is not None and _other(m2, m1.outputs[0]) == x else None
    half = _scaled(g, p, 0.5) if p else None  # (0.5 * x) * a
    reader = _sole_reader(g, p) if half is not None else None
    if half is not None and half[0] == x and reader is not None and reader.name == m1.name:
        return [half[1], m1]
    return None


def fuse_gelu(g: Graph) -> bool:
    """``0.5 * x * (1 + erf(x / sqrt(2)))`` -> ``Gelu(x)``: the erf form exporters write
    (``Div(x, sqrt 2)``, which the frontend makes ``Mul(x, 1 / sqrt 2)``, ``Erf``, ``Add 1``,
    and two ``Mul``, by ``x`` and by ``0.5``, in either order) is one table. Not applied
    when an intermediate value has another reader or a constant differs from the formula's."""
    changed = False
    for erf in [n for n in g.topo() if n.op == "Erf"]:
        scaled = _scaled(g, erf.inputs[0], SQRT1_2)
        reader = _sole_reader(g, erf.inputs[0])
        if scaled is None or reader is None or reader.name != erf.name:
            continue
        x, div = scaled
        add = _sole_reader(g, erf.outputs[0], "Add")
        if add is None or not _is(_scalar(g, _other(add, erf.outputs[0]) or ""), 1.0):
            continue
        muls = _gelu_product(g, add.outputs[0], x)
        if muls is None:
            continue
        _replace(g, [div, erf, add, *muls], "Gelu", x, muls[-1].outputs[0], muls[-1].name)
        changed = True
    if changed:
        g.prune()
    return changed


def fuse_silu(g: Graph) -> bool:
    """``x * sigmoid(x)`` -> ``Silu(x)`` (SiLU / Swish: ``Mul(x, Sigmoid(x))``, either operand
    order), one table instead of a table and a product. Not applied when the Sigmoid's output
    has another reader."""
    changed = False
    for sig in [n for n in g.topo() if n.op == "Sigmoid"]:
        x = sig.inputs[0]
        mul = _sole_reader(g, sig.outputs[0], "Mul")
        if mul is None or _other(mul, sig.outputs[0]) != x:
            continue
        _replace(g, [sig, mul], "Silu", x, mul.outputs[0], mul.name)
        changed = True
    if changed:
        g.prune()
    return changed


def fuse_mish(g: Graph) -> bool:
    """``x * tanh(softplus(x))`` -> ``Mish(x)`` (``Mul(x, Tanh(Softplus(x)))``, either
    operand order). Not applied when the Softplus or Tanh output has another reader."""
    changed = False
    for sp in [n for n in g.topo() if n.op == "Softplus"]:
        x = sp.inputs[0]
        th = _sole_reader(g, sp.outputs[0], "Tanh")
        mul = _sole_reader(g, th.outputs[0], "Mul") if th is not None else None
        if mul is None or _other(mul, th.outputs[0]) != x:
            continue
        _replace(g, [sp, th, mul], "Mish", x, mul.outputs[0], mul.name)
        changed = True
    if changed:
        g.prune()
    return changed


# ---- a constant scale or offset before a layer ---------------------------------------------

# the layers a constant scale or offset before them folds into: every ``linear`` op (y = W x + b,
# W output channel first) and Gemm, the ONNX form of Dense that these rules still see (they
# run before canonicalize.gemm_to_dense)
LAYERS = ops_with(linear=True) | {"Gemm"}
LINEAR = LAYERS | {"MatMul"}  # a constant after one of these folds into it (passes/affine.py)


def _per_input_channel(c: np.ndarray, shape: tuple) -> np.ndarray | None:
    """Constant ``c`` as one value per input channel (axis 0 of a sample of ``shape``), or None."""
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.full(shape[0], float(c.reshape(-1)[0]))
    if c.shape == (shape[0],) + (1,) * (len(shape) - 1):
        return c.reshape(-1)
    return None


def _folded_weights(g: Graph, layer, s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W', b')`` of ``layer`` reading ``x * s[c] + a[c]`` instead of ``x`` (float64; b' None
    when ``a`` is zero and the layer has no bias to change)."""
    w = g.consts[layer.inputs[1]].astype(np.float64)
    if op_def(layer.op).has(window=True):  # Conv: W (M, C/groups, *k), row m reads channels
        # (m // (M/groups)) * C/groups + j
        m, cg = w.shape[:2]
        idx = (np.arange(m) // (m // int(layer.attr("groups", 1))))[:, None] * cg + np.arange(cg)[None, :]
        extra = (1,) * (w.ndim - 2)
        shift = (w.reshape(m, cg, -1).sum(axis=2) * a[idx]).sum(axis=1)
        return w * s[idx].reshape(m, cg, *extra), g.consts[layer.inputs[2]].astype(np.float64) + shift
    if op_def(layer.op).has(linear=True):  # Dense: W (N, K)
        return w * s[None, :], g.consts[layer.inputs[2]].astype(np.float64) + w @ a
    trans = bool(layer.attr("transB", 0))  # Gemm: y = alpha * x @ op(B) + beta * C, op(B) (K, N)
    op_b = w.T if trans else w
    new_b = w * s[None, :] if trans else w * s[:, None]
    if not np.any(a):
        return new_b, None
    c = g.consts[layer.inputs[2]].astype(np.float64).reshape(-1) if len(layer.inputs) > 2 else np.zeros(1)
    bias = float(layer.attr("beta", 1.0)) * np.broadcast_to(c, (op_b.shape[1],))
    return new_b, bias + float(layer.attr("alpha", 1.0)) * (a @ op_b)


def fold_affine_into_next_layer(g: Graph) -> bool:
    """``Mul(x, s)`` or ``Add(x, a)`` by a constant whose only reader is a Dense / Gemm / Conv
    folds into that layer's weights: with ``s`` and ``a`` scalars or one value per input channel

        Dense(x * s + a) = x @ (W * s)^T + (b + W @ a)
        Conv(x * s + a)[m] = conv(x, W[m, c] * s[c]) + (b[m] + sum_{c,k} W[m, c, k] * a[c])

    (Gemm likewise on ``op(B)`` rows, with ``beta`` becoming 1). Visited from the last node
    back, so ``(x - m) / s`` (an Add, then a Mul) folds whole. Not applied: an Add before a
    Conv with padding (the pads hold zeros of ``x * s + a``, not of ``x``), a constant that is
    not per channel, an activation the constant broadcasts up, weights whose integer scales
    the model gave (``meta['weight_scales']``), or a value that a layer computes for this
    op alone (it folds into that layer instead: :func:`.affine.fold_affine_into_linear`)."""
    changed = False
    for node in reversed([n for n in g.topo() if n.op in ("Mul", "Add")]):  # structure: pattern
        consts = [t for t in node.inputs if g.is_const(t)]
        acts = [t for t in node.inputs if not g.is_const(t)]
        out = node.outputs[0]
        layer = _sole_reader(g, out)
        if len(consts) != 1 or len(acts) != 1 or layer is None or layer.op not in LAYERS:
            continue
        c = _per_input_channel(g.consts[consts[0]], g.shape(out))
        src = g.producer(acts[0])
        if (c is None or layer.inputs[0] != out or g.shape(acts[0]) != g.shape(out)
                or (src is not None and src.op in LINEAR and len(g.consumers(acts[0])) == 1)
                or layer.inputs[1] in g.meta.get("weight_scales", {})
                or (node.op == "Add" and layer.op == "Conv" and any(layer.attr("pads", ()) or ()))):
            continue
        s, a = (c, np.zeros_like(c)) if node.op == "Mul" else (np.ones_like(c), c)
        w, b = _folded_weights(g, layer, s, a)
        inputs = [acts[0], g.add_const(g.fresh_name(f"{layer.name}_W"), w.astype(np.float32))]
        attrs = dict(layer.attrs)
        if b is not None:
            inputs.append(g.add_const(g.fresh_name(f"{layer.name}_b"), b.astype(np.float32)))
            if layer.op == "Gemm":
                attrs["beta"] = 1.0
        elif len(layer.inputs) > 2:
            inputs.append(layer.inputs[2])
        g.replace_node(layer.name, layer.with_(inputs=tuple(inputs), attrs=attrs))
        g.remove_node(node.name)
        changed = True
    if changed:
        g.prune()
    return changed


RULES: tuple = (fuse_gelu, fuse_silu, fuse_mish, fold_affine_into_next_layer)
