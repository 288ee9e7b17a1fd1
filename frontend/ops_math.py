"""Translators of elementwise math ops (registered with :func:`.translate.translates`).

- One-input activations become the IR op of the same name (a table op once quantized),
  with the ONNX attributes and defaults of that op's definition (:mod:`nnforge.ir.ops`).
- ``Sub`` and ``Div`` become ``Add`` and ``Mul``, which fold into a neighbouring layer::

      x - c = x + (-c)          c - x = (x * -1) + c          a - b = a + (b * -1)
      x / c = x * (1 / c)       c / x = Reciprocal(x) * c     a / b = a * Reciprocal(b)

- ``Min`` / ``Max`` of one activation and constant scalars are a ``Clip`` at the
  smallest / largest of them; of several activations or constant tensors, a chain of the
  two-operand IR ``Min`` / ``Max`` (broadcast per sample, as Add).
- ``PRelu`` with one slope is a ``LeakyRelu``, with a constant slope per channel the IR
  ``PRelu``; with a slope per value (a constant or an activation)
  ``PRelu(x) = Relu(x) + slope * min(x, 0)``, exact in float too.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node
from ..ir.ops import onnx_unary, op_def
from ..ir.ops.gelu import APPROXIMATIONS
from .errors import ImportError_, node_label
from .translate import translates

# ONNX ops that are one IR op each (the op definitions say which: ``OpDef.onnx``); their attributes
# are the IR op's, same names and defaults
UNARY = onnx_unary()


def _refuse(onode, why: str) -> ImportError_:
    return ImportError_(f"{node_label(onode)}: {why}")


def _operand(imp, onode, c: np.ndarray, other: str) -> np.ndarray:
    """Constant ``c`` as it broadcasts over one sample of activation ``other`` (leading
    batch axes of size 1 dropped); refused if it would broadcast over the batch."""
    c = np.asarray(c, dtype=np.float32)
    rank = len(imp.g.shape(other))
    while c.ndim > rank and c.shape[0] == 1:
        c = c.reshape(c.shape[1:])
    if c.ndim > rank:
        raise _refuse(onode, f"a constant of shape {c.shape} would broadcast over the batch")
    return c


def _const(imp, onode, value, tag: str) -> str:
    return imp.add_const(f"{onode.name or onode.op_type}_{tag}", value)


def _inner(imp, onode, op: str, inputs: list[str], tag: str, attrs: dict | None = None) -> str:
    """An IR node computing an intermediate value of ``onode``; returns its output."""
    out = imp.g.fresh_name(f"{onode.output[0]}__{tag}")
    name = imp.g.fresh_name(f"{onode.name or onode.op_type}__{tag}")
    imp.g.add_node(Node(name, op, inputs, [out], attrs or {}))
    return out


def _two_activations(imp, onode) -> tuple[str, str]:
    a, b = imp.activation_input(onode, 0), imp.activation_input(onode, 1)
    sa, sb = imp.g.shape(a), imp.g.shape(b)
    if len(sa) != len(sb):
        raise _refuse(onode, f"{onode.op_type} of activations with per-sample shapes {sa} and {sb} would "
                             f"broadcast over the batch axis")
    return a, b


@translates(*UNARY)
def unary(imp, onode) -> None:
    """``y = op(x)``, the IR op whose definition names this ONNX op."""
    op = UNARY[onode.op_type]
    given = imp.attrs(onode)
    attrs = {}
    for key, default in op_def(op).attrs.items():
        v = given.get(key, default)
        attrs[key] = v.decode() if isinstance(v, bytes) else (float(v) if isinstance(v, (int, float)) else v)
    if onode.op_type == "Gelu" and attrs["approximate"] not in APPROXIMATIONS:
        raise _refuse(onode, f"approximate must be one of {', '.join(APPROXIMATIONS)}, got {attrs['approximate']!r}")
    imp.emit(onode, op, [imp.activation_input(onode)], attrs)


@translates("Sub")
def sub(imp, onode) -> None:
    ca, cb = imp.const(onode.input[0]), imp.const(onode.input[1])
    if cb is not None:  # x - c = x + (-c)
        x = imp.activation_input(onode, 0)
        imp.emit(onode, "Add", [x, _const(imp, onode, -_operand(imp, onode, cb, x), "neg")])
        return
    if ca is not None:  # c - x = (x * -1) + c
        x = imp.activation_input(onode, 1)
        c = _const(imp, onode, _operand(imp, onode, ca, x), "c")
        neg = _inner(imp, onode, "Mul", [x, _const(imp, onode, -1.0, "minus1")], "neg")
        imp.emit(onode, "Add", [neg, c])
        return
    a, b = _two_activations(imp, onode)  # a - b = a + (b * -1)
    neg = _inner(imp, onode, "Mul", [b, _const(imp, onode, -1.0, "minus1")], "neg")
    imp.emit(onode, "Add", [a, neg])


@translates("Div")
def div(imp, onode) -> None:
    ca, cb = imp.const(onode.input[0]), imp.const(onode.input[1])
    if cb is not None:  # x / c = x * (1 / c)
        x = imp.activation_input(onode, 0)
        c = _operand(imp, onode, cb, x).astype(np.float64)
        if np.any(c == 0):
            raise _refuse(onode, "division by a constant that holds 0")
        imp.emit(onode, "Mul", [x, _const(imp, onode, 1.0 / c, "recip")])
        return
    if ca is not None:  # c / x = Reciprocal(x) * c
        x = imp.activation_input(onode, 1)
        c = _operand(imp, onode, ca, x)
        if c.size == 1 and float(c.reshape(-1)[0]) == 1.0:  # 1 / x
            imp.emit(onode, "Reciprocal", [x])
            return
        r = _inner(imp, onode, "Reciprocal", [x], "recip")
        imp.emit(onode, "Mul", [r, _const(imp, onode, c, "c")])
        return
    a, b = _two_activations(imp, onode)  # a / b = a * Reciprocal(b)
    imp.emit(onode, "Mul", [a, _inner(imp, onode, "Reciprocal", [b], "recip")])


@translates("Min", "Max")
def min_max(imp, onode) -> None:
    """Constant scalars: ``Min(x, c1, ...) = Clip(x, max=min(c))``, ``Max(x, c1, ...) =
    Clip(x, min=max(c))``. Several activations, or constant tensors (broadcast per
    sample): a chain of the two-operand IR ``Min`` / ``Max`` (then that Clip for scalars)."""
    ins = [i for i, t in enumerate(onode.input) if t]
    acts = [i for i in ins if imp.const(onode.input[i]) is None]
    if not acts:
        raise _refuse(onode, f"{onode.op_type} has no input computed from the model input")
    xs = [imp.activation_input(onode, i) for i in acts]
    rank = len(imp.g.shape(xs[0]))
    values, operands = [], list(xs)
    for i in (i for i in ins if i not in acts):
        c = np.asarray(imp.const(onode.input[i]))
        if c.ndim > rank + 1:
            raise _refuse(onode, f"a constant of shape {c.shape} would broadcast over the batch axis")
        if c.size == 1:
            values.append(float(c.reshape(())))
        else:
            operands.append(_const(imp, onode, _operand(imp, onode, c, xs[0]), f"c{i}"))
    if onode.op_type == "Min":
        attrs = {"min": None, "max": min(values) if values else None}
    else:
        attrs = {"min": max(values) if values else None, "max": None}
    x = xs[0]
    for k, other in enumerate(operands[1:], start=1):
        if len(imp.g.shape(x)) != len(imp.g.shape(other)) and not imp.g.is_const(other):
            raise _refuse(onode, f"{onode.op_type} of activations with per-sample shapes {imp.g.shape(x)} and "
                                 f"{imp.g.shape(other)} would broadcast over the batch axis")
        if k == len(operands) - 1 and not values:
            imp.emit(onode, onode.op_type, [x, other])
            return
        x = _inner(imp, onode, onode.op_type, [x, other], f"part{k}")
    imp.emit(onode, "Clip", [x], attrs)


@translates("PRelu")
def prelu(imp, onode) -> None:
    """One slope: ``LeakyRelu``. A constant slope per channel (one that the IR op's shape
    rule takes): ``PRelu``. A slope per value (a constant, or an activation of the input's
    shape): ``Relu(x) + slope * min(x, 0)``."""
    x = imp.activation_input(onode, 0)
    slope = imp.const(onode.input[1])
    if slope is not None and np.size(slope) == 1:
        imp.emit(onode, "LeakyRelu", [x], {"alpha": float(np.asarray(slope).reshape(()))})
        return
    shape = imp.g.shape(x)
    if slope is None:
        s = imp.activation_input(onode, 1)
        s_shape = imp.g.shape(s)
    else:
        if imp.source_opset < 7 and np.ndim(slope) == 1 and len(shape) > 1 and np.size(slope) == shape[0]:
            slope = np.reshape(slope, (-1,) + (1,) * (len(shape) - 1))  # PRelu-6: one slope per channel
        slope = _operand(imp, onode, slope, x)
        s, s_shape = _const(imp, onode, slope, "slope"), slope.shape
    try:
        fits = np.broadcast_shapes(s_shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits or (slope is None and len(s_shape) != len(shape)):  # else it broadcasts over the batch
        raise _refuse(onode, f"the slope of per-sample shape {tuple(s_shape)} does not broadcast to the input's "
                             f"{tuple(shape)}")
    if slope is not None:
        try:
            op_def("PRelu").shape({}, [shape, s_shape])
        except ValueError:
            pass  # a slope per value
        else:
            imp.emit(onode, "PRelu", [x, s])
            return
    pos = _inner(imp, onode, "Relu", [x], "pos")  # PRelu(x) = Relu(x) + slope * min(x, 0)
    neg = _inner(imp, onode, "Clip", [x], "neg", {"min": None, "max": 0.0})
    scaled = _inner(imp, onode, "Mul", [neg, s], "scaled")
    imp.emit(onode, "Add", [pos, scaled])
