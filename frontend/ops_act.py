"""Translators of activations: Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid,
HardSwish and Softmax."""

from __future__ import annotations

import math

import numpy as np

from ..ir import Node
from .errors import ImportError_, q as qn
from .translate import VALUES, translates


@translates("Relu", exact=VALUES)
@translates("Sigmoid", "Tanh", "HardSwish")
def plain(imp, onode) -> None:
    """An activation without attributes: the IR op of the same name."""
    imp.emit(onode, onode.op_type, [imp.activation_input(onode)])


@translates("LeakyRelu")
def leaky_relu(imp, onode) -> None:
    alpha = float(imp.attrs(onode).get("alpha", 0.01))
    imp.emit(onode, "LeakyRelu", [imp.activation_input(onode)], {"alpha": alpha})


@translates("HardSigmoid")
def hard_sigmoid(imp, onode) -> None:
    a = imp.attrs(onode)
    attrs = {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))}
    imp.emit(onode, "HardSigmoid", [imp.activation_input(onode)], attrs)


@translates("Clip", exact=VALUES)
def clip(imp, onode) -> None:
    """Clip with constant bounds: attributes before opset 11, optional inputs after."""
    x = imp.activation_input(onode)
    bounds = []
    for i, key in ((1, "min"), (2, "max")):
        if imp.opset < 11:
            v = imp.attrs(onode).get(key)
        elif len(onode.input) > i and onode.input[i]:
            c = imp.const(onode.input[i])
            if c is None or np.asarray(c).size != 1:
                raise ImportError_(f"node {qn(onode.name)}: Clip needs a constant scalar {key} (input {i})")
            v = float(np.asarray(c).reshape(()))
        else:
            v = None
        # opset 6 writes "no bound" as +-FLT_MAX
        bounds.append(None if v is None or abs(float(v)) >= 3.4e38 else float(v))
    if onode.input[0] in imp.quantized:
        _narrow_quantized(imp, onode, bounds)
        return
    imp.emit(onode, "Clip", [x], {"min": bounds[0], "max": bounds[1]})


def _narrow_quantized(imp, onode, bounds) -> None:
    """A Clip of a QuantizeLinear's integers (QuantizeLinear -> Clip -> DequantizeLinear: how
    Brevitas' QCDQ export states widths below 8 bits): the quantization's range narrowed."""
    src = onode.input[0]
    scale, zero, lo, hi = imp.quantized[src]
    quant = imp.g.producer(imp.resolve(src))
    readers = sum(src in n.input for n in imp.model.graph.node) + sum(o.name == src for o in imp.model.graph.output)
    if quant is None or quant.op != "Quant" or readers != 1:
        raise ImportError_(f"node {qn(onode.name)}: a Clip of quantized integers must be the only reader of "
                           f"its QuantizeLinear")
    new_lo = lo if bounds[0] is None else max(lo, math.ceil(bounds[0]))
    new_hi = hi if bounds[1] is None else min(hi, math.floor(bounds[1]))
    if new_lo > new_hi:
        raise ImportError_(f"node {qn(onode.name)}: Clip [{bounds[0]}, {bounds[1]}] leaves no integer of "
                           f"[{lo}, {hi}]")
    imp.g.replace_node(quant.name, quant.with_(attrs={**quant.attrs, "qmin": new_lo, "qmax": new_hi}))
    imp.alias[onode.output[0]] = imp.resolve(src)
    imp.quantized[onode.output[0]] = (scale, zero, new_lo, new_hi)


@translates("Softmax")
def softmax(imp, onode) -> None:
    x = imp.activation_input(onode)
    rank = len(imp.g.shape(x)) + 1
    axis = imp.attrs(onode).get("axis", -1 if imp.opset >= 13 else 1)
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ImportError_(f"node {qn(onode.name)}: Softmax over the batch axis is not supported")
    if imp.opset < 13 and axis != rank - 1:
        # before opset 13 Softmax works on the input flattened to 2-D at `axis`:
        # reshape the axes from `axis` on into one, take Softmax there, reshape back
        g = imp.g
        shape = g.shape(x)
        flat = shape[:axis - 1] + (int(np.prod(shape[axis - 1:], dtype=np.int64)),)
        base = onode.name or "Softmax"
        t_flat = g.fresh_name(f"{onode.output[0]}_flat")
        t_soft = g.fresh_name(f"{onode.output[0]}_soft")
        g.add_node(Node(g.fresh_name(f"{base}_flatten"), "Reshape", [x], [t_flat], {"shape": flat}))
        g.add_node(Node(g.fresh_name(base), "Softmax", [t_flat], [t_soft], {"axis": len(flat) - 1}))
        g.add_node(Node(g.fresh_name(f"{base}_unflatten"), "Reshape", [t_soft], [onode.output[0]],
                        {"shape": shape}))
        return
    imp.emit(onode, "Softmax", [x], {"axis": axis - 1})
