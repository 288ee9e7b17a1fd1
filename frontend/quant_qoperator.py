"""onnxruntime's QOperator format: integer ops (``QLinearConv``, ``QLinearMatMul`` and, in
the ``com.microsoft`` domain, ``QGemm``, ``QLinearAdd``, ``QLinearSoftmax``) imported as
fake quantization around the float op: Quant of each integer input at its (scale, zero
point), the float op with the weights ``(w - zw) * sw`` and the bias ``B * sx * sw``,
then a Quant at the output's (scale, zero point)."""

from __future__ import annotations

import numpy as np

from ..ir import Node
from .errors import ImportError_, q as qn
from .ops_act import softmax
from .ops_arith import add
from .ops_nn import conv, gemm, matmul
from .quant_params import dequantized_const, float_twin, int_bits, tensor_qparams
from .translate import translates

MICROSOFT = ("com.microsoft",)


def requantized(imp, onode, x: str, scale_t: str, zero_t: str, what: str) -> str:
    """A Quant of activation ``x`` at (scale, zero point) inputs ``scale_t``, ``zero_t``:
    the integer tensor a QLinear op reads (the identity when ``x`` already has them)."""
    out = imp.g.fresh_name(f"{onode.name or onode.op_type}_{what}")
    add_quant(imp, onode, imp.resolve(x), out, scale_t, zero_t, what)
    return out


def add_quant(imp, onode, x: str, out: str, scale_t: str, zero_t: str, what: str) -> tuple:
    """A Quant of ``x`` into ``out`` at the constants ``scale_t``, ``zero_t``; its parameters."""
    scale, zero, lo, hi = params = tensor_qparams(imp, onode, scale_t, zero_t, {})
    name = imp.g.fresh_name(f"{onode.name or onode.op_type}_{what}_quant")
    imp.g.add_node(Node(name, "Quant", [x], [out], {"scale": scale, "zero": zero, "qmin": lo, "qmax": hi}))
    return params


def integer_weights(imp, onode, w_t: str, scale_t: str, zero_t: str, axis: int) -> str:
    """Constant integer weights and their scale as a dequantized constant (a synthetic
    name in ``imp.values`` whose DequantizeLinear annotation the weights keep)."""
    q, scale = imp.const(w_t), imp.const(scale_t)
    zero = imp.const(zero_t) if zero_t else np.zeros(1, dtype=np.int8)
    if q is None or scale is None or zero is None:
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs constant weights, scale and zero point")
    return dequantized_const(imp, f"{w_t}__dequantized", q, scale, zero, axis, int_bits(q.dtype))


def quant_output(imp, onode, tmp: str, scale_t: str, zero_t: str) -> None:
    """The QLinear op's integer output: a Quant of the float result ``tmp``."""
    imp.quantized[onode.output[0]] = add_quant(imp, onode, tmp, onode.output[0], scale_t, zero_t, "out")


def integer_bias(imp, b_t: str, s_in_t: str, s_w_t: str) -> str:
    """A QLinear op's int32 bias ``B`` at scale ``s_in * s_w[n]`` as a float constant."""
    name = f"{b_t}__float"
    s_in, s_w = float(imp.const(s_in_t).reshape(-1)[0]), imp.const(s_w_t).astype(np.float64).reshape(-1)
    imp.values[name] = (imp.const(b_t).astype(np.float64) * s_in * s_w).astype(np.float32)
    return name


@translates("QLinearConv")
def qlinear_conv(imp, onode) -> None:
    """``QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B)``: Quant(x) -> Conv with the weights
    ``(w - zw) * sw`` and bias ``B * sx * sw`` -> Quant(sy, zy)."""
    ins = list(onode.input) + [""] * (9 - len(onode.input))
    x = requantized(imp, onode, ins[0], ins[1], ins[2], "x")
    w = integer_weights(imp, onode, ins[3], ins[4], ins[5], axis=0)
    conv_in = [x, w] + ([integer_bias(imp, ins[8], ins[1], ins[4])] if ins[8] else [])
    twin, tmp = float_twin(imp, onode, "Conv", conv_in)
    conv(imp, twin)
    quant_output(imp, onode, tmp, ins[6], ins[7])


@translates("QLinearMatMul")
def qlinear_matmul(imp, onode) -> None:
    """``QLinearMatMul(a, sa, za, b, sb, zb, sy, zy)`` with constant ``b``: Quant(a) ->
    MatMul by ``(b - zb) * sb`` -> Quant(sy, zy)."""
    ins = list(onode.input)
    a = requantized(imp, onode, ins[0], ins[1], ins[2], "a")
    b = integer_weights(imp, onode, ins[3], ins[4], ins[5], axis=1)
    twin, tmp = float_twin(imp, onode, "MatMul", [a, b], attrs=[])
    matmul(imp, twin)
    quant_output(imp, onode, tmp, ins[6], ins[7])


@translates("QGemm", domains=MICROSOFT)
def qgemm(imp, onode) -> None:
    """onnxruntime's ``QGemm(a, sa, za, b, sb, zb, C, sy, zy)`` (com.microsoft): Quant(a) ->
    Gemm by ``(b - zb) * sb`` with bias ``C * sa * sb`` -> Quant(sy, zy); without ``sy``
    the output stays float."""
    ins = list(onode.input) + [""] * (9 - len(onode.input))
    a_attrs = imp.attrs(onode)
    a = requantized(imp, onode, ins[0], ins[1], ins[2], "a")
    trans_b = int(a_attrs.get("transB", 0))
    b = integer_weights(imp, onode, ins[3], ins[4], ins[5], axis=0 if trans_b else 1)
    gemm_in = [a, b] + ([integer_bias(imp, ins[6], ins[1], ins[4])] if ins[6] else [])
    keep = [x for x in onode.attribute if x.name in ("alpha", "transA", "transB")]
    twin, tmp = float_twin(imp, onode, "Gemm", gemm_in, attrs=keep)
    gemm(imp, twin)
    if ins[7]:
        quant_output(imp, onode, tmp, ins[7], ins[8])
    else:
        imp.alias[onode.output[0]] = tmp


@translates("QLinearAdd", domains=MICROSOFT)
def qlinear_add(imp, onode) -> None:
    """onnxruntime's ``QLinearAdd(a, sa, za, b, sb, zb, sy, zy)`` (com.microsoft):
    Quant(a), Quant(b) -> Add -> Quant(sy, zy)."""
    ins = list(onode.input)
    a = requantized(imp, onode, ins[0], ins[1], ins[2], "a")
    b = requantized(imp, onode, ins[3], ins[4], ins[5], "b")
    twin, tmp = float_twin(imp, onode, "Add", [a, b], attrs=[])
    add(imp, twin)
    quant_output(imp, onode, tmp, ins[6], ins[7])


@translates("QLinearSoftmax", domains=MICROSOFT)
def qlinear_softmax(imp, onode) -> None:
    """onnxruntime's ``QLinearSoftmax(x, sx, zx, sy, zy)`` (com.microsoft): Quant(x) ->
    Softmax -> Quant(sy, zy) (as the last op, the host applies it to the logits)."""
    ins = list(onode.input)
    x = requantized(imp, onode, ins[0], ins[1], ins[2], "x")
    twin, tmp = float_twin(imp, onode, "Softmax", [x], attrs=[a for a in onode.attribute if a.name == "axis"])
    softmax(imp, twin)
    quant_output(imp, onode, tmp, ins[3], ins[4])
