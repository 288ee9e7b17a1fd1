"""Tanh. Integer: a compile-time table (:mod:`nnforge.ir.tables`), ``y = table[x - lo(x)]``
with ``table[i] = quantize_float(tanh(dequantize(i)))``; the output type is signed
``act_bits`` wide with the largest frac that still holds 1.0."""

import numpy as np

from ._table import int_ref, shape  # noqa: F401

OP = "Tanh"
ATTRS: dict = {}


def function(attrs, x):
    return np.tanh(np.asarray(x, dtype=np.float64))


def float_ref(attrs, inputs):
    return [function(attrs, inputs[0]).astype(np.float32)]
