"""onnxruntime's dynamic quantization (``quantize_dynamic``).

The model's float function ``DynamicQuantizeLinear(x) -> (xq, s, z)``;
``MatMulInteger(xq, Wq, z, zw) -> Cast -> Mul(., s * sw) -> Add(b)`` computes
``(x / s) (Wq - zw) * s * sw + b ~ x (Wq - zw) sw + b``: imported with ``xq = x``,
``s = 1``, ``z = 0``, so the integer op is ``x (Wq - zw)``, the scale product a constant
``sw``, and the Mul / Add fold into the layer (passes/affine.py). The model is then a
float model (calibrate it, or --dynamic); with --scale real its weights keep their
integers and scales (``meta['weight_scales']``).
"""

from __future__ import annotations

import numpy as np

from .errors import ImportError_, q as qn
from .ops_nn import conv, matmul
from .quant_params import dequantized_const, float_twin, int_bits
from .translate import translates


@translates("DynamicQuantizeLinear")
def dynamic_quantize_linear(imp, onode) -> None:
    x = imp.activation_input(onode)
    imp.alias[onode.output[0]] = x
    for t in onode.output[1:]:
        if t:
            imp.dynamic_params.add(t)


def is_dynamic(imp, t: str) -> bool:
    """Whether ``t`` is a DynamicQuantizeLinear's run-time scale or zero point."""
    return bool(t) and t in imp.dynamic_params


def scale_product(imp, onode) -> bool:
    """A Mul of a dynamic-quantization scale ``s`` by the weights' scale ``sw`` is the
    constant ``sw`` (``s = 1``); True when ``onode`` was that Mul."""
    a, b = onode.input[0], onode.input[1]
    if not (is_dynamic(imp, a) or is_dynamic(imp, b)):
        return False
    c = imp.const(b if is_dynamic(imp, a) else a)
    if c is None:
        raise ImportError_(f"node {qn(onode.name)}: a dynamic-quantization scale must be multiplied by a "
                           f"constant (the weights' scale)")
    imp.values[onode.output[0]] = np.asarray(c)  # s * sw with s = 1
    return True


def integer_linear(imp, onode, op_type: str, w_axis: int) -> None:
    """MatMulInteger / ConvInteger as MatMul / Conv by the integers minus their zero point."""
    ins = list(onode.input) + [""] * (4 - len(onode.input))
    x = imp.activation_input(onode)
    if ins[2] and not is_dynamic(imp, ins[2]):
        z = imp.const(ins[2])
        if z is None or np.any(z != 0):
            raise ImportError_(f"node {qn(onode.name)}: {op_type} with an input zero point other than a "
                               f"DynamicQuantizeLinear's is not supported")
    q = imp.const(ins[1])
    if q is None:
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs constant integer weights")
    zw = imp.const(ins[3]) if ins[3] else np.zeros(1, dtype=q.dtype)
    # the integers minus their zero point, at scale 1 (the Mul after the op scales them)
    src = dequantized_const(imp, f"{ins[1]}__integers", q.astype(np.int64) - zw.astype(np.int64).reshape(
        [zw.size if i == w_axis and zw.size > 1 else 1 for i in range(q.ndim)]), np.ones(1), np.zeros(1), w_axis,
        int_bits(q.dtype) + (0 if np.issubdtype(q.dtype, np.signedinteger) else 1))
    twin, tmp = float_twin(imp, onode, op_type, [x, src], attrs=[a for a in onode.attribute])
    (matmul if op_type == "MatMul" else conv)(imp, twin)
    imp.alias[onode.output[0]] = tmp


@translates("MatMulInteger")
def matmul_integer(imp, onode) -> None:
    integer_linear(imp, onode, "MatMul", w_axis=1)


@translates("ConvInteger")
def conv_integer(imp, onode) -> None:
    integer_linear(imp, onode, "Conv", w_axis=0)
