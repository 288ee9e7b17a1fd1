"""Softplus: ``log(exp(x) + 1)``.

ONNX Softplus (no attributes).

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS: dict = {}


def function(attrs, x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))  # without overflow


DEF = table_op("Softplus", function, ATTRS, onnx="Softplus", doc="softplus")
