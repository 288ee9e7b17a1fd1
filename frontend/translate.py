"""ONNX op -> IR translators, registered by decorator.

A translator is ``fn(imp, onode) -> None``: it reads the ONNX node through the importer
``imp`` (``imp.activation_input(onode, i)``, ``imp.const(name)``, ``imp.attrs(onode)``)
and emits IR nodes with ``imp.emit(onode, op, inputs, attrs)``. The set of ONNX ops the
frontend accepts is this table's keys (plus whatever folds to constants).
"""

from __future__ import annotations

from typing import Callable

TRANSLATORS: dict[str, Callable] = {}


def translates(*op_types: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(imp, onode)`` as the translator of the ONNX ``op_types``."""
    def register(fn: Callable) -> Callable:
        for op in op_types:
            if op in TRANSLATORS and TRANSLATORS[op] is not fn:
                raise ValueError(f"ONNX op {op} has two translators")
            TRANSLATORS[op] = fn
        return fn
    return register
