"""Calibration: observe every activation tensor on a data set and choose its range.

:func:`observe` runs the float graph over the calibration set and keeps, per tensor, the
exact minimum and maximum and a uniform random sample of its values (at most
``sample_size``, reservoir-style across batches, so memory does not grow with the data
set). :func:`choose_range` turns that into the :class:`Range` the quantizer sizes the
tensor's fixed-point type from, by one of the methods:

- ``minmax``: the observed minimum and maximum (nothing saturates on the calibration set);
- ``percentile:P``: the P-th percentile of the values (and the (100 - P)-th for the low
  end of a signed tensor): rare outliers saturate, everything else gets finer steps;
- ``mse``: the power-of-two scale (the only kind the quantizer makes) that minimizes the
  mean squared error between the values and their quantized values, rounding and
  saturation included, among the scales from min-max's to eight steps finer;
- ``kl``: the clipping threshold minimizing the Kullback-Leibler divergence between the
  histogram of the values and its quantized version (the entropy calibration TensorRT
  made standard): 2048 bins of the non-zero |x|, candidate thresholds from 2^(bits-1) bins up (at
  most about 256 of them), the clipped tail added to the last kept bin.

The sign of a tensor (unsigned when the observed minimum is >= 0) never changes with
the method. :func:`calibrate` applies a default method and per-tensor overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import FixedType, Graph, run_float
from ..ir.fixed import frac_for_range
from ..ir.text import name as _name

METHODS = ("minmax", "percentile:P", "mse", "kl")
SAMPLE_SIZE = 65536


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float

    @property
    def max_abs(self) -> float:
        return max(abs(self.lo), abs(self.hi))


@dataclass(frozen=True)
class Stats:
    """What calibration saw of one tensor: exact extremes and a sample of the values."""

    lo: float
    hi: float
    sample: np.ndarray


class CalibrationError(ValueError):
    """The calibration data cannot give the ranges of the model's tensors."""


class CalibrationWarning(UserWarning):
    """The calibration data leaves some ranges unknown; a fallback was used."""


def parse_method(method: str) -> tuple[str, float | None]:
    """``"percentile:99.9"`` -> ("percentile", 99.9); the other names carry no number."""
    name, _, arg = str(method).strip().partition(":")
    name = name.lower()
    if name in ("minmax", "mse", "kl") and not arg:
        return name, None
    if name == "percentile":
        try:
            p = float(arg)
        except ValueError:
            p = float("nan")
        if not 50.0 < p <= 100.0:
            raise ValueError(f"calibration method {method!r}: the percentile must be in (50, 100], e.g. percentile:99.9")
        return name, p
    raise ValueError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")


def observe(g: Graph, x: np.ndarray, batch: int = 512, sample_size: int = SAMPLE_SIZE,
            seed: int = 0) -> dict[str, Stats]:
    """Extremes and a uniform sample of the graph input and of every node output over
    ``x`` (``sample_size`` 0: the extremes only, with an empty sample)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise CalibrationError("the calibration data holds no samples")
    rng = np.random.default_rng(seed)
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    keep: dict[str, np.ndarray] = {}  # the sample and each value's random key (the smallest keys win)
    keys: dict[str, np.ndarray] = {}
    for start in range(0, len(x), batch):
        with np.errstate(all="ignore"):  # an overflow is refused below, by name, not warned about
            env = run_float(g, x[start:start + batch], keep=True)
        for name, v in env.items():
            if name in g.consts:
                continue
            if not np.all(np.isfinite(v)):
                bad = int(np.count_nonzero(~np.isfinite(v)))
                raise CalibrationError(f"tensor '{_name(name)}' is not finite on the calibration data ({bad} "
                                       f"NaN or infinite values in samples {start}..{start + len(v) - 1}): the "
                                       f"float model overflows float32 on them, or computes a function where it is not defined "
                                       f"(Log or Reciprocal of 0, Log or Sqrt of a negative value)")
            lo[name] = min(lo.get(name, np.inf), float(v.min()))
            hi[name] = max(hi.get(name, -np.inf), float(v.max()))
            if sample_size == 0:
                continue
            flat = np.asarray(v, dtype=np.float32).reshape(-1)
            k = rng.random(flat.size)
            vals = np.concatenate([keep[name], flat]) if name in keep else flat
            ks = np.concatenate([keys[name], k]) if name in keys else k
            if vals.size > sample_size:
                pick = np.argpartition(ks, sample_size)[:sample_size]
                vals, ks = vals[pick], ks[pick]
            keep[name], keys[name] = vals, ks
    empty = np.zeros(0, np.float32)
    return {name: Stats(lo[name], hi[name], keep.get(name, empty)) for name in lo}


def calibrate_minmax(g: Graph, x: np.ndarray, batch: int = 512) -> dict[str, Range]:
    """Min-max ranges of the graph input and of every node output over ``x``."""
    return {name: Range(s.lo, s.hi) for name, s in observe(g, x, batch, sample_size=0).items()}


def calibrate(g: Graph, x: np.ndarray, bits: int, method: str = "minmax",
              overrides: dict[str, str] | None = None, batch: int = 512) -> dict[str, Range]:
    """The range of every activation tensor by ``method``; ``overrides`` maps a tensor name
    (or the name of the node that produces it) to another method. ``bits`` is the
    activation width the ranges are chosen for (it matters to ``mse`` and ``kl``)."""
    parse_method(method)
    by_tensor: dict[str, str] = {}
    producers = {t: n.name for n in g.topo() for t in n.outputs}
    for key, m in (overrides or {}).items():
        parse_method(m)
        tensors = [t for t, n in producers.items() if n == key] or ([key] if key in producers or key in g.inputs else [])
        if not tensors:
            raise ValueError(f"calibration override {key!r}: no tensor or node of that name")
        for t in tensors:
            by_tensor[t] = m
    if method == "minmax" and not by_tensor:
        return calibrate_minmax(g, x, batch)
    stats = observe(g, x, batch)
    return {name: choose_range(s, by_tensor.get(name, method), bits) for name, s in stats.items()}


MIN_SAMPLES = 8  # fewer calibration samples than this are warned about
PROBE_SAMPLES = 8  # random inputs the spread check runs the float model on
OTHER_SIGN = 0.05  # a probe value below -OTHER_SIGN * (the tensor's largest |value|) is clearly negative


@dataclass(frozen=True)
class SpreadCheck:
    """What :func:`check_spread` found: the ranges to quantize with (fallbacks applied)
    and one warning line per kind of problem."""

    ranges: dict[str, Range]
    warnings: tuple[str, ...]


def check_input_spread(g: Graph, x: np.ndarray) -> None:
    """Refuse calibration data with no samples, or whose every value is the same (all
    zeros, a constant): nothing can be known of the model input's range."""
    if len(x) == 0:
        raise CalibrationError("the calibration data holds no samples")
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo == hi:
        raise CalibrationError(
            f"calibration data: every value of the model input '{_name(g.inputs[0])}' is {lo:g} over {len(x)} "
            f"sample(s), so no range can be known for it or any tensor after it; give samples that vary as real "
            f"inputs do")


