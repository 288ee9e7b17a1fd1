"""Static memory planning: every intermediate activation at an offset of one arena.

A value is live from the step that writes it through the last step that reads it (a
step's inputs and output are live together; a value nobody reads is live at its own
step only). Its bytes are rounded up to :data:`ALIGN` so that every buffer starts on a
word boundary (the kernels load four bytes at a time). The bound no placement can beat
is the live maximum: the largest sum of the (rounded) sizes live at one step
(:func:`live_maximum`). :func:`plan` places the values greedily (each at the lowest
offset free of every value whose lifetime overlaps it) in several orders and keeps the
smallest arena; :attr:`Arena.activations` equals :attr:`Arena.live_max` whenever a
placement reaches the bound, which it does for chains and for residual blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

ALIGN = 4  # bytes: every buffer starts on a word


class Value(NamedTuple):
    name: str
    bytes: int
    first: int  # the step that writes it
    last: int  # the last step that reads it (>= first)


@dataclass(frozen=True)
class Arena:
    offsets: dict  # value name -> byte offset
    live_max: int  # bytes: the largest sum of live values at one step (the bound)
    activations: int  # bytes the placement spans (>= live_max)
    scratch: int  # bytes of kernel scratch, after the activations

    @property
    def total(self) -> int:
        return self.activations + self.scratch


def aligned(n: int) -> int:
    return -(-int(n) // ALIGN) * ALIGN


def overlaps(a: Value, b: Value) -> bool:
    return a.first <= b.last and b.first <= a.last


def lifetimes(steps, outside=()) -> list[Value]:
    """The values of ``steps``, each ``(reads, writes, bytes)`` in step order: a value lives
    from the step that writes it through the last step that reads it. Names in ``outside``
    (the caller's input and output) are no values; a name written again holds a new value
    from then on (named ``name@step``)."""
    current: dict[str, str] = {}
    values: dict[str, Value] = {}
    for i, (reads, out, nbytes) in enumerate(steps):
        for r in reads:
            if r in current:
                values[current[r]] = values[current[r]]._replace(last=i)
        if out not in outside:
            key = out if out not in values else f"{out}@{i}"
            current[out] = key
            values[key] = Value(key, nbytes, i, i)
    return list(values.values())


def live_maximum(values: list[Value]) -> int:
    """The largest sum of the rounded sizes of the values live at one step."""
    if not values:
        return 0
    steps = range(min(v.first for v in values), max(v.last for v in values) + 1)
    return max(sum(aligned(v.bytes) for v in values if v.first <= s <= v.last) for s in steps)


def _place(order: list[Value]) -> dict[str, int]:
    """Each value at the lowest offset where it overlaps no placed value live at the same time."""
    placed: list[tuple[Value, int]] = []
    offsets = {}
    for v in order:
        size = aligned(v.bytes)
        busy = sorted((off, off + aligned(p.bytes)) for p, off in placed if overlaps(p, v))
        at = 0
        for lo, hi in busy:
            if at + size <= lo:
                break
            at = max(at, hi)
        offsets[v.name] = at
        placed.append((v, at))
    return offsets


ORDERS = (
    lambda v: (-aligned(v.bytes), v.first),  # largest first
    lambda v: (v.first, -aligned(v.bytes)),  # in step order
    lambda v: (-(v.last - v.first), -aligned(v.bytes)),  # longest-lived first
)


SEARCH_NODES = 20_000  # placements the search at the bound tries before it gives up


def _search(values: list[Value], bound: int) -> dict[str, int] | None:
    """Offsets with every value below ``bound``, by a depth-first search in step order over
    the offsets that touch a placed value or an end of the arena; None when none is found
    within :data:`SEARCH_NODES` tries (the greedy placements then stand)."""
    order = sorted(values, key=lambda v: (v.first, -aligned(v.bytes)))
    offsets: dict[str, int] = {}
    budget = [SEARCH_NODES]

    def place(i: int) -> bool:
        if i == len(order):
            return True
        v, size = order[i], aligned(order[i].bytes)
        busy = [(offsets[p.name], offsets[p.name] + aligned(p.bytes)) for p in order[:i] if overlaps(p, v)]
        for at in sorted({0, bound - size, *(hi for _, hi in busy), *(lo - size for lo, _ in busy)}):
            if at < 0 or at + size > bound or any(at < hi and lo < at + size for lo, hi in busy):
                continue
            budget[0] -= 1
            if budget[0] < 0:
                return False
            offsets[v.name] = at
            if place(i + 1):
                return True
            del offsets[v.name]
        return False

    return offsets if place(0) else None


def plan(values: list[Value], scratch: int = 0) -> Arena:
    """Offsets for ``values``: the best of the greedy :data:`ORDERS`, or when none reaches the
    live maximum, a search for a placement that does (:func:`_search`); ``scratch`` bytes
    follow."""
    bound = live_maximum(values)
    best, span = {}, 0
    for i, key in enumerate(ORDERS):
        offsets = _place(sorted(values, key=key))
        end = max((offsets[v.name] + aligned(v.bytes) for v in values), default=0)
        if i == 0 or end < span:
            best, span = offsets, end
        if span == bound:
            break
    if span > bound and len(values) <= 400:
        found = _search(values, bound)
        if found is not None:
            best, span = found, bound
    return Arena(offsets=best, live_max=bound, activations=span, scratch=aligned(scratch))
