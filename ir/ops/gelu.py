"""Gelu: ``0.5 * x * (1 + erf(x / sqrt(2)))``; with ``approximate = "tanh"``
``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``.

ONNX Gelu (opset 20); default ``approximate = "none"``. The erf form that exporters write
for older opsets (``Div``, ``Erf``, ``Add``, ``Mul``, ``Mul``) becomes one Gelu
(:mod:`nnforge.passes.rules`).

Integer: a table op (:func:`.table.table_op`).
"""

import numpy as np

from .erf import erf
from .table import shape as _table_shape, table_op

ATTRS = {"approximate": "none"}
APPROXIMATIONS = ("none", "tanh")


def shape(attrs, in_shapes):
    if attrs.get("approximate", "none") not in APPROXIMATIONS:
        raise ValueError(f"Gelu: approximate must be one of {APPROXIMATIONS}, got {attrs['approximate']!r}")
    return _table_shape(attrs, in_shapes)


def function(attrs, x):
    x = np.asarray(x, dtype=np.float64)
    if attrs.get("approximate", "none") == "tanh":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


DEF = table_op("Gelu", function, ATTRS, onnx="Gelu", doc="Gaussian error linear unit", shape=shape)
