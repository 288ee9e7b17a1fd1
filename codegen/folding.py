"""Folding of the engine graph's MAC engines: how many multipliers each Conv / Dense engine
gets, chosen from a goal.

A MAC engine computes ``PE`` output channels at once, each from ``SIMD`` input channels per
cycle (``PE * SIMD`` multipliers); a depthwise engine (one input channel per output channel)
instead gives each of its ``PE`` lanes its own input channel. With ``taps = (cg / SIMD) *
kh * kw`` cycles per block of ``PE`` outputs and one output element leaving per cycle, one
frame takes::

    compute = (m / PE) * oh * ow * max(taps, PE)            (taps = kh * kw when depthwise)

and a line engine's frame is ``max(load, compute) + 3`` (it loads while it computes), a
frame engine's ``load + compute + 3``. The whole design runs at the rate of its slowest
engine, so the multipliers of a faster engine are wasted: a goal is turned into one period
``T`` (cycles per inference) and every MAC engine gets the fewest multipliers whose frame
fits in ``T``.

Goals (``parallelism`` of :func:`~.verilog_cnn.write_cnn`):

* ``"sequential"``: one multiplier per engine;
* ``"parallel"``: every input channel of a group per cycle (``SIMD = cg``, ``PE = 1``);
* ``"balanced"`` (default): the shortest period the streams allow (no engine can beat
  loading or emitting its frame at one element per cycle), each engine folded to meet it;
  or, since lanes come in divisors of the channel counts, a period up to 25% longer when
  its multipliers are better used (the highest MACs / (multipliers x period));
* ``{"target_cycles": T}``: the given period (``--target-fps F`` at a clock: ``T = clock / F``);
* ``{"max_multipliers": N}``: the shortest period whose design needs at most ``N``
  multipliers in all.
"""

from __future__ import annotations

from dataclasses import dataclass

from .lower import BackendError

MODES = ("sequential", "balanced", "parallel")
BALANCED_SLACK = 1.25  # "balanced" may take a period this much longer than the shortest


@dataclass(frozen=True)
class Fold:
    pe: int = 1
    simd: int = 1
    depthwise: bool = False  # PE lanes over channels of a depthwise conv (simd == pe banks)

    @property
    def multipliers(self) -> int:
        return self.pe if self.depthwise else self.pe * self.simd


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def options(g: dict, line: bool) -> list[Fold]:
    """Every folding a MAC engine of geometry ``g`` implements (``line``: a line-buffer
    engine; a frame engine has PE = 1)."""
    if g["kind"] != "mac":
        return [Fold()]
    pes = _divisors(g["mg"]) if line else [1]
    opts = [Fold(p, s) for s in _divisors(g["cg"]) for p in pes]
    if line and g["cg"] == 1 and g["mg"] == 1 and g["c"] > 1:
        opts += [Fold(p, p, True) for p in _divisors(g["c"]) if p > 1]
    return opts


