"""Elementwise Add with numpy broadcasting (per sample).

Integer reference: both operands are brought to the finer scale exactly (left shift),
added, then requantized to the output type with the contract's rule.

With real scales (models quantized elsewhere, ``--scale real``) the node carries
``rq_mult = (m_a, m_b)`` and ``rq_shift``: each operand is multiplied by its own integer
and the sum rescaled once::

    y = saturate(round_half_up((a * m_a + b * m_b) >> rq_shift))

:func:`add_params` gives ``(m_a, m_b, shift)`` for every Add (powers of two without them).
"""

import numpy as np

from ..fixed import requantize, requantize_mult, round_shift, round_shift_rows
from .base import OpDef, Traits

ATTRS: dict = {"rq_mult": None, "rq_shift": None}


def shape(attrs, in_shapes):
    return [tuple(np.broadcast_shapes(*in_shapes))]


def float_ref(attrs, inputs):
    return [(inputs[0] + inputs[1]).astype(np.float32)]


def add_params(node, g) -> tuple[int, int, int]:
    """``(m_a, m_b, shift)``: ``y = saturate(round_half_up((a * m_a + b * m_b) >> shift))``."""
    if node.attrs.get("rq_mult") is not None:
        ma, mb = (int(v) for v in node.attrs["rq_mult"])
        return ma, mb, int(node.attrs["rq_shift"])
    ta, tb = g.qtype(node.inputs[0]), g.qtype(node.inputs[1])
    f = max(ta.frac, tb.frac)
    return 1 << (f - ta.frac), 1 << (f - tb.frac), f - g.qtype(node.outputs[0]).frac


def int_ref(node, g, inputs):
    if node.attrs.get("rq_mult") is not None:
        ma, mb, shift = add_params(node, g)
        a, b = (np.asarray(v, dtype=np.int64) for v in inputs)
        return [requantize_mult(a * ma + b * mb, 1, shift, g.qtype(node.outputs[0]))]
    ta, tb = g.qtype(node.inputs[0]), g.qtype(node.inputs[1])
    f = max(ta.frac, tb.frac)
    acc = round_shift(inputs[0], ta.frac - f) + round_shift(inputs[1], tb.frac - f)
    return [requantize(acc, f, g.qtype(node.outputs[0]))]


def float16_ref(node, g, inputs):
    """float16 / bfloat16: ``narrow(a + b)`` in fp32."""
    fmt = g.qtype(node.outputs[0]).format
    return [fmt.narrow(fmt.widen(inputs[0]) + fmt.widen(inputs[1]))]


def dynamic_ref(node, g, inputs, fracs):
    """Run-time scales: both operands aligned exactly to ``max(f_a, f_b)`` and added; the
    run-time shift into the output type follows."""
    fa, fb = fracs
    f = np.maximum(fa, fb)
    return round_shift_rows(inputs[0], fa - f) + round_shift_rows(inputs[1], fb - f), f, True


DEF = OpDef(name="Add", shape=shape, float_ref=float_ref, int_ref=int_ref, quant="sum",
            float16_ref=float16_ref, dynamic_ref=dynamic_ref, attrs=ATTRS,
            traits=Traits(elementwise=True, join=True), arith="add", doc="elementwise sum")