def check_spread(g: Graph, x: np.ndarray, ranges: dict[str, Range], seed: int = 0) -> SpreadCheck:
    """Check that the calibration data ``x`` spans the model's tensors; ``x`` has passed
    :func:`check_input_spread` (samples, not all the same value).

    The float model runs on :data:`PROBE_SAMPLES` probe inputs drawn uniformly from
    ``[min, max]`` of the calibration input, and two problems are warned about, each
    with a fallback:

    - a tensor with no spread (the same value on every calibration sample) that varies on
      the probes: its range becomes the union of both;
    - a tensor calibrated entirely >= 0 (so unsigned: every negative value would clip to 0)
      that the probes drive clearly negative (below ``-OTHER_SIGN`` times its largest
      |value|): it becomes signed, ``[-max|v|, hi]``.

    Fewer than :data:`MIN_SAMPLES` samples are warned about too."""
    x = np.asarray(x, dtype=np.float32)
    notes = []
    if len(x) < MIN_SAMPLES:
        notes.append(f"only {len(x)} calibration sample(s) (at least {MIN_SAMPLES} recommended): every range is "
                     f"estimated from them and other inputs may saturate")
    probe = _probe(g, x, seed)
    out = dict(ranges)
    unknown, one_sign = [], []
    for t, r in ranges.items():
        if t in g.inputs or t not in probe:
            continue
        plo, phi = probe[t]
        if r.lo == r.hi and phi > plo:
            unknown.append(t)
            out[t] = Range(min(r.lo, plo), max(r.hi, phi))
        elif r.lo >= 0 and plo < -OTHER_SIGN * max(r.max_abs, abs(plo), abs(phi)):
            one_sign.append(t)
            m = r.max_abs or -plo
            out[t] = Range(-m, max(r.hi, 0.0))
    if unknown:
        notes.append(f"no spread on the calibration data for {_names(unknown)}: the same value on every sample; "
                     f"their ranges are taken from random inputs within the calibrated input range")
    if one_sign:
        notes.append(f"{_names(one_sign)} never went negative on the calibration data but the float model makes "
                     f"{'them' if len(one_sign) > 1 else 'it'} negative on other inputs in the calibrated input "
                     f"range; made signed so negative values do not clip to 0")
    return SpreadCheck(out, tuple(notes))


def _probe(g: Graph, x: np.ndarray, seed: int) -> dict[str, tuple[float, float]]:
    """The extremes of every activation tensor on random inputs uniform in [min(x), max(x)]."""
    rng = np.random.default_rng(seed)
    lo, hi = float(x.min()), float(x.max())
    p = rng.uniform(lo, hi, size=(PROBE_SAMPLES, *x.shape[1:])).astype(np.float32)
    with np.errstate(all="ignore"):
        env = run_float(g, p, keep=True)
    out = {}
    for t, v in env.items():
        if t in g.consts:
            continue
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size:
            out[t] = (float(v.min()), float(v.max()))
    return out


