"""Property tests of the numeric contract (ir/fixed.py) against exact rational arithmetic.

Every expectation below is computed with Python ints / fractions.Fraction, never with the
numpy code under test.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from nnforge.ir.fixed import (
    FixedType, dequantize, frac_for_range, quantize_float, requantize, round_shift, saturate,
    signed_width_for,
)

# module-local (a loaded profile would change every other test module's settings)
thorough = settings(max_examples=300, deadline=None)

INT62 = st.integers(min_value=-(2**62) + 1, max_value=2**62 - 1)


def exact_round_half_up(value: Fraction) -> int:
    """floor(value + 1/2): round half towards +infinity."""
    return math.floor(value + Fraction(1, 2))


def clamp(v: int, t: FixedType) -> int:
    return min(max(v, t.lo), t.hi)


@st.composite
def fixed_types(draw, max_width: int = 62, frac=st.integers(-16, 40)):
    signed = draw(st.booleans())
    width = draw(st.integers(2 if signed else 1, max_width))
    return FixedType(width, draw(frac), signed)


# ---- FixedType ----------------------------------------------------------------------


@pytest.mark.parametrize("width, signed", [(0, True), (0, False), (-3, False), (63, True), (63, False), (1, True)])
def test_fixed_type_rejects_bad_widths(width, signed):
    with pytest.raises(ValueError, match="bit"):
        FixedType(width, 0, signed)


@thorough
@given(st.integers(1, 62), st.integers(-64, 64), st.booleans())
def test_fixed_type_range(width, frac, signed):
    assume(width >= 2 or not signed)
    t = FixedType(width, frac, signed)
    if signed:
        assert (t.lo, t.hi) == (-(2 ** (width - 1)), 2 ** (width - 1) - 1)
    else:
        assert (t.lo, t.hi) == (0, 2**width - 1)
    assert t.hi - t.lo + 1 == 2**width
    assert Fraction(t.scale) == Fraction(2) ** -frac
    assert str(t) == f"{'s' if signed else 'u'}{width}.{frac}"


def test_fixed_type_is_frozen_and_hashable():
    t = FixedType(8, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.width = 9  # type: ignore[misc]
    assert t == FixedType(8, 3, True) and hash(t) == hash(FixedType(8, 3, True))
    assert t != FixedType(8, 3, False)
    assert FixedType(1, 0, False).hi == 1


# ---- round_shift ----------------------------------------------------------------------


@thorough
@given(INT62, st.integers(1, 62))
@example(5, 1)   # 2.5 -> 3
@example(-5, 1)  # -2.5 -> -2
@example(-3, 1)  # -1.5 -> -1
@example(3, 1)   # 1.5 -> 2
@example(-(2**62) + 1, 62)
@example(2**62 - 1, 62)
def test_round_shift_is_round_half_up(a, shift):
    got = round_shift(np.array([a], dtype=np.int64), shift)
    assert got.dtype == np.int64
    assert int(got[0]) == exact_round_half_up(Fraction(a, 2**shift))


@thorough
@given(st.integers(1, 40), st.integers(-(2**20), 2**20))
def test_round_shift_ties_go_up(shift, k):
    """a = (2k + 1) * 2**(shift - 1) is exactly halfway between k and k + 1."""
    a = (2 * k + 1) * 2 ** (shift - 1)
    assert int(round_shift(np.int64(a), shift)) == k + 1
    # one below the tie rounds down, one above rounds up
    assert int(round_shift(np.int64(a - 1), shift)) == k
    assert int(round_shift(np.int64(a + 1), shift)) == k + 1


@thorough
@given(st.integers(-(2**40), 2**40), st.integers(-22, 0))
def test_round_shift_nonpositive_is_exact_left_shift(a, shift):
    got = round_shift(np.array([a], dtype=np.int64), shift)
    assert int(got[0]) == a * 2 ** (-shift)


def test_round_shift_zero_returns_a_copy():
    a = np.array([1, -2, 3], dtype=np.int64)
    out = round_shift(a, 0)
    assert out is not a
    out[0] = 99
    assert a[0] == 1


@thorough
@given(st.lists(INT62, min_size=1, max_size=30), st.integers(1, 62))
def test_round_shift_elementwise(values, shift):
    got = round_shift(np.array(values, dtype=np.int64), shift)
    assert [int(v) for v in got] == [exact_round_half_up(Fraction(a, 2**shift)) for a in values]


# ---- saturate / requantize ----------------------------------------------------------------


@thorough
@given(st.lists(INT62, min_size=1, max_size=30), fixed_types())
def test_saturate_clamps(values, t):
    got = saturate(np.array(values, dtype=np.int64), t)
    assert got.dtype == np.int64
    assert [int(v) for v in got] == [clamp(v, t) for v in values]


@thorough
@given(fixed_types())
def test_saturate_keeps_the_range_and_its_edges(t):
    edges = np.array([t.lo - 1, t.lo, t.hi, t.hi + 1], dtype=np.int64)
    assert [int(v) for v in saturate(edges, t)] == [t.lo, t.lo, t.hi, t.hi]


@thorough
@given(st.lists(st.integers(-(2**50), 2**50), min_size=1, max_size=20), st.integers(-8, 40),
       fixed_types(max_width=32, frac=st.integers(-8, 40)))
def test_requantize_is_saturate_of_round_shift(values, acc_frac, out):
    shift = acc_frac - out.frac
    assume(shift > 0 or max(abs(v) for v in values) * 2 ** (-shift) < 2**62)
    acc = np.array(values, dtype=np.int64)
    got = requantize(acc, acc_frac, out)
    np.testing.assert_array_equal(got, saturate(round_shift(acc, shift), out))
    want = [clamp(exact_round_half_up(Fraction(v) * Fraction(2) ** (out.frac - acc_frac)), out) for v in values]
    assert [int(v) for v in got] == want


# ---- quantize_float / dequantize ----------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)


@thorough
@given(st.lists(FINITE, min_size=1, max_size=20), fixed_types())
@example([0.49999999999999994, -0.5, 0.5, 1.5, -1.5, 2.5, -2.5], FixedType(8, 0))
@example([2.0**52 + 1, -(2.0**52) - 1, 2.0**51 + 0.5], FixedType(60, 0))
@example([1e308, -1e308, 5e-324], FixedType(16, 40))
def test_quantize_float_is_exact_round_half_up_then_saturate(values, t):
    got = quantize_float(np.array(values, dtype=np.float64), t)
    assert got.dtype == np.int64
    want = [clamp(exact_round_half_up(Fraction(v) * Fraction(2) ** t.frac), t) for v in values]
    assert [int(v) for v in got] == want


@thorough
@given(st.lists(st.floats(-1000, 1000, width=32), min_size=1, max_size=20),
       fixed_types(max_width=24, frac=st.integers(-4, 20)))
def test_quantize_float_error_is_half_an_lsb_inside_the_range(values, t):
    x = np.array(values, dtype=np.float32)
    q = quantize_float(x, t)
    back = dequantize(q, t)
    scaled = np.ldexp(x.astype(np.float64), t.frac)
    inside = (scaled >= t.lo - 0.5) & (scaled < t.hi + 0.5)
    err = np.abs(back - x.astype(np.float64))
    assert np.all(err[inside] <= t.scale / 2)
    assert np.all((q >= t.lo) & (q <= t.hi))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_float_refuses_non_finite(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_float(np.array([0.0, bad]), FixedType(8, 4))


@thorough
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=10), st.integers(-30, 30))
def test_dequantize_is_exact(values, frac):
    t = FixedType(48, frac)
    got = dequantize(np.array(values, dtype=np.int64), t)
    assert [Fraction(float(v)) for v in got] == [Fraction(v) * Fraction(2) ** -frac for v in values]


# ---- frac_for_range ----------------------------------------------------------------------------


def rounded(max_abs: float, frac: int) -> int:
    return exact_round_half_up(Fraction(max_abs) * Fraction(2) ** frac)


@thorough
@given(st.floats(min_value=0.0, max_value=1e300, exclude_min=True), st.integers(2, 32), st.booleans())
@example(1.0, 8, True)
@example(127 / 128, 8, True)
@example(127.5 / 128, 8, True)
@example(255 / 256, 8, False)
@example(5e-324, 8, True)
@example(2.0**-1074 * 3, 16, False)
@example(1.7976931348623157e308, 32, True)
def test_frac_for_range_is_the_largest_without_saturation(max_abs, width, signed):
    f = frac_for_range(max_abs, width, signed)
    t = FixedType(width, f, signed)
    assert rounded(max_abs, f) <= t.hi, "max_abs saturates at the chosen frac"
    assert rounded(max_abs, f + 1) > t.hi, "one more fractional bit would still fit"
    if signed:
        assert exact_round_half_up(-Fraction(max_abs) * Fraction(2) ** f) >= t.lo
    # and the quantizer agrees: +-max_abs survive quantization within half an LSB
    q = quantize_float(np.array([max_abs, -max_abs if signed else 0.0]), t)
    assert int(q[0]) == rounded(max_abs, f)


@pytest.mark.parametrize("max_abs", [0.0, -1.0, float("nan")])
@pytest.mark.parametrize("width, signed", [(8, True), (8, False), (2, True), (1, False), (16, True)])
def test_frac_for_range_degenerate_range_makes_one_representable(max_abs, width, signed):
    f = frac_for_range(max_abs, width, signed)
    t = FixedType(width, f, signed)
    assert 2**f <= t.hi < 2 ** (f + 1), "1.0 should land in the top bit"


# ---- signed_width_for -----------------------------------------------------------------------


def fits(lo: int, hi: int, w: int) -> bool:
    return -(2 ** (w - 1)) <= lo and hi <= 2 ** (w - 1) - 1


@thorough
@given(st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70))
@example(0, 0)
@example(-2, 1)
@example(-3, 1)
@example(-128, 127)
@example(-129, 127)
@example(-128, 128)
def test_signed_width_for_is_minimal(a, b):
    lo, hi = min(a, b), max(a, b)
    w = signed_width_for(lo, hi)
    assert w >= 2 and fits(lo, hi, w)
    if w > 2:
        assert not fits(lo, hi, w - 1)
    def magnitude_bits(v: int) -> int:
        return v.bit_length() if v >= 0 else (-v - 1).bit_length()

    bits = max(magnitude_bits(lo), magnitude_bits(hi))
    assert w == max(2, bits + 1)
    if w <= 62:
        t = FixedType(w, 0)
        assert t.lo <= lo and hi <= t.hi
