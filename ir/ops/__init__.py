"""One op, one file: each module exports its definition ``DEF`` (:class:`.base.OpDef`):
attribute schema, shape rule, float / integer / float16 / dynamic references, how its
output type is derived when quantizing, and its traits.

These are the only semantics of an op: the interpreters, constant folding, the quantizer
and the test oracles all read them through :func:`op_def`; every set of op names is
derived here (:func:`ops_with`, :func:`ops_defining`). The table below lists the modules.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .base import OpDef

from . import add, dense, gemm, matmul, relu, reshape, softmax
from . import avgpool, batchnorm, conv, globalavgpool, globalmaxpool, maxpool
from . import concat, lrn, mul, quant, transpose
from . import clip, hardsigmoid, hardswish, leakyrelu, pad, resize, sigmoid, tanh
from . import abs, celu, elu, erf, exp, gelu, log, mish, neg, reciprocal, selu, silu, softplus, softsign, sqrt
from . import prelu
from . import argmax, maximum, minimum, reducemax, reducemean, reducemin, reducesum
from . import thresholdedrelu

_MODULES: tuple[ModuleType, ...] = (add, dense, gemm, matmul, relu, reshape, softmax)
_MODULES += (avgpool, batchnorm, conv, globalavgpool, globalmaxpool, maxpool)
_MODULES += (concat, lrn, mul, quant, transpose)
_MODULES += (clip, hardsigmoid, hardswish, leakyrelu, pad, resize, sigmoid, tanh)
# ops added in the definition form (``DEF = OpDef(...)``); one line per module
_MODULES += (abs, celu, elu, erf, exp, gelu, log, mish, neg, prelu, reciprocal, selu, silu, softplus, softsign, sqrt)
_MODULES += (argmax, maximum, minimum, reducemax, reducemean, reducemin, reducesum)
_MODULES += (thresholdedrelu,)

OPS: dict[str, ModuleType] = {m.DEF.name: m for m in _MODULES}


def op_module(op: str) -> ModuleType:
    try:
        return OPS[op]
    except KeyError:
        raise KeyError(f"no IR op {op!r}; IR ops are {sorted(OPS)}") from None


def op_def(op: str) -> OpDef:
    """The op's :class:`.base.OpDef` (read from its module at each call)."""
    return op_module(op).DEF


def onnx_unary() -> dict[str, str]:
    """ONNX op type -> IR op, for the ops whose definition names the ONNX op it comes from."""
    return {op_def(name).onnx: name for name in OPS if op_def(name).onnx}


def ops_with(**traits: bool) -> frozenset[str]:
    """Names of the IR ops whose traits have the given values (``ops_with(table=True)``)."""
    return frozenset(name for name in OPS if op_def(name).has(**traits))


def ops_defining(*fields: str) -> frozenset[str]:
    """Names of the IR ops whose definitions have every one of the given functions or
    values (``ops_defining("dynamic_ref")``)."""
    return frozenset(name for name in OPS if all(getattr(op_def(name), f) for f in fields))


def ops_quantized_by(*rules: str) -> frozenset[str]:
    """Names of the IR ops whose quantization rule (``OpDef.quant``) is one of ``rules``."""
    return frozenset(name for name in OPS if op_def(name).quant in rules)


def infer_shapes(g, node) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in s) for s in op_def(node.op).shape(node.attrs, [g.shape(t) for t in node.inputs])]


def float_ref(node, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return op_def(node.op).float_ref(node.attrs, inputs)


def int_ref(node, g, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The golden semantics of a node: its op's integer reference, or its float16 /
    bfloat16 reference when the output holds float patterns (ir/floats.py)."""
    t = g.qtype(node.outputs[0])
    if t is not None and t.is_float:
        fn = op_def(node.op).float16_ref
        if fn is None:
            raise NotImplementedError(f"op {node.op} has no float16 / bfloat16 semantics")
        return fn(node, g, inputs)
    fn = op_def(node.op).int_ref
    if fn is None:
        raise NotImplementedError(f"op {node.op} has no integer semantics; a pass must lower it")
    return fn(node, g, inputs)
