"""Folding BatchNormalization into the linear layer before it."""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from .fuse import sole_linear_producer


def fold_batchnorm(g: Graph) -> bool:
    """``BN(Conv(x, W, b))`` -> ``Conv(x, W', b')`` (and the same for Dense) when the
    linear layer's output has the BN as its only reader and is not a graph output.

    The IR BN is ``y = x * mul[c] + add[c]`` with ``mul = gamma / sqrt(var + eps)`` and
    ``add = beta - mean * mul`` (see :mod:`nnforge.ir.ops.batchnorm`), so per output
    channel ``m``::

        W'[m, ...] = W[m, ...] * gamma[m] / sqrt(var[m] + eps)      = W[m] * mul[m]
        b'[m]      = (b[m] - mean[m]) * gamma[m] / sqrt(var[m] + eps) + beta[m]
                   = b[m] * mul[m] + add[m]

    computed in float64. A BN with no such linear layer before it is left alone.
    """
    changed = False
    for bn in [n for n in g.topo() if n.op == "BatchNormalization"]:
        src = sole_linear_producer(g, bn.inputs[0])
        if src is None:
            continue
        if not (g.is_const(bn.inputs[1]) and g.is_const(bn.inputs[2])):
            continue
        x, w_name, b_name = src.inputs
        mul = g.consts[bn.inputs[1]].astype(np.float64)
        add = g.consts[bn.inputs[2]].astype(np.float64)
        w = g.consts[w_name].astype(np.float64)
        b = g.consts[b_name].astype(np.float64)
        w2 = w * mul.reshape((-1,) + (1,) * (w.ndim - 1))
        b2 = b * mul + add
        w2_name = g.add_const(g.fresh_name(f"{w_name}_bn"), w2.astype(np.float32))
        b2_name = g.add_const(g.fresh_name(f"{b_name}_bn"), b2.astype(np.float32))
        g.remove_node(bn.name)
        g.remove_node(src.name)
        g.add_node(src.with_(inputs=(x, w2_name, b2_name), outputs=bn.outputs))
        changed = True
    if changed:
        g.prune()
    return changed
