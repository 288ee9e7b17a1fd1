"""The QONNX dialect (Brevitas / QKeras exports through qonnx): ``Quant`` and
``BipolarQuant`` in the QONNX / FINN domains. Of constants they are folded (the weights
remember their integers' scale); of an activation they become the IR op Quant."""

from __future__ import annotations

import numpy as np

from ..ir.ops import quant
from .errors import ImportError_, q as qn
from .quant_params import broadcast_qparams
from .translate import translates

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn", "qonnx")


def is_qonnx(onode) -> bool:
    """A QONNX quantization node (Brevitas / QKeras exports through qonnx)."""
    return onode.domain in QONNX_DOMAINS and onode.op_type in ("Quant", "BipolarQuant")


def qonnx_attrs(imp, onode, max_bits: int = 16) -> dict:
    """A QONNX Quant / BipolarQuant as the attributes of the IR op Quant, with the scale
    as an array (per tensor or per channel) and the integer width of its values (at most
    ``max_bits``: 16 for activations, 32 for constants such as a 32-bit bias)."""
    ins = list(onode.input)
    consts = [imp.const(t) for t in ins[1:]]
    if any(c is None for c in consts):
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs constant scale, zero point and width")
    scale = np.asarray(consts[0], dtype=np.float64)
    if not np.all(scale > 0):
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} scale must be > 0")
    if onode.op_type == "BipolarQuant":
        return {"scale": scale, "zero": 0, "qmin": -1, "qmax": 1, "rounding": "sign", "bits": 2}
    zero, bits = np.asarray(consts[1], dtype=np.float64), np.asarray(consts[2], dtype=np.float64)
    if zero.size != 1 or bits.size != 1 or zero.reshape(-1)[0] != round(zero.reshape(-1)[0]) \
            or bits.reshape(-1)[0] != round(bits.reshape(-1)[0]):
        raise ImportError_(f"node {qn(onode.name)}: Quant needs one integer zero point and one integer bit width")
    a = imp.attrs(onode)
    signed, narrow, b = int(a.get("signed", 1)), int(a.get("narrow", 0)), int(bits.reshape(-1)[0])
    mode = a.get("rounding_mode", b"ROUND")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    rounding = {"ROUND": "half_even", "HALF_EVEN": "half_even", "FLOOR": "floor", "CEIL": "ceil"}.get(mode)
    if rounding is None or not 2 <= b <= max_bits:
        raise ImportError_(f"node {qn(onode.name)}: Quant with rounding_mode {mode} and bit width {b} is not "
                           f"supported (ROUND / HALF_EVEN / FLOOR / CEIL, 2..{max_bits} bits)")
    lo = (-(1 << (b - 1)) + narrow) if signed else 0
    hi = ((1 << (b - 1)) - 1) if signed else (1 << b) - 1 - narrow
    return {"scale": scale, "zero": int(zero.reshape(-1)[0]), "qmin": lo, "qmax": hi, "rounding": rounding,
            "bits": b + (0 if signed else 1)}


def fold_qonnx(imp, onode) -> None:
    """A Quant / BipolarQuant of constants: the quantized values, dequantized, remembering
    the integers' scale (per tensor or along one axis) and width."""
    a = qonnx_attrs(imp, onode, max_bits=32)
    w = np.asarray(imp.values[onode.input[0]], dtype=np.float64)
    scale, _, axis = broadcast_qparams(onode, w.shape, a["scale"], np.zeros(1), None)
    q = quant.integers({**a, "scale": 1.0}, w / scale)
    imp.values[onode.output[0]] = ((q - a["zero"]) * scale).astype(np.float32)
    imp.dequantized[onode.output[0]] = {"scale": scale.reshape(-1), "zero": np.asarray(a["zero"]),
                                        "axis": axis if axis is not None else 0, "bits": a["bits"] if axis is not
                                        None else 0}


@translates("Quant", "BipolarQuant", domains=QONNX_DOMAINS)
def quant_activation(imp, onode) -> None:
    """A QONNX Quant / BipolarQuant of an activation: the IR op Quant (per tensor)."""
    x = imp.activation_input(onode)
    a = qonnx_attrs(imp, onode)
    if a["scale"].size != 1:
        raise ImportError_(f"node {qn(onode.name)}: per-channel quantization of activations is not supported")
    a["scale"] = float(a["scale"].reshape(-1)[0])
    del a["bits"]
    imp.emit(onode, "Quant", [x], a)
