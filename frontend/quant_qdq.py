"""The QDQ dialect: ``QuantizeLinear`` / ``DequantizeLinear`` pairs.

Of constants (weights, biases) they are folded: the weights become float constants that
remember their integers' scale (``imp.dequantized``). Of an activation, a
``QuantizeLinear`` becomes the IR op Quant (fake quantization) and the
``DequantizeLinear`` after it, with the same parameters, the identity."""

from __future__ import annotations

import numpy as np

from .errors import ImportError_, q as qn
from .quant_params import broadcast_qparams, default_zero_dtype, dequantized_const, int_bits, tensor_qparams
from .translate import translates


def fold_dequantize(imp, onode) -> None:
    """A DequantizeLinear of constants (weights, biases): ``(q - zero) * scale`` in float32,
    the scale and zero point per tensor, along ``axis`` (1-D) or broadcast numpy-style
    (rank > 1); the integers' scale and width are remembered."""
    ins = list(onode.input)
    q = imp.values[ins[0]]
    a = imp.attrs(onode)
    if a.get("block_size"):
        raise ImportError_(f"node {qn(onode.name)}: blocked DequantizeLinear is not supported")
    dequantized_const(imp, onode.output[0], q, imp.values[ins[1]],
                      imp.values[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(1, dtype=np.int64),
                      int(a.get("axis", 1)), int_bits(q.dtype), onode)


def fold_quantize(imp, onode) -> None:
    """A QuantizeLinear of constants: ``saturate(round_half_even(x / scale) + zero)`` in the
    zero point's integer type, scale and zero point as in :func:`fold_dequantize`."""
    ins = list(onode.input) + ["", ""]
    x = np.asarray(imp.values[ins[0]])  # divided in its own precision, as onnx does
    a = imp.attrs(onode)
    if a.get("block_size"):
        raise ImportError_(f"node {qn(onode.name)}: blocked QuantizeLinear is not supported")
    zero = imp.values[ins[2]] if ins[2] else np.zeros(1, dtype=default_zero_dtype(a))
    dtype = np.dtype(zero.dtype)
    if not int_bits(dtype):
        raise ImportError_(f"node {qn(onode.name)}: QuantizeLinear to {dtype} is not supported")
    scale, z, _ = broadcast_qparams(onode, x.shape, imp.values[ins[1]], zero, int(a.get("axis", 1)))
    info = np.iinfo(dtype)
    q = np.clip(np.rint(x / scale.astype(x.dtype)).astype(np.float64) + z, info.min, info.max)
    imp.values[onode.output[0]] = q.astype(dtype)


def qparams(imp, onode) -> tuple[float, int, int, int]:
    """Scale, zero point and integer range of a per-tensor QuantizeLinear / DequantizeLinear."""
    ins = list(onode.input) + [""]
    return tensor_qparams(imp, onode, ins[1], ins[2], imp.attrs(onode))


@translates("QuantizeLinear")
def quantize_linear(imp, onode) -> None:
    """An activation's QuantizeLinear becomes a Quant (fake quantization); the
    DequantizeLinear after it, with the same parameters, is then the identity."""
    x = imp.activation_input(onode)
    scale, zero, lo, hi = qparams(imp, onode)
    if not scale > 0:
        raise ImportError_(f"node {qn(onode.name)}: QuantizeLinear scale must be > 0, got {scale}")
    imp.emit(onode, "Quant", [x], {"scale": scale, "zero": zero, "qmin": lo, "qmax": hi})
    imp.quantized[onode.output[0]] = (scale, zero, lo, hi)


@translates("DequantizeLinear")
def dequantize_linear(imp, onode) -> None:
    src = onode.input[0]
    params = imp.quantized.get(src)
    if params is None or qparams(imp, onode)[:2] != params[:2]:
        raise ImportError_(
            f"node {qn(onode.name)}: a DequantizeLinear of an activation must follow a QuantizeLinear with the "
            f"same scale and zero point (integer inputs or QLinear* ops are not supported)")
    imp.alias[onode.output[0]] = imp.resolve(src)
