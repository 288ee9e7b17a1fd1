"""The reduced-precision float contract: float16 / bfloat16 tensors, float32 accumulation.

A tensor of a :class:`FloatType` holds 16-bit float **bit patterns**, as integers in
``[0, 65535]`` (sign in bit 15). The golden model computes on these integers as every
backend does, so "bit-exact" keeps its meaning: every output pattern equal.

Formats: ``fp16`` (IEEE binary16: 5 exponent bits, 10 mantissa bits, subnormals) and
``bf16`` (bfloat16: 8 exponent bits, 7 mantissa bits, subnormals). The arithmetic is IEEE
binary32 (fp32), every operation rounded to nearest, ties to even (RNE), no fused
multiply-add, subnormals kept (no flush to zero):

* **Widening** F -> fp32 is exact.
* **Narrowing** fp32 -> F (every stored result, and the model input, which is first made
  fp32): RNE, then *saturation*: a magnitude above ``SAT`` becomes ``SAT`` with the sign
  (``SAT`` is fp16's largest finite value 65504, and 2^64 for bf16, so that no fp32
  accumulation can overflow: see :func:`check_range`); a result that is zero is stored
  as +0 (never -0). No Inf or NaN ever exists.
* **Dense / Conv**: ``acc = b``; then for every tap in order (Dense: input index ``k``
  ascending; Conv: input channel, kernel row, kernel column, each ascending)
  ``acc = acc + x * w`` (the product rounded to fp32, then the sum rounded to fp32);
  a fused Relu is ``acc > 0 ? acc : +0``; the output is narrowed. A tap with a zero
  weight, or a padding input (+0), may be skipped or not: ``acc`` is never -0 (biases
  are stored without -0, and an RNE sum is -0 only when both terms are), and adding
  +-0 to a value other than -0 leaves it unchanged, so the result is the same. Zero
  skipping (pruning) is therefore exact in every backend.
* **Add**: ``narrow(a + b)``. **Relu**: ``x > 0 ? x : +0``. **MaxPool** / Reshape: exact
  (no rounding; padding never wins). **GlobalAveragePool**: ``acc = +0``, ``acc = acc + x``
  over the positions in row-major order, then ``narrow(acc * r)`` with the fp32 constant
  ``r = fp32(1 / count)``.

Each op's part of this contract is its ``float16_ref`` (:mod:`nnforge.ir.ops`), written with
:meth:`FloatFormat.widen` and :meth:`FloatFormat.narrow`; :data:`FLOAT_OPS` names the ops
that have one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import FixedType
from .ops import ops_defining


@dataclass(frozen=True)
class FloatFormat:
    name: str
    exp_bits: int
    man_bits: int
    sat: int  # the largest stored magnitude, as a positive bit pattern

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def sat_value(self) -> float:
        return float(to_f32(np.array([self.sat]), self)[0])

    def widen(self, p: np.ndarray) -> np.ndarray:
        """Patterns to their exact float32 values (:func:`to_f32`)."""
        return to_f32(p, self)

    def finite(self, acc: np.ndarray, what: str) -> np.ndarray:
        """``acc`` itself, after checking that the accumulation ``what`` did not overflow."""
        if not np.all(np.isfinite(acc)):
            raise ArithmeticError(f"{what}: float32 overflow (cannot happen for a checked graph)")
        return acc

    def narrow(self, x: np.ndarray, relu: bool = False, what: str = "") -> np.ndarray:
        """float32 results to stored patterns (:func:`from_f32`): checked for overflow first
        when ``what`` names the accumulation, then a fused Relu (``x > 0 ? x : +0``)."""
        if what:
            x = self.finite(x, what)
        if relu:
            x = np.where(x > 0, x, np.float32(0)).astype(np.float32)
        return from_f32(x, self)


FORMATS = {
    "fp16": FloatFormat("fp16", 5, 10, 0x7BFF),  # 65504, the largest finite binary16
    "bf16": FloatFormat("bf16", 8, 7, 0x5F80),  # 2**64
}


@dataclass(frozen=True)
class FloatType(FixedType):
    """A tensor of 16-bit float patterns of format ``fmt`` (see the module doc). As an
    integer type it is unsigned 16-bit (the patterns), which is how backends move it."""

    fmt: str = "fp16"
    is_float = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fmt not in FORMATS:
            raise ValueError(f"float format must be one of {', '.join(FORMATS)}, got {self.fmt!r}")
        if (self.width, self.frac, self.signed) != (16, 0, False):
            raise ValueError("a float type is stored as 16-bit patterns")

    @property
    def format(self) -> FloatFormat:
        return FORMATS[self.fmt]

    def __str__(self) -> str:
        return self.fmt

    def from_float(self, x: np.ndarray) -> np.ndarray:
        """Float values to patterns (:func:`quantize`)."""
        return quantize(x, self)

    def to_float(self, p: np.ndarray) -> np.ndarray:
        """Patterns to float64 values (:func:`dequantize`)."""
        return dequantize(p, self)


def float_type(fmt: str) -> FloatType:
    return FloatType(16, 0, False, fmt=fmt)


def is_float(t) -> bool:
    return isinstance(t, FloatType)


def to_f32(p: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Patterns (any integer dtype) to their exact float32 values."""
    p = np.asarray(p).astype(np.uint16)
    if fmt.name == "fp16":
        return p.view(np.float16).astype(np.float32)
    return (p.astype(np.uint32) << np.uint32(16)).view(np.float32)


