"""One op, one file: each module holds the attribute schema, the shape rule, the float
reference and (where the op runs in the integer domain) the integer reference.

These functions are the only semantics of an op: the interpreters, constant folding and
the test oracles all call them. The table below lists the modules by reference.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .base import OpDef, Traits

from . import add, dense, gemm, matmul, relu, reshape, softmax
from . import avgpool, batchnorm, conv, globalavgpool, globalmaxpool, maxpool
from . import concat, lrn, mul, quant, transpose
from . import clip, hardsigmoid, hardswish, leakyrelu, pad, resize, sigmoid, tanh

_MODULES: tuple[ModuleType, ...] = (add, dense, gemm, matmul, relu, reshape, softmax)
_MODULES += (avgpool, batchnorm, conv, globalavgpool, globalmaxpool, maxpool)
_MODULES += (concat, lrn, mul, quant, transpose)
_MODULES += (clip, hardsigmoid, hardswish, leakyrelu, pad, resize, sigmoid, tanh)
# ops added in the definition form (``DEF = OpDef(...)``); one line per module
_MODULES += ()

OPS: dict[str, ModuleType] = {(m.DEF.name if hasattr(m, "DEF") else m.OP): m for m in _MODULES}


def op_module(op: str) -> ModuleType:
    try:
        return OPS[op]
    except KeyError:
        raise KeyError(f"no IR op {op!r}; IR ops are {sorted(OPS)}") from None


def op_def(op: str) -> OpDef:
    """The op's :class:`.base.OpDef` (modules not yet in the definition form are wrapped)."""
    m = op_module(op)
    if hasattr(m, "DEF"):
        return m.DEF
    return OpDef(name=m.OP, shape=m.shape, float_ref=m.float_ref, attrs=m.ATTRS,
                 traits=Traits(table=hasattr(m, "function")), int_ref=getattr(m, "int_ref", None),
                 function=getattr(m, "function", None))


def ops_with(**traits: bool) -> frozenset[str]:
    """Names of the IR ops whose traits have the given values (``ops_with(table=True)``)."""
    return frozenset(name for name in OPS if op_def(name).has(**traits))


def check_attrs(node) -> None:
    """Reject attributes an op's schema does not declare."""
    schema = op_def(node.op).attrs
    unknown = set(node.attrs) - set(schema)
    if unknown:
        from ..graph import GraphError

        raise GraphError(f"node {node.name!r} ({node.op}): unknown attributes {sorted(unknown)}")


def infer_shapes(g, node) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in s) for s in op_def(node.op).shape(node.attrs, [g.shape(t) for t in node.inputs])]


def float_ref(node, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return op_def(node.op).float_ref(node.attrs, inputs)


def int_ref(node, g, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ..floats import int_ref as float_int_ref, is_float

    if is_float(g.qtype(node.outputs[0])):  # float16 / bfloat16 patterns (ir/floats.py)
        return float_int_ref(node, g, inputs)
    fn = op_def(node.op).int_ref
    if fn is None:
        raise NotImplementedError(f"op {node.op} has no integer semantics; a pass must lower it")
    return fn(node, g, inputs)
