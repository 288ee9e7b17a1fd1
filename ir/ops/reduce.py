"""Shared parts of the reductions over axes of a sample (not an op itself): ReduceSum,
ReduceMean, ReduceMax and ReduceMin (:mod:`.reducesum`, :mod:`.reducemean`,
:mod:`.reducemax`, :mod:`.reducemin`).

Attributes: ``axes``, the reduced axes of the per-sample shape (the batch axis is never
one of them; the frontend refuses it), and ``keepdims`` as ONNX. Float: the numpy
reduction (a sum or mean in float64, rounded once to float32; the maximum of no values is
-inf, the minimum +inf, as ONNX).

Integer, Max / Min: the same maximum / minimum of the integers; the output type is the
input type (rule ``keep``).

Integer, Sum / Mean: the sum ``S`` over the reduced values is exact. With ``n`` values of
input type ``x`` its accumulator needs ``signed_width_for(n * x.lo, n * x.hi)`` bits
(:func:`acc_width`). The output type comes from calibration; with ``count = n`` for a Mean,
1 for a Sum, ``u = max(f_y - f_x, 0)`` and ``d = count * 2**max(f_x - f_y, 0)``, one
division rounding half up (as AveragePool and GlobalAveragePool round, ``//`` flooring)::

    y = saturate((2 * S * 2**u + d) // (2 * d))       == floor(S * 2**(f_y - f_x) / count + 1/2)

For a Sum with ``f_y <= f_x`` that is the contract's ``round_shift``. The quantizer refuses
a node whose ``2 * S * 2**u + d`` could leave 62 bits.
"""

from __future__ import annotations

import numpy as np

from ..fixed import saturate, signed_width_for
from .avgpool import div_round_half_up

ATTRS: dict = {"axes": (), "keepdims": True}

FLOAT = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max, "ReduceMin": np.min}


def axes_of(attrs, rank: int) -> tuple[int, ...]:
    """The reduced per-sample axes, checked against ``rank``."""
    axes = tuple(int(a) for a in attrs.get("axes", ()))
    if not axes or len(set(axes)) != len(axes) or not all(0 <= a < rank for a in axes):
        raise ValueError(f"a reduction needs distinct axes of the {rank}-axis sample, got {axes}")
    return tuple(sorted(axes))


def shape(attrs, in_shapes):
    x = tuple(in_shapes[0])
    axes = axes_of(attrs, len(x))
    if attrs.get("keepdims", True):
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def _batched(attrs, x) -> dict:
    """numpy keywords for a batched array: the sample's axes are one further on."""
    return {"axis": tuple(a + 1 for a in axes_of(attrs, x.ndim - 1)), "keepdims": bool(attrs.get("keepdims", True))}


# the float result over no values, as ONNX (the sum of none is 0)
EMPTY = {"ReduceMax": {"initial": -np.inf}, "ReduceMin": {"initial": np.inf}}


def float_ref_of(op: str):
    def float_ref(attrs, inputs):
        x = np.asarray(inputs[0], dtype=np.float64 if op in ("ReduceSum", "ReduceMean") else np.float32)
        return [np.asarray(FLOAT[op](x, **_batched(attrs, x), **EMPTY.get(op, {})), dtype=np.float32)]

    return float_ref


def extreme_ref(node, g, inputs):
    """ReduceMax / ReduceMin on the integers, from the input type's lowest / highest value
    (the result over no values, as -inf / +inf saturate)."""
    x = np.asarray(inputs[0], dtype=np.int64)
    t = g.qtype(node.inputs[0])
    start = t.lo if node.op == "ReduceMax" else t.hi
    return [np.asarray(FLOAT[node.op](x, **_batched(node.attrs, x), initial=start), dtype=np.int64)]


def count(node, in_shape) -> int:
    """Values reduced into one output value."""
    return int(np.prod([in_shape[a] for a in axes_of(node.attrs, len(in_shape))], dtype=np.int64))


def sum_params(node, g) -> tuple[int, int]:
    """``(u, d)`` of a Sum or Mean node (see the module notes)."""
    fx, fy = g.qtype(node.inputs[0]).frac, g.qtype(node.outputs[0]).frac
    n = count(node, g.shape(node.inputs[0])) if node.op == "ReduceMean" else 1
    return max(fy - fx, 0), n << max(fx - fy, 0)


def acc_width(node, g) -> int:
    """Bits of the exact sum ``S``."""
    t, n = g.qtype(node.inputs[0]), count(node, g.shape(node.inputs[0]))
    return signed_width_for(n * t.lo, n * t.hi)


def sum_ref(node, g, inputs):
    x = np.asarray(inputs[0], dtype=np.int64)
    u, d = sum_params(node, g)
    s = x.sum(**_batched(node.attrs, x))
    return [saturate(div_round_half_up(s << np.int64(u), d), g.qtype(node.outputs[0]))]


def quantize_sum(q, node, ctx) -> None:
    """The output type from calibration; refused when ``2 * S * 2**u + d`` could leave 62 bits."""
    q.set_qtype(node.outputs[0], ctx.out_type(node))
    u, d = sum_params(node, q)
    if acc_width(node, q) + u + 1 > 62 or d.bit_length() + 1 > 62:
        q.set_qtype(node.outputs[0], None)
        raise ctx.refuse(node, f"{node.op} of {count(node, q.shape(node.inputs[0]))} values would need more than "
                               f"62 bits to rescale its sum exactly")
