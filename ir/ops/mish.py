"""Mish: ``x * tanh(softplus(x))`` with ``softplus(x) = log(exp(x) + 1)``.

ONNX Mish (opset 18, no attributes); also what ``Mul(x, Tanh(Softplus(x)))`` becomes (:mod:`nnforge.passes.rules`).

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return x * np.tanh(np.logaddexp(0.0, x))


DEF = table_op("Mish", function, ATTRS, onnx="Mish", doc="x * tanh(softplus(x))")
