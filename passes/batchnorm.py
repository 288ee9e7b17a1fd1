"""Folding BatchNormalization into the linear layer before it."""

from __future__ import annotations

from ..ir import Graph
from .affine import fold_scale_shift
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
        fold_scale_shift(g, src, bn, g.consts[bn.inputs[1]], g.consts[bn.inputs[2]])
        changed = True
    if changed:
        g.prune()
    return changed
