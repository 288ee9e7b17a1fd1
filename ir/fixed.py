"""The numeric contract: fixed-point types and the one rounding and saturation rule.

A value of a :class:`FixedType` is an integer ``q`` standing for ``q * 2**-frac``.

The rule, used by the golden model and by every backend:

* **Rounding** is *round half up*: to drop ``s > 0`` fractional bits from an integer
  ``a``, compute ``(a + 2**(s-1)) >> s`` with an arithmetic (flooring) shift. A negative
  ``s`` is an exact left shift. Ties therefore go towards +infinity: 2.5 -> 3, -2.5 -> -2.
* **Saturation** clamps to the type's range ``[lo, hi]`` after rounding; it never wraps.
* Float values enter the integer domain only at the model input (and when weights are
  quantized at compile time), through :func:`quantize_float`, which applies the same
  rule to ``x * 2**frac`` computed exactly in float64: ``floor(x * 2**frac + 0.5)``.

Floating point never appears in the integer path itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedType:
    """A two's-complement (``signed``) or unsigned integer of ``width`` bits, scale 2**-frac."""

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 62:
            raise ValueError(f"fixed-point width must be 1..62 bits, got {self.width}")
        if self.signed and self.width < 2:
            raise ValueError("a signed fixed-point type needs at least 2 bits")

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def scale(self) -> float:
        """The real value of one LSB."""
        return 2.0 ** -self.frac

    def __str__(self) -> str:
        kind = "s" if self.signed else "u"
        return f"{kind}{self.width}.{self.frac}"


def round_shift(a: np.ndarray, shift: int) -> np.ndarray:
    """Drop ``shift`` fractional bits from int64 ``a`` with round-half-up (see module doc)."""
    a = np.asarray(a, dtype=np.int64)
    if shift > 0:
        return (a + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    if shift < 0:
        return a << np.int64(-shift)
    return a.copy()


def saturate(a: np.ndarray, t: FixedType) -> np.ndarray:
    """Clamp int64 ``a`` to the range of ``t``."""
    return np.clip(np.asarray(a, dtype=np.int64), t.lo, t.hi)


def requantize(acc: np.ndarray, acc_frac: int, out: FixedType) -> np.ndarray:
    """Move an integer at scale 2**-acc_frac to type ``out``: round, then saturate."""
    return saturate(round_shift(acc, acc_frac - out.frac), out)


def quantize_float(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Float to ``t``: ``saturate(floor(x * 2**frac + 0.5))``, computed in float64."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize NaN or infinite values")
    # the float clip only keeps the cast to int64 in range (float(hi) may round up for
    # widths above 53 bits); the integer saturate is the exact one
    return saturate(np.clip(_round_half_up(x, t.frac), t.lo, t.hi).astype(np.int64), t)


def _round_half_up(x: np.ndarray, frac: int) -> np.ndarray:
    """``floor(x * 2**frac + 0.5)`` exactly, as float64 (+-inf where it overflows).

    ``y + 0.5`` itself may round in float64 (0.49999999999999994 + 0.5 == 1.0, and
    2**52 + 1.5 rounds to even); ``y - floor(y)`` is always exact, so compare that.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.ldexp(x, frac)
        low = np.floor(y)
        return low + (y - low >= 0.5)


def dequantize(q: np.ndarray, t: FixedType) -> np.ndarray:
    return np.ldexp(np.asarray(q, dtype=np.float64), -t.frac)


def frac_for_range(max_abs: float, width: int, signed: bool) -> int:
    """Largest ``frac`` such that ``max_abs * 2**frac`` still fits the type (no saturation).

    A range of zero gets the frac that makes 1.0 representable in the top bit.
    """
    hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
    if max_abs <= 0 or not np.isfinite(max_abs):
        return width - 1 - (1 if signed else 0)
    # max_abs = m * 2**e with 0.5 <= m < 1, so the answer is within a step or two of
    # hi.bit_length() - e (no float log: it overflows for subnormal ranges)
    frac = hi.bit_length() - math.frexp(max_abs)[1]
    while _round_half_up(max_abs, frac) > hi:
        frac -= 1
    while _round_half_up(max_abs, frac + 1) <= hi:
        frac += 1
    return frac


def signed_width_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    w = 2
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w
