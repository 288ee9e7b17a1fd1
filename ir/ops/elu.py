"""Elu: ``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise.

ONNX Elu; default ``alpha = 1.0``.

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS = {"alpha": 1.0}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    alpha = float(attrs.get("alpha", 1.0))
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


DEF = table_op("Elu", function, ATTRS, onnx="Elu", doc="exponential linear unit")
