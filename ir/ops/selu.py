"""Selu: ``gamma * x`` for ``x > 0``, ``gamma * (alpha * exp(x) - alpha)`` otherwise.

ONNX Selu; defaults ``alpha = 1.67326319217681884765625``, ``gamma = 1.05070102214050292968750``.

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ALPHA = 1.67326319217681884765625
GAMMA = 1.05070102214050292968750
ATTRS = {"alpha": ALPHA, "gamma": GAMMA}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    alpha, gamma = float(attrs.get("alpha", ALPHA)), float(attrs.get("gamma", GAMMA))
    return gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


DEF = table_op("Selu", function, ATTRS, onnx="Selu", doc="scaled exponential linear unit")
