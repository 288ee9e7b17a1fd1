"""Charts as inline SVG text: scales with ticks, axes, a legend, and the chart kinds the
reports draw (bars, stacked bars, a histogram with markers, a scatter plot whose points are
links, a timeline). Every chart is one ``<svg class="chart" data-chart="NAME">`` element;
every text it shows goes through :func:`esc` (names come from models and report files)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = ("#3b6ea8", "#e0802c", "#3f9a5b", "#c4413f", "#8a62b5", "#8c6a4f", "#d06aa6", "#6f7a86",
           "#a8a23a", "#3aa5b5")  # series colours, reused in order
ROW = 22  # pixels per bar row
WIDE = 880  # width of a chart that has a figure to itself
CHAR = 6.6  # width of one character of 11px text, for layout
MAX_LABEL = 32  # characters of a category label drawn (the whole one is in its tooltip)
LIMIT = 1e300  # values beyond this magnitude are not drawn (no infinite spans)


def esc(v) -> str:
    """Text for HTML or SVG text and attribute values: ``& < > " '`` escaped."""
    return escape(str(v), quote=True)


def fmt(v) -> str:
    """A number as a short label: integers as they are (thousands separated), else three
    significant digits; ``-`` for a missing or non-finite value."""
    if v is None or not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    try:
        if not math.isfinite(v):
            return "-"
    except OverflowError:  # an integer beyond float's range
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}" if a < 1e15 else f"{v:.3g}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.3g}"


def short(label: str, limit: int = MAX_LABEL) -> str:
    return label if len(label) <= limit else label[:limit - 3] + "..."


def num(v) -> float | None:
    """A number (not a boolean) of magnitude at most 1e300 (so that any span of two is
    finite), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:  # an integer beyond float's range
        return None
    return f if math.isfinite(f) and abs(f) <= LIMIT else None


def finite(v) -> bool:
    return num(v) is not None


def extent(values, pad: float = 0.0) -> tuple[float, float]:
    """The range of the finite values (``pad``: a share of the span added at both ends);
    a single value or none gets a span around it, so no axis is degenerate."""
    vs = [float(v) for v in values if finite(v)]
    if not vs:
        return 0.0, 1.0
    lo, hi = min(vs), max(vs)
    if not hi - lo > 1e-300 * max(1.0, abs(lo), abs(hi)):  # one value, or two too close to tell apart
        d = abs(lo) * 0.1 if abs(lo) > 1e-290 else 1.0
        return lo - d, hi + d
    d = (hi - lo) * pad
    return lo - d, hi + d


def nice_step(span: float, n: int) -> float:
    raw = span / max(n, 1)
    if not (math.isfinite(raw) and raw > 1e-300):  # no span to divide (a tiny or degenerate one)
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag * (1 + 1e-9))


@dataclass
class Scale:
    """Maps the domain ``[lo, hi]`` onto pixels ``[a, b]``: ``linear``, ``log`` (base 10,
    positive domain) or ``log1p`` (``log10(1 + v)``: counts with their zeros)."""

    lo: float
    hi: float
    a: float
    b: float
    kind: str = "linear"

    @classmethod
    def nice(cls, lo: float, hi: float, a: float, b: float, n: int = 5) -> "Scale":
        """A linear scale whose domain is widened to whole tick steps."""
        step = nice_step(hi - lo, n)
        return cls(math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step, a, b)

    def _t(self, v: float) -> float:
        if self.kind == "log":
            return math.log10(max(v, 1e-300))
        if self.kind == "log1p":
            return math.log10(1.0 + max(v, 0.0))
        return v

    def __call__(self, v: float) -> float:
        t0, t1 = self._t(self.lo), self._t(self.hi)
        if t1 <= t0:
            return (self.a + self.b) / 2
        return self.a + (self._t(v) - t0) / (t1 - t0) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list[float]:
        if self.kind == "linear":
            step = nice_step(self.hi - self.lo, n)
            first = math.ceil(self.lo / step - 1e-9)
            return [k * step for k in range(first, math.floor(self.hi / step + 1e-9) + 1)]
        start = self.lo if self.kind == "log" else 1.0
        out = [0.0] if self.kind == "log1p" else []
        first, last = math.floor(math.log10(start)), math.ceil(math.log10(max(self.hi, start)))
        decades = [10.0 ** k for k in range(first, last + 1)]
        out += [d for d in decades if self.lo * (1 - 1e-9) <= d <= self.hi * (1 + 1e-9)]
        if self.kind == "log1p" and self.hi >= 100:
            out.remove(1.0)  # too close to 0 to be read
        if len(out) < 3:  # a narrow log domain: 2 and 5 within each decade too
            out = sorted(set(out) | {m * d for d in decades for m in (2, 5)
                                     if self.lo * (1 - 1e-9) <= m * d <= self.hi * (1 + 1e-9)})
        return out


@dataclass
class Frame:
    """A chart's size and the plot area inside its margins."""

    width: float
    height: float
    left: float
    top: float
    right: float = 16
    bottom: float = 42

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        return self.top

    @property
    def y1(self) -> float:
        return self.height - self.bottom


