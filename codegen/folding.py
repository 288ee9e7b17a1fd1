"""Folding of the engine graph's MAC engines: how many multipliers each Conv / Dense engine
gets, chosen from a goal.

A MAC engine computes ``PE`` output channels at once, each from ``SIMD`` input channels per
cycle (``PE * SIMD`` multipliers); a depthwise engine (one input channel per output channel)
instead gives each of its ``PE`` lanes its own input channel. With ``taps = (cg / SIMD) *
kh * kw`` cycles per block of ``PE`` outputs and one output element leaving per cycle, one
frame takes::

    compute = (m / PE) * oh * ow * max(taps, PE)            (taps = kh * kw when depthwise)

Lanes by channel come in divisors of the channel counts. A *row* fold (``flat``: a Conv with
one group and no column dilation, or a Dense) has any ``PE`` and ``SIMD`` instead: its
``SIMD`` lanes read consecutive elements of a kernel row (its ``kw * cg`` inputs, column by
column, channels-last), ``ceil(kw * cg / SIMD)`` steps per kernel row, and its output
channels come in ``ceil(m / PE)`` blocks (the last one shorter)::

    taps = kh * ceil(kw * cg / SIMD)
    compute = oh * ow * ((blocks - 1) * max(taps, PE) + max(taps, m - (blocks - 1) * PE))

and its frame ``max(load, compute) + 3`` (its line buffer loads while it computes). The
whole design runs at the rate of its slowest engine, so the multipliers of a faster engine
are wasted: a goal is turned into one period ``T`` (cycles per inference) and every MAC
engine gets the fewest multipliers whose frame fits in ``T``.

Goals (``parallelism`` of :func:`~.verilog_cnn.write_cnn`):

* ``"sequential"``: one multiplier per engine;
* ``"parallel"``: every input channel of a group per cycle (``SIMD = cg``, ``PE = 1``);
* ``"balanced"`` (default): the shortest period the streams allow (no engine can beat
  loading or emitting its frame at one element per cycle), each engine folded to meet it;
  or, since lanes come in divisors of the channel counts, a period up to 25% longer when
  its multipliers are better used (the highest MACs / (multipliers x period));
* ``{"target_cycles": T}``: the given period (``--target-fps F`` at a clock: ``T = clock / F``);
* a budget, ``{"max_multipliers": N, "max_luts": L, "max_ffs": F, "max_bram": B}`` (any of
  them): the shortest period whose design needs at most ``N`` multiplier blocks in all
  (products built from LUTs cost none) and whose resource estimate (:mod:`.estimate`)
  stays within ``L`` LUT4s, ``F`` flip-flops and ``B`` block RAMs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .lower import BackendError

MODES = ("sequential", "balanced", "parallel")
# a multiplier budget may move the products of an engine of at most this many lanes into
# LUTs (a slow layer's one or two products: a few hundred LUT4s for a multiplier block)
LUT_LANES = 2
BALANCED_SLACK = 1.25  # "balanced" may take a period this much longer than the shortest


@dataclass(frozen=True)
class Fold:
    pe: int = 1
    simd: int = 1
    depthwise: bool = False  # PE lanes over channels of a depthwise conv (simd == pe banks)
    flat: bool = False  # SIMD lanes over a kernel row's elements, any PE and SIMD (a row fold)
    lut: bool = False  # products built from LUTs whatever their width (no multiplier block)

    @property
    def multipliers(self) -> int:
        return self.pe if self.depthwise else self.pe * self.simd


@dataclass(frozen=True)
class Geometry:
    """A window engine's geometry: input (c, h, w), output (m, oh, ow), kernel, strides,
    dilations, pads and channels per group (cg in, mg out)."""

    c: int = 1
    h: int = 1
    w: int = 1
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    dh: int = 1
    dw: int = 1
    pt: int = 0
    pl: int = 0
    pb: int = 0
    pr: int = 0
    oh: int = 1
    ow: int = 1
    m: int = 1
    cg: int = 1
    mg: int = 1

    @property
    def n_in(self) -> int:
        return self.c * self.h * self.w

    @property
    def n_out(self) -> int:
        return self.m * self.oh * self.ow


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def row_foldable(g: Geometry) -> bool:
    """Whether a MAC engine of geometry ``g`` takes row folds: one group (its kernel row's
    inputs are consecutive in a channels-last row) and no column dilation."""
    return g.cg == g.c and g.mg == g.m and (g.dw == 1 or g.kw == 1)


def row_len(g: Geometry) -> int:
    """Inputs of one kernel row (a row fold's SIMD lanes step through them)."""
    return g.kw * g.cg


def fewest(n: int) -> list[int]:
    """The fewest lanes for each number of steps over ``n`` items (ceil(n / s), s = 1..n)."""
    return sorted({-(-n // s) for s in range(1, n + 1)})


def valid(g: Geometry, f: Fold) -> bool:
    """Whether a MAC engine of geometry ``g`` implements fold ``f``."""
    if f.pe < 1 or f.simd < 1:
        return False
    if f.flat:
        return row_foldable(g) and not f.depthwise and f.pe <= g.m and f.simd <= row_len(g)
    if f.depthwise:
        return g.cg == 1 and g.mg == 1 and g.c > 1 and f.pe == f.simd and f.pe > 1 and g.c % f.pe == 0
    return g.cg % f.simd == 0 and g.mg % f.pe == 0


def options(g: Geometry) -> list[Fold]:
    """The foldings a MAC engine of geometry ``g`` implements: lanes by channel (divisors),
    and, when :func:`row_foldable`, the row folds whose lanes are the fewest for their
    number of steps (any other row fold is as slow with more multipliers)."""
    opts = [Fold(p, s) for s in _divisors(g.cg) for p in _divisors(g.mg)]
    if g.cg == 1 and g.mg == 1 and g.c > 1:
        opts += [Fold(p, p, True) for p in _divisors(g.c) if p > 1]
    if row_foldable(g):
        opts += [Fold(p, s, flat=True) for s in fewest(row_len(g)) for p in fewest(g.m)]
    return opts


def taps(g: Geometry, f: Fold) -> int:
    """Cycles one block of output channels takes at one step per cycle."""
    if f.flat:
        return g.kh * -(-row_len(g) // f.simd)
    return (1 if f.depthwise else g.cg // f.simd) * g.kh * g.kw


def compute_cycles(g: Geometry, f: Fold) -> int:
    t = taps(g, f)
    if f.flat:
        blocks = -(-g.m // f.pe)
        last = g.m - (blocks - 1) * f.pe
        return g.oh * g.ow * ((blocks - 1) * max(t, f.pe) + max(t, last))
    return (g.m // f.pe) * g.oh * g.ow * max(t, f.pe)


def _frame(g: Geometry, f: Fold) -> int:
    """A MAC engine's frame: its line buffer loads while it computes."""
    return max(g.n_in, compute_cycles(g, f)) + 3


def _own_frame(e) -> int:
    """An engine's frame when its inputs arrive at one element per cycle: a window engine or
    a streaming join loads while it computes, an engine with a frame memory loads, then
    computes."""
    own = e.timing().compute_cycles
    return (max(e.load_words, own) if e.overlap or e.streaming else e.load_words + own) + 3


# ----------------------------------------------------------------------------- goals
# One search for both Verilog writers: each unit (an engine here, a dense layer in
# codegen/verilog.py) offers its foldings as Options; a period picks, per unit, the
# preferred option whose frame fits it.

@dataclass(frozen=True)
class Option:
    frame: int    # cycles per inference of the unit with this folding
    key: tuple    # preference among the options that fit a period (fewest multipliers first)
    cost: int     # multiplier blocks it needs, its requantization's included
    fold: object
    lanes: int = 0  # products computed at once (blocks and LUT multipliers alike)
    alt: Option | None = None  # the same folding with its products in LUTs (a budget's fallback)


def pick(unit: list[Option], period: int) -> Option | None:
    fits = [o for o in unit if o.frame <= period]
    return min(fits, key=lambda o: o.key) if fits else None


def meet(units: dict[str, list[Option]], period: int) -> dict[str, Option] | None:
    """Every unit's pick at ``period``, or None when some unit cannot keep up."""
    picks = {name: pick(unit, period) for name, unit in units.items()}
    return None if any(o is None for o in picks.values()) else picks


def within(picks: dict[str, Option], blocks: float) -> dict[str, Option] | None:
    """``picks`` needing at most ``blocks`` multiplier blocks: as they are, or with the
    products of the units of fewest lanes moved into LUTs (their ``alt``) until they fit;
    None when that is not enough."""
    used = sum(o.cost for o in picks.values())
    if used <= blocks:
        return picks
    picks = dict(picks)
    for name in sorted((n for n, o in picks.items() if o.alt is not None), key=lambda n: (picks[n].lanes, n)):
        used -= picks[name].cost - picks[name].alt.cost
        picks[name] = picks[name].alt
        if used <= blocks:
            return picks
    return None


# a budget goal's keys and the resource estimate (codegen/estimate.py totals) each limits
# the architectures a resource estimate is made for (codegen/estimate.py: an ECP5, or an AMD
# 7 series / UltraScale+ part), and the units of the figures that differ
ARCHS = ("ecp5", "amd")
ARCH_UNITS = {"ecp5": {"luts": "LUT4s", "bram": "block RAMs"}, "amd": {"luts": "LUT6s", "bram": "BRAM36 tiles"}}
BUDGETS = {"max_multipliers": "dsp", "max_luts": "luts", "max_ffs": "ffs", "max_bram": "bram"}
BUDGET_WORDS = {"max_multipliers": "multipliers", "max_luts": "LUT4s", "max_ffs": "flip-flops",
                "max_bram": "block RAMs"}


def meet_goal(units: dict[str, list[Option]], goal: dict, floor: int, other: int = 0,
              what: str = "layer", estimate=None) -> tuple[dict[str, Option], dict]:
    """The picks for ``{"target_cycles": T}`` (T itself) or a budget (the shortest period
    whose design fits it), given that no design beats ``floor`` cycles; and what was
    decided.

    A budget has any of ``max_multipliers`` (multiplier blocks: the picks' and the
    ``other`` ones; LUT multipliers cost none), ``max_luts``, ``max_ffs`` and ``max_bram``
    (DP16KD blocks). Those three are checked on ``estimate(picks)``, the resource estimate
    of the design the picks give (:mod:`.estimate` totals): the shortest period is searched
    over the periods that meet the multiplier budget (galloping up from the shortest, then
    bisection: a longer period needs about as much or less), trying at each the picks with
    any folding, then with lanes by channel only, and the result is always one whose
    estimate fits."""
    if not isinstance(goal, dict) or not goal:
        raise ValueError(f"unknown parallelism {goal!r}")
    if "target_cycles" in goal:
        if set(goal) - {"target_cycles", "arch"}:
            raise ValueError("give a target period or a resource budget, not both")
        period = int(goal["target_cycles"])
        for name, unit in units.items():
            if pick(unit, period) is None:
                raise BackendError(f"target of {period} cycles per inference is out of reach: {what} {name} "
                                   f"needs at least {min(o.frame for o in unit)} cycles")
        if floor > period:
            raise BackendError(f"target of {period} cycles per inference is out of reach: the streams need at "
                               f"least {floor} cycles (one element per cycle)")
        arch = goal.get("arch", "ecp5")
        return meet(units, period), {"mode": "target", "period_cycles": period,
                                     **({"arch": arch} if arch != "ecp5" else {})}
    unknown = set(goal) - set(BUDGETS) - {"arch"}
    if unknown:
        raise ValueError(f"unknown parallelism goal {sorted(unknown)[0]!r}; use target_cycles or "
                         + ", ".join(BUDGETS))
    arch = goal.get("arch", "ecp5")
    if arch not in ARCHS:
        raise ValueError(f"unknown estimate architecture {arch!r}; choose from {', '.join(ARCHS)}")
    limits = {k: int(v) for k, v in goal.items() if k != "arch"}
    if not limits:
        raise ValueError("a budget needs at least one of " + ", ".join(BUDGETS))
    # per period, the picks meeting the multiplier budget: with any folding, and with lanes
    # by channel only (a row fold's banks can take more block RAM), shortest period first
    by_channel = {name: [o for o in unit if not getattr(o.fold, "flat", False)] or unit for name, unit in units.items()}
    candidates = []
    for period in sorted({o.frame for unit in units.values() for o in unit} | {floor}):
        variants = []
        for us in (units, by_channel):
            picks = meet(us, period) if period >= floor else None
            if picks is not None:
                picks = within(picks, limits.get("max_multipliers", float("inf")) - other)
            if picks is not None and picks not in variants:
                variants.append(picks)
        if variants:
            candidates.append((period, variants))
    if not candidates:
        least = other + sum(min(o.cost for o in unit) for unit in units.values())
        raise BackendError(f"no folding fits {limits['max_multipliers']} multipliers: the design needs at least {least}")
    decision = {"mode": "budget", "period_cycles": candidates[0][0], **limits}
    if arch != "ecp5":
        decision["arch"] = arch
    checked = [k for k in limits if k != "max_multipliers"]
    if not checked:
        return candidates[0][1][0], decision
    if estimate is None:
        raise ValueError(f"a {', '.join(checked)} budget needs the design's resource estimate")
    cache: dict[int, dict] = {}
    chosen: dict[int, dict] = {}

    def fits(i: int) -> bool:
        if i not in cache:
            for picks in candidates[i][1]:  # the first variant whose estimate fits
                cache[i], chosen[i] = estimate(picks), picks
                if all(cache[i][BUDGETS[k]] <= limits[k] for k in checked):
                    break
        return all(cache[i][BUDGETS[k]] <= limits[k] for k in checked)

    # the first candidate that fits: galloping up from the shortest period, then bisection
    # (the block RAMs need not fall with the period everywhere: rounding to block shapes)
    last, i, step = -1, 0, 1
    while not fits(i):
        if i == len(candidates) - 1:
            est = cache[i]
            words = {**BUDGET_WORDS, **{f"max_{k}": v for k, v in ARCH_UNITS[arch].items()}}
            over = [f"{est[BUDGETS[k]]} {words[k]} (budget {limits[k]})" for k in checked
                    if est[BUDGETS[k]] > limits[k]]
            raise BackendError("no folding fits the budget: the slowest design needs about " + ", ".join(over))
        last, i, step = i, min(len(candidates) - 1, i + step), 2 * step
    lo, hi = last + 1, i
    while lo < hi:  # fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    decision["period_cycles"] = candidates[lo][0]
    decision["estimate"] = {BUDGETS[k]: cache[lo][BUDGETS[k]] for k in limits}
    return chosen[lo], decision


def option_list(g: Geometry, lut: bool = False, rq: int = 0) -> list[Option]:
    """The options of a MAC engine (``lut``: its products are in LUTs, no multiplier block;
    ``rq``: multipliers per PE lane of its requantization)."""
    best: dict[int, Option] = {}  # per frame, the preferred option (the others never win)
    for f in options(g):
        o = Option(_frame(g, f), (f.multipliers, f.flat, f.pe, f.depthwise),
                   (0 if lut else f.multipliers) + f.pe * rq, f, f.multipliers + f.pe * rq)
        if o.frame not in best or o.key < best[o.frame].key:
            best[o.frame] = o
    if lut:
        return list(best.values())
    return [replace(o, alt=replace(o, cost=o.fold.pe * rq, fold=replace(o.fold, lut=True)))
            if o.fold.multipliers <= LUT_LANES else o for o in best.values()]


def choose(engines: list, goal, estimate=None) -> tuple[dict[str, Fold], dict]:
    """Folds for the MAC engines of a plan built sequentially (``engines``: the builders'
    :class:`~.engines.Engine` values, with their geometry and ``timing()``), and what was
    decided (mode, period). ``estimate(folds)``: the resource estimate of the design with
    those folds (for LUT / flip-flop / block RAM budgets)."""
    macs = [e for e in engines if e.kind == "mac"]
    units = {e.name: option_list(e.geometry, bool(e.lut_mul), e.rq_multipliers) for e in macs}
    fixed = [_own_frame(e) for e in engines if e.kind != "mac"]
    # no engine beats loading its input (a join: each port, in parallel) or emitting its
    # output at one element per cycle
    floor = max([e.load_words + 3 for e in engines] + [e.n_out + 3 for e in engines] + fixed)
    other = sum(e.multipliers for e in engines if e.kind != "mac")
    other_lanes = other + sum(e.lut_multipliers for e in engines if e.kind != "mac")

    def folds(picks: dict[str, Option]) -> dict[str, Fold]:
        return {name: o.fold for name, o in picks.items()}

    if isinstance(goal, dict):
        picks, decision = meet_goal(units, goal, floor, other,
                                    estimate=(lambda p: estimate(folds(p))) if estimate else None)
        return folds(picks), decision
    if goal == "sequential":
        return {e.name: Fold() for e in macs}, {"mode": goal}
    if goal == "parallel":
        return {e.name: Fold(1, e.geometry.cg) for e in macs}, {"mode": goal}
    if goal != "balanced":
        raise ValueError(f"unknown parallelism {goal!r}; choose from {', '.join(MODES)}")
    picks, decision = balanced(units, floor, sum(e.macs for e in engines), other_lanes)
    return folds(picks), decision


def balanced(units: dict[str, list[Option]], floor: int, macs: int, other_lanes: int = 0) -> tuple[dict[str, Option], dict]:
    """The ``balanced`` picks: the shortest period the units and the streams allow
    (``floor``), or, since a slightly longer period can need far fewer lanes, the best-used
    period (the most ``macs`` / (lanes x period)) up to ``BALANCED_SLACK`` longer; and what
    was decided."""
    shortest = max([floor] + [min(o.frame for o in unit) for unit in units.values()])
    scored = []
    for period in sorted({o.frame for unit in units.values() for o in unit} | {shortest}):
        if shortest <= period <= shortest * BALANCED_SLACK:
            picks = meet(units, period)  # every unit fits from the shortest period on
            used = other_lanes + sum(o.lanes for o in picks.values())
            real = max([floor] + [o.frame for o in picks.values()])
            scored.append((-(macs / (real * used)) if used else 0.0, real, period, picks))
    _, _, period, chosen = min(scored, key=lambda t: t[:3])
    return chosen, {"mode": "balanced", "period_cycles": period, "shortest_cycles": shortest}
