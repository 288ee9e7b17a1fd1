"""Neg: ``-x``.

ONNX Neg (no attributes).

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    return -np.asarray(x, dtype=np.float64)


DEF = table_op("Neg", function, ATTRS, onnx="Neg", doc="negation")