def chart(name: str, title: str, f: Frame, body: str) -> str:
    """The ``<svg class="chart">`` element holding ``body``; its title is its accessible name."""
    return (f'<svg class="chart" data-chart="{esc(name)}" '
            f'viewBox="0 0 {f.width:.0f} {f.height:.0f}" width="{f.width:.0f}" height="{f.height:.0f}" '
            f'role="img"><title>{esc(title)}</title>{body}</svg>')


def x_axis(s: Scale, f: Frame, label: str, grid: bool = True, n: int = 6) -> str:
    """Ticks, grid lines and the label of a horizontal axis at the bottom of the plot."""
    out = [f'<g class="axis"><line x1="{f.x0:.1f}" y1="{f.y1:.1f}" x2="{f.x1:.1f}" y2="{f.y1:.1f}"/>']
    for t in s.ticks(n):
        x = s(t)
        if grid:
            out.append(f'<line class="grid" x1="{x:.1f}" y1="{f.y0:.1f}" x2="{x:.1f}" y2="{f.y1:.1f}"/>')
        out.append(f'<line x1="{x:.1f}" y1="{f.y1:.1f}" x2="{x:.1f}" y2="{f.y1 + 4:.1f}"/>'
                   f'<text x="{x:.1f}" y="{f.y1 + 16:.1f}" text-anchor="middle">{esc(fmt(t))}</text>')
    out.append(f'<text class="label" x="{(f.x0 + f.x1) / 2:.1f}" y="{f.height - 6:.1f}" '
               f'text-anchor="middle">{esc(label)}</text></g>')
    return "".join(out)


def y_axis(s: Scale, f: Frame, label: str, grid: bool = True, n: int = 5) -> str:
    """Ticks, grid lines and the (rotated) label of a vertical axis at the plot's left."""
    out = [f'<g class="axis"><line x1="{f.x0:.1f}" y1="{f.y0:.1f}" x2="{f.x0:.1f}" y2="{f.y1:.1f}"/>']
    for t in s.ticks(n):
        y = s(t)
        if grid:
            out.append(f'<line class="grid" x1="{f.x0:.1f}" y1="{y:.1f}" x2="{f.x1:.1f}" y2="{y:.1f}"/>')
        out.append(f'<line x1="{f.x0 - 4:.1f}" y1="{y:.1f}" x2="{f.x0:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{f.x0 - 7:.1f}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt(t))}</text>')
    cy = (f.y0 + f.y1) / 2
    out.append(f'<text class="label" x="12" y="{cy:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {cy:.1f})">{esc(label)}</text></g>')
    return "".join(out)