def from_f32(x: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """float32 values to patterns (int64): RNE, saturation at ``fmt.sat``, zero as +0."""
    x = np.asarray(x, dtype=np.float32)
    if np.isnan(x).any():
        raise ValueError("NaN cannot be stored in a float tensor")
    if fmt.name == "fp16":
        with np.errstate(over="ignore"):
            r = x.astype(np.float16).view(np.uint16).astype(np.int64)
    else:
        b = x.view(np.uint32).astype(np.int64)
        r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    sign, mag = r & 0x8000, r & 0x7FFF
    mag = np.minimum(mag, fmt.sat)
    return np.where(mag == 0, 0, sign | mag).astype(np.int64)


def quantize(x: np.ndarray, t: FloatType) -> np.ndarray:
    """Model input: float32 first (RNE), then narrowed."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot convert NaN or infinite values")
    with np.errstate(over="ignore"):
        return from_f32(x.astype(np.float32), t.format)


def dequantize(p: np.ndarray, t: FloatType) -> np.ndarray:
    return to_f32(p, t.format).astype(np.float64)


def check_patterns(p: np.ndarray, fmt: FloatFormat, what: str) -> None:
    """Stored patterns are finite, at most ``SAT`` in magnitude, and never -0."""
    p = np.asarray(p, dtype=np.int64)
    bad = ((p & 0x7FFF) > fmt.sat) | (p == 0x8000)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} values are not {fmt.name} patterns of this contract (magnitude "
                         f"above {fmt.sat_value:g}, Inf, NaN or -0), e.g. {int(p[bad].flat[0]):#06x}")


def random_patterns(rng: np.random.Generator, shape, fmt: FloatFormat) -> np.ndarray:
    """Valid patterns spread over the whole range (any magnitude up to ``SAT``, both signs)."""
    mag = rng.integers(0, fmt.sat + 1, size=shape)
    neg = rng.integers(0, 2, size=shape).astype(bool) & (mag != 0)
    return np.where(neg, mag | 0x8000, mag).astype(np.int64)


def check_range(w: np.ndarray, b: np.ndarray, fmt: FloatFormat, what: str) -> None:
    """No fp32 accumulation of a layer can overflow: inputs are at most ``SAT`` in
    magnitude, so ``|acc| <= SAT * sum|w| + |b|`` per output (with rounding slack)."""
    w = to_f32(w, fmt).astype(np.float64)
    rows = np.abs(w.reshape(w.shape[0], -1)).sum(axis=1) * fmt.sat_value * (1 + 2.0 ** -20)
    bound = float((rows + np.abs(to_f32(b, fmt).astype(np.float64))).max(initial=0.0))
    if not bound < 2.0 ** 127:
        raise ValueError(f"{what}: its float32 accumulator could overflow (bound {bound:.3g})")


FLOAT_OPS = ops_defining("float16_ref")
