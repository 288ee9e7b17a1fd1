"""Translators of elementwise math ops (registered with :func:`.translate.translates`).

- One-input activations become the IR op of the same name (a table op once quantized),
  with the ONNX attributes and defaults of that op's definition (:mod:`nnforge.ir.ops`).
- ``Sub`` and ``Div`` become ``Add`` and ``Mul``, which fold into a neighbouring layer::

      x - c = x + (-c)          c - x = (x * -1) + c          a - b = a + (b * -1)
      x / c = x * (1 / c)       c / x = Reciprocal(x) * c     a / b = a * Reciprocal(b)

- ``Min`` / ``Max`` of one activation and constant scalars are a ``Clip`` at the
  smallest / largest of them.
- ``PRelu`` with one slope is a ``LeakyRelu``; with a slope per channel or per value (a
  constant or an activation) ``PRelu(x) = Relu(x) + slope * min(x, 0)``, exact in float too.
- ``Min`` / ``Max`` of two activations are refused for now.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node
from ..ir.ops import op_def
from ..ir.ops.gelu import APPROXIMATIONS
from .errors import ImportError_, node_label
from .translate import translates

# ONNX ops that are one IR table op each; their attributes are the IR op's, same names and defaults
UNARY = ("Neg", "Abs", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Erf", "Gelu", "Mish", "Exp", "Log",
         "Reciprocal", "Sqrt")


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
    """``y = op(x)``, the IR op of the same name."""
    given = imp.attrs(onode)
    attrs = {}
    for key, default in op_def(onode.op_type).attrs.items():
        v = given.get(key, default)
        attrs[key] = v.decode() if isinstance(v, bytes) else (float(v) if isinstance(v, (int, float)) else v)
    if onode.op_type == "Gelu" and attrs["approximate"] not in APPROXIMATIONS:
        raise _refuse(onode, f"approximate must be one of {', '.join(APPROXIMATIONS)}, got {attrs['approximate']!r}")
    imp.emit(onode, onode.op_type, [imp.activation_input(onode)], attrs)


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
    """``Min(x, c1, ...) = Clip(x, max=min(c))``, ``Max(x, c1, ...) = Clip(x, min=max(c))``."""
    ins = [i for i, t in enumerate(onode.input) if t]
    acts = [i for i in ins if imp.const(onode.input[i]) is None]
    if len(acts) != 1:
        raise _refuse(onode, f"{onode.op_type} of {len(acts)} activations is not supported yet (only of one "
                             f"activation and constant scalars)")
    x = imp.activation_input(onode, acts[0])
    consts = [np.asarray(imp.const(onode.input[i])) for i in ins if i != acts[0]]
    for c in consts:
        if c.size != 1 or c.ndim > len(imp.g.shape(x)) + 1:
            raise _refuse(onode, f"{onode.op_type} with a constant of shape {c.shape} is not supported yet (only "
                                 f"with scalars, which make a Clip)")
    values = [float(c.reshape(())) for c in consts]
    if onode.op_type == "Min":
        attrs = {"min": None, "max": min(values) if values else None}
    else:
        attrs = {"min": max(values) if values else None, "max": None}
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
