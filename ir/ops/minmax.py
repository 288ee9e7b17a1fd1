"""Shared parts of Max and Min of two operands (not an op itself), numpy broadcasting per
sample, as Add (:mod:`.add`).

Integer: both operands brought to the finer scale exactly, compared, the winner requantized
to the output type with the contract's rule. With ``(m_a, m_b, shift)`` from
:func:`.add.add_params` (powers of two, or with real scales the node's ``rq_mult`` and
``rq_shift``, each operand's own integer multiplier)::

    y = saturate(round_half_up(max(a * m_a, b * m_b) >> shift))        (min for Min)

Rescaling by positive multipliers keeps the order, so this is the maximum of the two
values, rounded once. The output type comes from calibration (rule ``sum``: a constant
operand gets the activation width).
"""

from __future__ import annotations

import numpy as np

from ..fixed import round_shift, saturate
from .add import add_params

ATTRS: dict = {"rq_mult": None, "rq_shift": None}

PICK = {"Max": np.maximum, "Min": np.minimum}


def shape(attrs, in_shapes):
    return [tuple(np.broadcast_shapes(*in_shapes))]


def float_ref_of(op: str):
    def float_ref(attrs, inputs):
        return [PICK[op](np.asarray(inputs[0], dtype=np.float32), np.asarray(inputs[1], dtype=np.float32))]

    return float_ref


def int_ref(node, g, inputs):
    ma, mb, shift = add_params(node, g)
    a, b = (np.asarray(v, dtype=np.int64) for v in inputs)
    return [saturate(round_shift(PICK[node.op](a * ma, b * mb), shift), g.qtype(node.outputs[0]))]
