"""Shared parts of the table-driven activations (not an op itself).

Before quantization such a node reads one input ``x``; the quantizer adds a second,
constant input: the table built by :func:`nnforge.ir.tables.build_table` from the op's
``function``. The integer reference is then ``y = table[x - lo(x)]``.
"""

import numpy as np

from ..tables import lookup
from .base import OpDef, Traits

def shape(attrs, in_shapes):
    if len(in_shapes) not in (1, 2):
        raise ValueError(f"a table activation reads x and (once quantized) its table, got {len(in_shapes)} inputs")
    return [in_shapes[0]]


def int_ref(node, g, inputs):
    if len(inputs) != 2:
        raise ValueError(f"node {node.name!r} ({node.op}) has no table: it was not quantized")
    return [lookup(inputs[0], inputs[1], g.qtype(node.inputs[0]))]


def table_op(name: str, function, attrs=None, *, doc: str = "", onnx: str = "", value_range=None,
             float_ref=None, shape=shape) -> OpDef:
    """The definition of an elementwise op computed by a table: ``function(attrs, x)`` (float64)
    is its only semantics. Its integer form is ``y = table[x - lo(x)]`` with ``table[i] =
    quantize_float(function(dequantize(i)))`` over the input type's whole range; the output
    type holds ``value_range`` when given, else comes from calibration like any activation.
    The float reference is ``function`` in float32 unless given, the shape rule the table
    ops' one unless given (to check attributes)."""
    def function_f32(attrs, inputs):
        return [function(attrs, inputs[0]).astype(np.float32)]

    return OpDef(name=name, onnx=onnx, shape=shape, float_ref=float_ref or function_f32, int_ref=int_ref,
                 function=function, attrs=attrs or {}, value_range=value_range, doc=doc,
                 traits=Traits(table=True, elementwise=True, channelwise=True))