def legend(items: list[tuple[str, str, str]], x: float, y: float, width: float) -> tuple[str, float]:
    """``(label, colour, kind)`` entries (kind ``box``, ``line``, ``dash`` or ``dot``) laid
    out in rows from ``(x, y)`` within ``width``; returns the SVG and the height used."""
    out, cx, cy = ['<g class="legend">'], x, y
    for label, colour, kind in items:
        text = short(label, 40)
        w = 22 + CHAR * len(text) + 14
        if cx > x and cx + w > x + width:
            cx, cy = x, cy + 18
        if kind == "box":
            out.append(f'<rect x="{cx:.1f}" y="{cy - 9:.1f}" width="12" height="12" fill="{colour}"/>')
        elif kind == "dot":
            out.append(f'<circle cx="{cx + 6:.1f}" cy="{cy - 3:.1f}" r="5" fill="{colour}" stroke="#222"/>')
        else:
            dash = ' stroke-dasharray="4 3"' if kind == "dash" else ""
            out.append(f'<line x1="{cx:.1f}" y1="{cy - 3:.1f}" x2="{cx + 14:.1f}" y2="{cy - 3:.1f}" '
                       f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{cx + 18:.1f}" y="{cy + 1:.1f}"><title>{esc(label)}</title>{esc(text)}</text>')
        cx += w
    out.append("</g>")
    return "".join(out), cy - y + 18


def _label_margin(labels: list[str]) -> float:
    return min(max(CHAR * max((len(short(lb)) for lb in labels), default=4) + 14, 60), 240)


def bar_chart(name: str, title: str, labels: list[str], values: list, xlabel: str,
              texts: list[str] | None = None, tips: list[str] | None = None, width: float = WIDE) -> str:
    """Horizontal bars, one row per label; a value that is None draws no bar, only its
    text (``texts``: the text at each bar's end, default the value)."""
    texts = texts or [fmt(v) for v in values]
    f = Frame(width, 20 + ROW * len(labels) + 44, _label_margin(labels), 12, right=70)
    lo, hi = extent([0.0, *values])
    s = Scale.nice(min(lo, 0.0), max(hi, 0.0), f.x0, f.x1)
    out = [x_axis(s, f, xlabel)]
    for i, (lb, v) in enumerate(zip(labels, values)):
        y = f.y0 + 4 + i * ROW
        tip = (tips[i] if tips else f"{lb}: {texts[i]}")
        out.append(f'<g class="row"><title>{esc(tip)}</title>'
                   f'<text x="{f.x0 - 6:.1f}" y="{y + 12:.1f}" text-anchor="end">{esc(short(lb))}</text>')
        end = s(0.0)
        if finite(v):
            a, b = sorted((s(0.0), s(v)))
            end = s(v)
            out.append(f'<rect x="{a:.1f}" y="{y:.1f}" width="{max(b - a, 1):.1f}" height="{ROW - 6}" '
                       f'fill="{PALETTE[0]}"/>')
        anchor = "end" if finite(v) and v < 0 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(f'<text class="value" x="{end + dx:.1f}" y="{y + 12:.1f}" text-anchor="{anchor}">'
                   f'{esc(texts[i])}</text></g>')
    return chart(name, title, f, "".join(out))


def stacked_bar_chart(name: str, title: str, labels: list[str], series: list[tuple[str, list]], xlabel: str,
                      percent: bool = False, totals: list[str] | None = None, width: float = WIDE) -> str:
    """Horizontal stacked bars: one row per label, one segment per series (``(name,
    values)``, a legend names them). ``percent``: each row as shares of its own total
    (``totals``: the text at the row's end)."""
    items = [(sn, PALETTE[k % len(PALETTE)], "box") for k, (sn, _) in enumerate(series)]
    left = _label_margin(labels)
    leg, leg_h = legend(items, left, 16, width - left - 16)
    f = Frame(width, leg_h + 16 + ROW * len(labels) + 44, left, leg_h + 12, right=96 if totals else 24)
    sums = [sum(float(v[i]) for _, v in series if finite(v[i]) and v[i] > 0) for i in range(len(labels))]
    s = Scale(0.0, 100.0, f.x0, f.x1) if percent else Scale.nice(0.0, max(sums + [0.0]) or 1.0, f.x0, f.x1)
    out = [leg, x_axis(s, f, xlabel)]
    for i, lb in enumerate(labels):
        y = f.y0 + 4 + i * ROW
        out.append(f'<g class="row"><text x="{f.x0 - 6:.1f}" y="{y + 12:.1f}" text-anchor="end">'
                   f'<title>{esc(lb)}</title>{esc(short(lb))}</text>')
        acc = 0.0
        for k, (sn, vals) in enumerate(series):
            v = vals[i]
            if not finite(v) or v <= 0:
                continue
            share = 100.0 * v / sums[i] if sums[i] else 0.0
            a, b = s(acc), s(acc + (share if percent else v))
            acc += share if percent else v
            out.append(f'<rect x="{a:.1f}" y="{y:.1f}" width="{max(b - a, 0.5):.1f}" height="{ROW - 6}" '
                       f'fill="{PALETTE[k % len(PALETTE)]}"><title>{esc(f"{lb}: {sn} {fmt(v)} ({share:.0f}%)")}'
                       f'</title></rect>')
        note = totals[i] if totals else fmt(sums[i])
        if not sums[i]:
            note = "none"
        out.append(f'<text class="value" x="{(f.x1 if percent else s(acc)) + 4:.1f}" y="{y + 12:.1f}">'
                   f'{esc(note)}</text></g>')
    return chart(name, title, f, "".join(out))


@dataclass
class Hist:
    """A histogram: ``counts`` in equal bins over ``edges`` (lo, hi); ``overlay`` a second
    series drawn as a step line over the same bins; ``interval`` the range marked."""

    edges: tuple[float, float]
    counts: list[int]
    overlay: list[int] | None
    interval: tuple[float, float] | None
    note: str = ""  # drawn at the top of the plot (the saturation)
    alarm: bool = False  # the note in the warning colour


def histogram(name: str, title: str, h: Hist, xlabel: str, series: tuple[str, str], log: bool = False,
              width: float = 460) -> str:
    """Bars for ``h.counts`` (legend ``series[0]``), a step line for ``h.overlay``
    (``series[1]``), the interval as dashed lines with the outside shaded; counts on a
    ``log(1 + n)`` axis when ``log``."""
    items = [(series[0], PALETTE[0], "box")]
    if h.overlay is not None:
        items.append((series[1], PALETTE[1], "line"))
    if h.interval is not None:
        items.append(("format's interval", PALETTE[3], "dash"))
    leg, leg_h = legend(items, 56, 16, width - 72)
    f = Frame(width, leg_h + 200, 56, leg_h + 26)
    a, b = h.edges
    marks = list(h.interval) if h.interval else []
    near = [v for v in marks if a - 2 * (b - a) <= v <= b + 2 * (b - a)]  # an interval end far out is not drawn
    lo, hi = extent([a, b, *near], pad=0.04)
    x = Scale(lo, hi, f.x0, f.x1)
    top = max([*h.counts, *(h.overlay or []), 1])
    y = Scale(0.0, top, f.y1, f.y0, "log1p") if log else Scale.nice(0.0, top, f.y1, f.y0, 4)
    out = [leg]
    if h.interval is not None:
        ilo, ihi = (min(max(x(v), f.x0), f.x1) for v in h.interval)
        out.append(f'<rect class="outside" x="{f.x0:.1f}" y="{f.y0:.1f}" width="{ilo - f.x0:.1f}" '
                   f'height="{f.y1 - f.y0:.1f}"/><rect class="outside" x="{ihi:.1f}" y="{f.y0:.1f}" '
                   f'width="{f.x1 - ihi:.1f}" height="{f.y1 - f.y0:.1f}"/>')
    out += [x_axis(x, f, xlabel, n=5), y_axis(y, f, "values" + (" (log scale)" if log else ""), n=4)]
    n = max(len(h.counts), 1)
    w = (b - a) / n
    for i, c in enumerate(h.counts):
        if c > 0:
            x0, x1 = x(a + i * w), x(a + (i + 1) * w)
            out.append(f'<rect class="bar" x="{x0:.1f}" y="{y(c):.1f}" width="{max(x1 - x0 - 0.6, 0.6):.1f}" '
                       f'height="{y(0) - y(c):.1f}" fill="{PALETTE[0]}"><title>{esc(fmt(a + i * w))} to '
                       f'{esc(fmt(a + (i + 1) * w))}: {c} values</title></rect>')
    if h.overlay is not None:
        d = [f"M{x(a):.1f},{y(0):.1f}"]
        for i, c in enumerate(h.overlay):
            d.append(f"V{y(c):.1f}H{x(a + (i + 1) * w):.1f}")
        d.append(f"V{y(0):.1f}")
        out.append(f'<path class="step" d="{"".join(d)}" stroke="{PALETTE[1]}"/>')
    if len(near) < len(marks):
        out.append(f'<text class="note" x="{f.x1 - 4:.1f}" y="{f.y0 + 12:.1f}" text-anchor="end">interval far '
                   f'beyond the axis</text>')
    for v in near:
        px = x(v)
        out.append(f'<line class="marker" x1="{px:.1f}" y1="{f.y0:.1f}" x2="{px:.1f}" y2="{f.y1:.1f}">'
                   f'<title>{esc(fmt(v))}</title></line>')
    if h.note:
        out.append(f'<text class="{"alarm" if h.alarm else "note"}" x="{f.x0 + 4:.1f}" y="{f.y0 - 6:.1f}">'
                   f'{esc(h.note)}</text>')
    return chart(name, title, f, "".join(out))


@dataclass
class Point:
    x: float
    y: float
    href: str  # a fragment (#id) of this page
    tip: str
    key: str  # what the page highlights together (the same configuration in every chart)
    marked: bool = False  # drawn larger, in the highlight colour
    group: str = ""  # points compared with each other (one 2-D front per group)


def front_2d(points: list[Point]) -> list[tuple[float, float]]:
    """The points no other beats in this plane (smaller x and larger y), by x."""
    out: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: (p.x, -p.y)):
        if not out or p.y > out[-1][1]:
            out.append((p.x, p.y))
    return out


