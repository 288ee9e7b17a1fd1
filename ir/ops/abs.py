"""Abs: ``|x|``.

ONNX Abs (no attributes).

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    return np.abs(np.asarray(x, dtype=np.float64))


DEF = table_op("Abs", function, ATTRS, onnx="Abs", doc="absolute value")
