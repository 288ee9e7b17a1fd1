"""Silu (SiLU, Swish): ``x * sigmoid(x) = x / (1 + exp(-x))``.

No ONNX op: exporters write ``Mul(x, Sigmoid(x))``, which becomes one Silu (:mod:`nnforge.passes.rules`).

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return x * np.exp(-np.logaddexp(0.0, -x))  # x / (1 + e^-x) without overflow


DEF = table_op("Silu", function, ATTRS, doc="x * sigmoid(x)")