def scatter(name: str, title: str, points: list[Point], xlabel: str, ylabel: str, log_x: bool = False,
            width: float = 560) -> str:
    """The points (each an ``<a>`` to its ``href`` with a tooltip), the marked ones
    highlighted, and the 2-D front (:func:`front_2d`) of each group of points as a step
    line of its own colour."""
    groups = sorted({p.group for p in points})
    colours = {g: PALETTE[3 + i % (len(PALETTE) - 3)] for i, g in enumerate(groups)}
    items = [("Pareto front (all objectives)", PALETTE[1], "dot"), ("other configurations", PALETTE[0], "box")]
    items += [(f"best in this plane ({g})" if g else "best in this plane", colours[g], "line") for g in groups]
    leg, leg_h = legend(items, 60, 16, width - 76)
    f = Frame(width, leg_h + 300, 60, leg_h + 20, right=24)
    xs, ys = [p.x for p in points], [p.y for p in points]
    if log_x:
        lo, hi = min(xs), max(xs)
        x = Scale(lo / 1.25, hi * 1.25, f.x0, f.x1, "log")
    else:
        x = Scale.nice(*extent(xs, pad=0.05), f.x0, f.x1)
    y = Scale.nice(*extent(ys, pad=0.05), f.y1, f.y0, 4)
    out = [leg, x_axis(x, f, xlabel), y_axis(y, f, ylabel)]
    for g in groups:
        front = front_2d([p for p in points if p.group == g])
        if front:
            d = [f"M{x(front[0][0]):.1f},{y(front[0][1]):.1f}"]
            for px, py in front[1:]:
                d.append(f"H{x(px):.1f}V{y(py):.1f}")
            d.append(f"H{f.x1:.1f}")
            out.append(f'<path class="front" d="{"".join(d)}" stroke="{colours[g]}"/>')
    for p in sorted(points, key=lambda p: p.marked):  # the marked ones on top
        r, colour = (6, PALETTE[1]) if p.marked else (4, PALETTE[0])
        out.append(f'<a href="{esc(p.href)}" class="pt" data-key="{esc(p.key)}"><circle cx="{x(p.x):.1f}" '
                   f'cy="{y(p.y):.1f}" r="{r}" fill="{colour}" class="{"marked" if p.marked else "other"}">'
                   f'<title>{esc(p.tip)}</title></circle></a>')
    return chart(name, title, f, "".join(out))


