"""The numeric contract: fixed-point types and the one rounding and saturation rule.

A value of a :class:`FixedType` is an integer ``q`` standing for ``q * 2**-frac``.

The rule, used by the golden model and by every backend:

* **Rounding** is *round half up*: to drop ``s > 0`` fractional bits from an integer
  ``a``, compute ``(a + 2**(s-1)) >> s`` with an arithmetic (flooring) shift. A negative
  ``s`` is an exact left shift. Ties therefore go towards +infinity: 2.5 -> 3, -2.5 -> -2.
* **Ties to even** is the one other rounding, for the requantization of a Dense / Conv
  whose model states it (a QONNX ``ROUND`` / ONNX ``QuantizeLinear`` after the layer, with
  a power-of-two rescale: Brevitas' fixed-point quantizers): ``(a + 2**(s-1) - 1 + bit_s(a))
  >> s``, where ``bit_s(a) = (a >> s) & 1`` is the parity of the integer part, so a tie
  goes to the even neighbour: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2. The layer's ``rounding``
  attribute says which rule it uses (``half_up`` unless stated).
* **Saturation** clamps to the type's range ``[lo, hi]`` after rounding; it never wraps.
* Float values enter the integer domain only at the model input (and when weights are
  quantized at compile time), through :func:`quantize_float`, which applies the same
  rule to ``x * 2**frac`` computed exactly in float64: ``floor(x * 2**frac + 0.5)``.
* **Real scales** (models quantized elsewhere: QDQ, QONNX) are integer too. A type may
  carry ``real_scale`` (one LSB's value, instead of ``2**-frac``), a zero point ``zero``
  and narrower ``bounds``. The stored integer is always ``v = q - zero`` (the value is
  ``v * scale``), so padding holds 0 and no op sees a zero point; a uint8 tensor with zero
  point 37 is stored as 9-bit signed ``v`` in ``[-37, 218]``. Rescaling by a real ratio is
  an integer multiplier and a shift (:func:`requantize_mult`, :func:`real_multiplier`),
  the gemmlowp scheme.

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
    bounds: tuple[int, int] | None = None  # a narrower [lo, hi] inside the width's range
    zero: int = 0  # zero point: the model's integer is the stored one plus this
    real_scale: float = 0.0  # one LSB's value when it is not 2**-frac (0: power of two)
    # a float16 / bfloat16 type (nnforge.ir.floats.FloatType) holds bit patterns instead
    # and converts from and to floats with its own from_float / to_float
    is_float = False

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 62:
            raise ValueError(f"fixed-point width must be 1..62 bits, got {self.width}")
        if self.signed and self.width < 2:
            raise ValueError("a signed fixed-point type needs at least 2 bits")
        if self.bounds is not None:
            lo, hi = (int(b) for b in self.bounds)
            full_lo = -(1 << (self.width - 1)) if self.signed else 0
            full_hi = (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1
            if not full_lo <= lo <= hi <= full_hi:
                raise ValueError(f"bounds [{lo}, {hi}] do not fit a {self.width}-bit "
                                 f"{'signed' if self.signed else 'unsigned'} type")
            object.__setattr__(self, "bounds", (lo, hi))
        if not (self.real_scale >= 0 and math.isfinite(self.real_scale)):
            raise ValueError(f"a scale must be a positive number, got {self.real_scale}")

    @property
    def lo(self) -> int:
        if self.bounds is not None:
            return self.bounds[0]
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        if self.bounds is not None:
            return self.bounds[1]
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def scale(self) -> float:
        """The real value of one LSB."""
        return self.real_scale or 2.0 ** -self.frac

    def __str__(self) -> str:
        kind = "s" if self.signed else "u"
        if not (self.real_scale or self.zero or self.bounds):
            return f"{kind}{self.width}.{self.frac}"
        scale = f"{self.real_scale:.6g}" if self.real_scale else f"2^-{self.frac}"
        rng = f"[{self.lo}..{self.hi}]" if self.bounds else ""
        return f"{kind}{self.width}{rng}*{scale}" + (f"+{self.zero}" if self.zero else "")


ROUNDINGS = ("half_up", "half_even")


def round_shift(a: np.ndarray, shift: int, rounding: str = "half_up") -> np.ndarray:
    """Drop ``shift`` fractional bits from int64 ``a``, rounding half up or (``rounding=
    "half_even"``) ties to even (see module doc)."""
    a = np.asarray(a, dtype=np.int64)
    if shift > 0:
        if rounding == "half_even":
            return (a + ((np.int64(1) << np.int64(shift - 1)) - 1) + ((a >> np.int64(shift)) & 1)) >> np.int64(shift)
        return (a + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)
    if shift < 0:
        return a << np.int64(-shift)
    return a.copy()


def round_shift_rows(a: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """:func:`round_shift` with one shift per sample (axis 0 of ``a``)."""
    a = np.asarray(a, dtype=np.int64)
    return np.stack([round_shift(a[i], int(shifts[i])) for i in range(len(a))]) if len(a) else a


def saturate(a: np.ndarray, t: FixedType) -> np.ndarray:
    """Clamp int64 ``a`` to the range of ``t``."""
    return np.clip(np.asarray(a, dtype=np.int64), t.lo, t.hi)


def requantize(acc: np.ndarray, acc_frac: int, out: FixedType) -> np.ndarray:
    """Move an integer at scale 2**-acc_frac to type ``out``: round, then saturate."""
    return saturate(round_shift(acc, acc_frac - out.frac), out)


def requantize_mult(acc: np.ndarray, mult: np.ndarray, shift: int, out: FixedType, axis: int = -1,
                    rounding: str = "half_up") -> np.ndarray:
    """Rescale by ``mult[c] * 2**-shift`` per channel ``c`` on ``axis`` of ``acc``, then the
    contract's rounding and saturation: ``saturate(round_shift(acc * mult[c], shift, rounding))``.
    The caller guarantees that ``acc * mult`` fits int64."""
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(mult, dtype=np.int64)
    if m.size > 1:
        shape = [1] * acc.ndim
        shape[axis] = m.size
        m = m.reshape(shape)
    return saturate(round_shift(acc * m, shift, rounding), out)


def real_multiplier(ratio, max_bits: int = 31) -> tuple[np.ndarray, int]:
    """Integer ``mult`` (each < ``2**max_bits``) and one ``shift`` with ``mult * 2**-shift``
    as close to ``ratio`` (per channel, > 0) as ``max_bits`` allow: the largest ratio gets
    the full ``max_bits``, ``mult = floor(ratio * 2**shift + 0.5)`` (float64, exact steps)."""
    r = np.atleast_1d(np.asarray(ratio, dtype=np.float64))
    if not np.all(np.isfinite(r)) or np.any(r < 0) or not np.any(r > 0):
        raise ValueError(f"rescale ratios must be finite, >= 0 and not all 0, got {r}")
    shift = max_bits - math.frexp(float(r.max()))[1]
    mult = round_half_up_frac(r, shift)
    while mult.max() >= 2.0 ** max_bits:
        shift -= 1
        mult = round_half_up_frac(r, shift)
    return mult.astype(np.int64), shift


def quantize_float(x: np.ndarray, t: FixedType, nonfinite: str = "raise") -> np.ndarray:
    """Float to ``t``: ``saturate(floor(x * 2**frac + 0.5))``, computed in float64 (with a
    real scale: ``saturate(floor(x / scale + 0.5))``). A float16 / bfloat16 type gets the
    bit patterns (its ``from_float``: :func:`nnforge.ir.floats.quantize`).

    ``nonfinite``: ``"raise"`` refuses NaN and infinities (ValueError); ``"saturate"`` is
    the rule of the generated C float wrapper (``nnforge_run_float``): NaN becomes 0
    (saturated into the type's range), +inf / -inf the type's largest / smallest value."""
    if t.is_float:
        return t.from_float(x)
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise ValueError(f"cannot quantize values of dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        if nonfinite != "saturate":
            raise ValueError("cannot quantize NaN or infinite values")
        x = np.where(np.isnan(x), 0.0, x)  # +-inf saturate through the clip below
    return quantize_frac(x, t.frac, t)


QUANTIZE_BLOCK = 1 << 20  # values quantized at once: float64 temporaries stay a few MB


def quantize_frac(x: np.ndarray, frac, t: FixedType) -> np.ndarray:
    """``saturate(floor(x * 2**frac + 0.5))`` to ``t`` as int64 (with a real scale in
    ``t``: ``saturate(floor(x / scale + 0.5))``); ``frac`` an int or an array that
    broadcasts along the first axis of ``x`` (per output channel). Computed exactly in
    float64, a block of rows at a time, so a large weight array costs its int64 result and
    a few MB, not several float64 copies."""
    x = np.asarray(x)
    f = np.asarray(frac)
    if x.ndim == 0 or x.size <= QUANTIZE_BLOCK:
        return np.asarray(_quantize_block(x.astype(np.float64), f, t), dtype=np.int64).reshape(x.shape)
    out = np.empty(x.shape, dtype=np.int64)
    rows = max(1, QUANTIZE_BLOCK // max(1, x[0].size))
    per_row = f.ndim > 0 and f.shape[0] == len(x) and len(x) > 1
    for i in range(0, len(x), rows):
        out[i:i + rows] = _quantize_block(np.asarray(x[i:i + rows], dtype=np.float64),
                                          f[i:i + rows] if per_row else f, t)
    return out


def _quantize_block(x: np.ndarray, frac, t: FixedType) -> np.ndarray:
    if t.real_scale:
        with np.errstate(over="ignore"):
            y = np.floor(x / t.real_scale + 0.5)
    else:
        y = round_half_up_frac(x, frac)
    # the float clip only keeps the cast to int64 in range (float(hi) may round up for
    # widths above 53 bits); the integer saturate is the exact one
    return saturate(np.clip(y, t.lo, t.hi).astype(np.int64), t)


def round_half_up_frac(x: np.ndarray, frac) -> np.ndarray:
    """``floor(x * 2**frac + 0.5)`` exactly, as float64 (+-inf where it overflows).

    ``y + 0.5`` itself may round in float64 (0.49999999999999994 + 0.5 == 1.0, and
    2**52 + 1.5 rounds to even); ``y - floor(y)`` is always exact, so compare that.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.ldexp(x, frac)
        low = np.floor(y)
        return low + (y - low >= 0.5)


def dequantize(q: np.ndarray, t: FixedType) -> np.ndarray:
    if t.is_float:
        return t.to_float(q)
    if t.real_scale:
        return np.asarray(q, dtype=np.float64) * t.real_scale
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
    while round_half_up_frac(max_abs, frac) > hi:
        frac -= 1
    while round_half_up_frac(max_abs, frac + 1) <= hi:
        frac += 1
    return frac


def signed_width_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]``."""
    w = 2
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


# ranges up to this size are also checked value by value when a reciprocal is made
EXHAUSTIVE = 1 << 20


def reciprocal(n_max: int, div: int) -> tuple[int, int]:
    """``(M, s)``, the smallest ``s`` with ``floor(v * M / 2**s) == floor(v / div)`` for every
    ``0 <= v <= n_max``, ``M = ceil(2**s / div)``. Proof: with ``e = M * div - 2**s``
    (``0 <= e < div``), ``v * M / 2**s = v / div + v * e / (div * 2**s)``, whose second term
    is below ``1 / div`` when ``e * n_max < 2**s``, so the floor is that of ``v / div`` for
    every ``v`` in range. Ranges of at most :data:`EXHAUSTIVE` are also checked value by
    value (an ArithmeticError if the proof were wrong)."""
    s = 0
    while True:
        m = -(-(1 << s) // div)
        if (m * div - (1 << s)) * n_max < (1 << s):
            break
        s += 1
    if n_max < EXHAUSTIVE and m * n_max < (1 << 62):
        v = np.arange(n_max + 1, dtype=np.int64)
        if not np.array_equal((v * m) >> s, v // div):
            raise ArithmeticError(f"the reciprocal {m} >> {s} of {div} is not exact")
    return m, s