def compute_cycles(g: dict, f: Fold) -> int:
    taps = (1 if f.depthwise else g["cg"] // f.simd) * g["kh"] * g["kw"]
    return (g["m"] // f.pe) * g["oh"] * g["ow"] * max(taps, f.pe)


def _frame(g: dict, f: Fold, line: bool) -> int:
    c = compute_cycles(g, f)
    return (max(g["n_in"], c) if line else g["n_in"] + c) + 3


def _load(e: dict) -> int:
    return e.get("load_words", e["n_in"])


def _own_frame(e: dict) -> int:
    """An engine's frame when its inputs arrive at one element per cycle: a line engine or a
    streaming join loads while it computes, a frame engine loads, then computes."""
    own = e["timing"]["compute_cycles"]
    return (max(_load(e), own) if e.get("overlap") or e.get("streaming") else _load(e) + own) + 3


def cheapest(g: dict, line: bool, period: int) -> Fold | None:
    """The fewest multipliers (then the fewest PE lanes) whose frame fits in ``period``."""
    fits = [f for f in options(g, line) if _frame(g, f, line) <= period]
    return min(fits, key=lambda f: (f.multipliers, f.pe, f.depthwise)) if fits else None


def choose(engines: list[dict], goal) -> tuple[dict[str, Fold], dict]:
    """Folds for the MAC engines of a plan built sequentially (``engines``: the builders'
    dicts, with their geometry and ``timing``), and what was decided (mode, period)."""
    macs = [e for e in engines if e.get("kind") == "mac"]
    line = {e["name"]: bool(e.get("overlap")) for e in macs}
    fixed = [_own_frame(e) for e in engines if e.get("kind") != "mac"]
    # no engine beats loading its input (a join: each port, in parallel) or emitting its
    # output at one element per cycle
    floor = max([_load(e) + 3 for e in engines] + [e["n_out"] + 3 for e in engines] + fixed)
    if isinstance(goal, str):
        if goal == "sequential":
            return {e["name"]: Fold() for e in macs}, {"mode": goal}
        if goal == "parallel":
            return {e["name"]: Fold(1, e["cg"]) for e in macs}, {"mode": goal}
        if goal != "balanced":
            raise ValueError(f"unknown parallelism {goal!r}; choose from {', '.join(MODES)}")
        best = [min(_frame(e, f, line[e["name"]]) for f in options(e, line[e["name"]])) for e in macs]
        shortest = max([floor] + best)
        # the lanes come in divisors, so a slightly longer period can need far fewer
        # multipliers: take the best-used period up to BALANCED_SLACK longer than the shortest
        total = sum(e.get("macs", 0) for e in engines)
        other = sum(e.get("multipliers", 0) for e in engines if e.get("kind") != "mac")
        cands = sorted({_frame(e, f, line[e["name"]]) for e in macs for f in options(e, line[e["name"]])}
                       | {shortest})
        scored = []
        for period in (c for c in cands if shortest <= c <= shortest * BALANCED_SLACK):
            folds = _at(macs, line, period)
            used = other + sum(f.multipliers + f.pe * e.get("rq_multipliers", 0) for e, f in
                               ((e, folds[e["name"]]) for e in macs))
            real = max([floor] + [_frame(e, folds[e["name"]], line[e["name"]]) for e in macs])
            scored.append((-(total / (real * used)) if used else 0.0, real, period, folds))
        _, _, period, folds = min(scored, key=lambda t: t[:3])
        return folds, {"mode": "balanced", "period_cycles": period, "shortest_cycles": shortest}
    if not isinstance(goal, dict) or len(goal) != 1:
        raise ValueError(f"unknown parallelism {goal!r}")
    (kind, value), = goal.items()
    if kind == "target_cycles":
        period = int(value)
        folds = {}
        for e in macs:
            f = cheapest(e, line[e["name"]], period)
            if f is None:
                fastest = min(_frame(e, f, line[e["name"]]) for f in options(e, line[e["name"]]))
                raise BackendError(f"target of {period} cycles per inference is out of reach: layer {e['name']} "
                                   f"needs at least {fastest} cycles")
            folds[e["name"]] = f
        if floor > period:
            raise BackendError(f"target of {period} cycles per inference is out of reach: the streams need at "
                               f"least {floor} cycles (one element per cycle)")
        return folds, {"mode": "target", "period_cycles": period}
    if kind == "max_multipliers":
        budget = int(value)
        other = sum(e.get("multipliers", 0) for e in engines if e.get("kind") != "mac")
        cands = sorted({_frame(e, f, line[e["name"]]) for e in macs for f in options(e, line[e["name"]])} | {floor})
        for period in cands:
            if period < floor:
                continue
            folds = {}
            for e in macs:
                f = cheapest(e, line[e["name"]], period)
                if f is None:
                    break
                folds[e["name"]] = f
            else:
                used = other + sum(f.multipliers + f.pe * e.get("rq_multipliers", 0) for f, e in
                                   zip((folds[m["name"]] for m in macs), macs))
                if used <= budget:
                    return folds, {"mode": "budget", "period_cycles": period, "max_multipliers": budget}
        least = other + sum(1 + e.get("rq_multipliers", 0) for e in macs)
        raise BackendError(f"no folding fits {budget} multipliers: the design needs at least {least}")
    raise ValueError(f"unknown parallelism goal {kind!r}; use target_cycles or max_multipliers")


def _at(macs: list[dict], line: dict, period: int) -> dict[str, Fold]:
    out = {}
    for e in macs:
        f = cheapest(e, line[e["name"]], period)
        if f is None:  # cannot happen for the balanced period; keep the fastest
            f = min(options(e, line[e["name"]]), key=lambda f: _frame(e, f, line[e["name"]]))
        out[e["name"]] = f
    return out
