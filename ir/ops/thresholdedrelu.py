"""ThresholdedRelu: ``x`` where ``x > alpha``, else 0.

ONNX ThresholdedRelu (opset 10); default ``alpha = 1.0``.

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .table import table_op

ATTRS = {"alpha": 1.0}


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > float(attrs.get("alpha", 1.0)), x, 0.0)


DEF = table_op("ThresholdedRelu", function, ATTRS, onnx="ThresholdedRelu", doc="x above alpha, else 0")
