"""Quant: a fake-quantization point carried by a model quantized elsewhere (an ONNX
QuantizeLinear / DequantizeLinear pair, a QONNX ``Quant`` or ``BipolarQuant``).

Attributes: ``scale`` (> 0), ``zero`` (the zero point), ``qmin`` / ``qmax`` (the integer
range, e.g. 0 and 255 for uint8), ``rounding`` (``half_even``: ONNX QuantizeLinear and
QONNX ``ROUND``; ``floor``; ``ceil``; ``sign``: BipolarQuant, -1 below 0 and +1 from 0).

Float::

    q = clip(round(x / scale) + zero, qmin, qmax)
    y = (q - zero) * scale

There is no integer semantics: the quantizer (``passes.prequant``) turns every Quant into
the type of the tensor it marks (real scale, zero point, range) and removes it; the
rescale moves into the requantization of the op that produces the tensor.
"""

import numpy as np

from .base import OpDef, Traits

ATTRS = {"scale": 1.0, "zero": 0, "qmin": -128, "qmax": 127, "rounding": "half_even"}
ROUNDING = ("half_even", "floor", "ceil", "sign")


def shape(attrs, in_shapes):
    if not float(attrs.get("scale", 1.0)) > 0:
        raise ValueError(f"Quant: scale must be > 0, got {attrs.get('scale')}")
    if int(attrs.get("qmin", -128)) > int(attrs.get("qmax", 127)):
        raise ValueError("Quant: qmin > qmax")
    if attrs.get("rounding", "half_even") not in ROUNDING:
        raise ValueError(f"Quant: rounding must be one of {ROUNDING}")
    return [in_shapes[0]]


def integers(attrs, x: np.ndarray) -> np.ndarray:
    """``clip(round(x / scale) + zero, qmin, qmax)`` in float64 (integer values)."""
    s, z = float(attrs.get("scale", 1.0)), int(attrs.get("zero", 0))
    mode = attrs.get("rounding", "half_even")
    v = np.asarray(x, dtype=np.float64) / s
    if mode == "sign":
        r = np.where(v >= 0, 1.0, -1.0)
    else:
        r = {"half_even": np.rint, "floor": np.floor, "ceil": np.ceil}[mode](v)
    return np.clip(r + z, int(attrs.get("qmin", -128)), int(attrs.get("qmax", 127)))


def float_ref(attrs, inputs):
    q = integers(attrs, inputs[0])
    return [((q - int(attrs.get("zero", 0))) * float(attrs.get("scale", 1.0))).astype(np.float32)]


DEF = OpDef(name="Quant", shape=shape, float_ref=float_ref, attrs=ATTRS, traits=Traits(float_only=True),
            doc="fake-quantization point (passes/prequant.py takes it)")
