"""Celu: ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

ONNX Celu; default ``alpha = 1.0``.

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS = {"alpha": 1.0}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    alpha = float(attrs.get("alpha", 1.0))
    return np.maximum(x, 0.0) + np.minimum(0.0, alpha * np.expm1(np.minimum(x, 0.0) / alpha))


DEF = table_op("Celu", function, ATTRS, onnx="Celu", doc="continuously differentiable exponential linear unit")
