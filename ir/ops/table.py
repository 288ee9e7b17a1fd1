"""Shared parts of the table-driven activations (not an op itself).

Before quantization such a node reads one input ``x``; the quantizer adds a second,
constant input: the table built by :func:`nnforge.ir.tables.build_table` from the op's
``function``. The integer reference is then ``y = table[x - lo(x)]``.
"""

from ..tables import lookup

def shape(attrs, in_shapes):
    if len(in_shapes) not in (1, 2):
        raise ValueError(f"a table activation reads x and (once quantized) its table, got {len(in_shapes)} inputs")
    return [in_shapes[0]]


def int_ref(node, g, inputs):
    if len(inputs) != 2:
        raise ValueError(f"node {node.name!r} ({node.op}) has no table: it was not quantized")
    return [lookup(inputs[0], inputs[1], g.qtype(node.inputs[0]))]