def _names(tensors: list[str], shown: int = 4) -> str:
    text = ", ".join(f"'{_name(t)}'" for t in tensors[:shown])
    more = f" and {len(tensors) - shown} more" if len(tensors) > shown else ""
    return f"tensor{'s' if len(tensors) > 1 else ''} {text}{more}"


def choose_range(s: Stats, method: str, bits: int) -> Range:
    """The range one tensor is quantized for, by ``method`` (see the module docstring)."""
    name, p = parse_method(method)
    signed = s.lo < 0
    if name == "minmax" or s.hi == s.lo or s.sample.size == 0:
        return Range(s.lo, s.hi)
    v = s.sample.astype(np.float64)
    if name == "percentile":
        hi = float(np.percentile(v, p))
        lo = float(np.percentile(v, 100.0 - p)) if signed else max(s.lo, 0.0)
        return Range(min(lo, -np.finfo(np.float32).tiny) if signed else lo, max(hi, 0.0))
    if name == "mse":
        return _range_for_frac(_mse_frac(v, s, bits), bits, signed)
    return _kl_range(v, s, bits)


def _range_for_frac(frac: int, bits: int, signed: bool) -> Range:
    """The widest range a ``bits``-bit type of ``frac`` fractional bits holds (so that the
    quantizer's frac_for_range gives back ``frac``)."""
    hi = FixedType(bits, frac, signed).hi * 2.0 ** -frac
    return Range(-hi if signed else 0.0, hi)


def _quant_error(v: np.ndarray, t: FixedType) -> float:
    q = np.clip(np.floor(np.ldexp(v, t.frac) + 0.5), t.lo, t.hi)
    return float(np.mean((np.ldexp(q, -t.frac) - v) ** 2))


def _mse_frac(v: np.ndarray, s: Stats, bits: int) -> int:
    signed = s.lo < 0
    base = frac_for_range(max(abs(s.lo), abs(s.hi)), bits, signed)
    errors = {f: _quant_error(v, FixedType(bits, f, signed)) for f in range(base, base + 9)}
    return min(errors, key=lambda f: (errors[f], f))  # ties: the coarser scale, no extra saturation


def _kl_range(v: np.ndarray, s: Stats, bits: int, n_bins: int = 2048) -> Range:
    signed = s.lo < 0
    a = np.abs(v) if signed else np.clip(v, 0.0, None)
    a = a[a > 0]  # exact zeros (a Relu's many) cost nothing at any scale; they only hide the tail
    if a.size == 0:
        return Range(s.lo, s.hi)
    top = float(a.max())
    hist, edges = np.histogram(a, bins=n_bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    levels = 1 << (bits - 1) if signed else 1 << bits
    start = min(levels, n_bins)
    step = max(1, (n_bins - start) // 256)  # at most ~256 candidate thresholds
    best_i, best_kl = n_bins, np.inf
    for i in list(range(start, n_bins, step)) + [n_bins]:
        ref = hist[:i].copy()
        ref[-1] += hist[i:].sum()  # P: the clipped tail saturates into the last kept bin
        nz = (ref > 0).astype(np.float64)
        # Q: the kept bins (without the tail) merged into `levels` groups, each group's
        # count spread evenly over the bins where P is non-zero
        bounds = np.linspace(0, i, min(levels, i) + 1).astype(np.int64)
        starts = bounds[:-1][np.diff(bounds) > 0]
        sums = np.add.reduceat(hist[:i], starts)
        nzs = np.add.reduceat(nz, starts)
        per = np.divide(sums, nzs, out=np.zeros_like(sums), where=nzs > 0)
        cand = np.repeat(per, np.diff(np.append(starts, i))) * nz
        if ref.sum() == 0 or cand.sum() == 0:
            continue
        kl = _kl(_smooth(ref / ref.sum()), _smooth(cand / cand.sum()))
        if kl < best_kl - 1e-12:
            best_i, best_kl = i, kl
    t = float(edges[best_i])
    return Range(-t if signed else 0.0, t)


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Give every empty bin a little mass (taken from the others) so the divergence is finite."""
    zero = p == 0
    nz = int((~zero).sum())
    if nz == 0 or not zero.any():
        return p
    out = p.copy()
    out[zero] = eps
    out[~zero] -= eps * zero.sum() / nz
    return np.clip(out, eps * 1e-3, None)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def channel_means(g: Graph, x: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
    """The mean of every activation tensor per channel (its first per-sample axis) over
    ``x``: what bias correction needs to know of a layer's input."""
    x = np.asarray(x, dtype=np.float32)
    sums: dict[str, np.ndarray] = {}
    count = 0
    for start in range(0, len(x), batch):
        env = run_float(g, x[start:start + batch], keep=True)
        n = len(x[start:start + batch])
        count += n
        for name, v in env.items():
            if name in g.consts:
                continue
            v = np.asarray(v, dtype=np.float64)
            per = v.reshape(n, v.shape[1], -1).mean(axis=2).sum(axis=0) if v.ndim > 1 else np.array([v.sum()])
            sums[name] = sums.get(name, 0.0) + per
    return {name: s / count for name, s in sums.items()}