def timeline(name: str, title: str, rows: list[tuple[str, float, float, str]], marks: list[tuple[float, str]],
             xlabel: str, width: float = WIDE) -> str:
    """A Gantt chart: one row per ``(label, start, end, tooltip)`` with its busy bar, and
    vertical ``(x, label)`` marks across all rows."""
    left = _label_margin([r[0] for r in rows])
    f = Frame(width, 34 + ROW * len(rows) + 44, left, 30, right=24)
    hi = max([r[2] for r in rows if finite(r[2])] + [m[0] for m in marks if finite(m[0])] + [1.0])
    x = Scale.nice(0.0, hi, f.x0, f.x1, 6)
    out = [x_axis(x, f, xlabel)]
    for i, (lb, start, end, tip) in enumerate(rows):
        y = f.y0 + 4 + i * ROW
        out.append(f'<g class="row"><title>{esc(tip)}</title><text x="{f.x0 - 6:.1f}" y="{y + 12:.1f}" '
                   f'text-anchor="end">{esc(short(lb))}</text>')
        if finite(start) and finite(end) and end >= start:
            out.append(f'<rect x="{x(start):.1f}" y="{y:.1f}" width="{max(x(end) - x(start), 1):.1f}" '
                       f'height="{ROW - 6}" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append("</g>")
    for k, (v, lb) in enumerate(marks):
        if finite(v):
            px = x(v)
            out.append(f'<line class="marker" x1="{px:.1f}" y1="{f.y0 - 4:.1f}" x2="{px:.1f}" y2="{f.y1:.1f}"/>'
                       f'<text class="mark" x="{px:.1f}" y="{f.y0 - 8 - 12 * (k % 2):.1f}" text-anchor="middle">'
                       f'{esc(lb)}</text>')
    return chart(name, title, f, "".join(out))
