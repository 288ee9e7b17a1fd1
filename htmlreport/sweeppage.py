"""``explore.html`` of a design-space sweep: accuracy against latency, LUTs, DSP blocks
(and energy, when the records have it) as scatter charts with the Pareto fronts, and a
table of every configuration, each point a link to its row."""

from __future__ import annotations

import re

from .page import count, figure, name, notice, obj, objs, page, section, summary_list, table
from .svg import Point, esc, fmt, num, scatter

# (record field, axis label, what it is in a sentence, chart name)
PLANES = (("latency_us", "latency (us)", "latency", "accuracy-latency"),
          ("luts", "LUTs", "LUTs", "accuracy-luts"),
          ("dsp", "DSP blocks", "DSP blocks", "accuracy-dsp"),
          ("energy_pj", "energy per inference (pJ)", "energy", "accuracy-energy"))
LOG_RATIO = 20  # an axis spanning this factor or more is logarithmic
SAFE_KEY = re.compile(r"[0-9A-Za-z_-]{1,64}")
COLUMNS = ("configuration", "status", "bits (W/A)", "per channel", "calibration", "folding", "accuracy",
           "latency (us)", "cycles", "II", "clock (MHz)", "multipliers", "DSP", "LUTs", "FFs", "BRAM", "Fmax (MHz)",
           "energy (nJ)", "part", "Pareto")
NUMERIC = set(range(6, 18))


def explore_page(records: list[dict], meta: dict) -> str:
    """The HTML page of a sweep: ``records`` one per configuration (``key``, ``options``,
    ``status``, ``error``, the figures and ``pareto``), ``meta`` the sweep's ``model``,
    ``configurations``, ``failed``, ``validation_samples`` and ``objectives``. Every value is
    read as untrusted: a missing or malformed figure is left out of the charts. Raises
    ValueError when ``records`` is not a list or ``meta`` not an object."""
    if not isinstance(records, list):
        raise ValueError("explore_page: the records must be a list of objects")
    if not isinstance(meta, dict):
        raise ValueError("explore_page: meta must be an object")
    recs = objs(records, len(records))
    ids = anchor_ids(recs)
    ok = [(r, i) for r, i in zip(recs, ids) if r.get("status") == "ok"]
    cards = [_plane(ok, field, label, what, chart_name) for field, label, what, chart_name in PLANES
             if field != "energy_pj" or any(num(r.get(field)) is not None for r, _ in ok)]
    families = sorted({family(r) for r, _ in ok})
    by_family = (f" Resources are compared only within a family (units differ): {len(families)} families here "
                 f"({esc(', '.join(families))}), each with its own front and its own step line."
                 if len(families) > 1 else "")
    parts = [f"<p>Each point is one configuration that compiled and was measured ({len(ok)} of {len(recs)}); the "
             "larger orange ones are on the Pareto front of all the sweep's objectives "
             f"({esc(name(meta.get('objectives'), 300))}). The step line joins the configurations that no "
             "other beats on the two figures of its chart alone (a higher accuracy for less)." + by_family +
             " Hover a point for its options and figures, click it for its row in the table.</p>",
             f'<div class="cards">{"".join(cards)}</div>']
    if not ok:
        parts = [notice("No configuration was measured (none compiled): there is nothing to plot; the table "
                        "lists every configuration with its error.")]
    rows = [_row(r) for r in recs]
    attrs = [(i, "failed" if r.get("status") != "ok" else "pareto" if r.get("pareto") is True else "")
             for r, i in zip(recs, ids)]
    details = [f"error: {name(r.get('error'), 2000)}" if r.get("error") is not None
               else f"built by: {name(r.get('command'), 600)}" if isinstance(r.get("command"), str) else ""
               for r in recs]
    model = name(meta.get("model"))
    pairs = [("model", model), ("configurations", fmt(count(meta.get("configurations")))),
             ("failed", fmt(count(meta.get("failed")))),
             ("validation samples", fmt(count(meta.get("validation_samples")))),
             ("objectives", name(meta.get("objectives"), 300)),
             ("on the Pareto front", fmt(sum(1 for r, _ in ok if r.get("pareto") is True)))]
    if len(recs) != len(records):
        pairs.append(("records not shown", f"{len(records) - len(recs)} (not objects)"))
    body = "".join([section("Sweep", "sweep", summary_list(pairs)),
                    section("Pareto fronts", "fronts", *parts),
                    section("Configurations", "configurations",
                            "<p>Every configuration of the sweep, with the compile command that builds it under "
                            "it (a failed one with its error instead).</p>",
                            table(list(COLUMNS), rows, NUMERIC, attrs, details))])
    charts = re.findall(r'<svg class="chart" data-chart="([^"]*)"', body)
    data = {"model": model, "charts": charts,
            "configurations": [{"id": i, "key": name(r.get("key"), 64), "status": name(r.get("status"), 20),
                                "pareto": r.get("pareto") is True} for r, i in zip(recs, ids)]}
    return page(f"nnforge explore: {model}", "A design-space sweep: every configuration compiled, measured and "
                "estimated, and the Pareto fronts.", body, data)


def anchor_ids(recs: list[dict]) -> list[str]:
    """The id of each record's table row: ``cfg-KEY`` for a key of letters, digits, ``-``
    and ``_``; ``cfg-row-N`` (N its place) for any other key or a repeated one."""
    out, seen = [], set()
    for i, r in enumerate(recs):
        key = r.get("key")
        rid = f"cfg-{key}" if isinstance(key, str) and SAFE_KEY.fullmatch(key) else f"cfg-row-{i}"
        if rid in seen:
            rid = f"cfg-row-{i}"
        seen.add(rid)
        out.append(rid)
    return out


def _options_label(o: dict) -> str:
    parts = [f"W{fmt(num(o.get('weight_bits')))}/A{fmt(num(o.get('act_bits')))}"]
    if o.get("per_channel") is True:
        parts.append("per channel")
    if isinstance(o.get("calibration_method"), str):
        parts.append(name(o["calibration_method"], 40))
    parts.append(_folding(o))
    return " ".join(p for p in parts if p)


def _folding(o: dict) -> str:
    if isinstance(o.get("fit"), str):
        return f"fit {name(o['fit'], 40)}"
    if num(o.get("target_fps")) is not None:
        return f"{fmt(num(o['target_fps']))} fps"
    return name(o["parallelism"], 40) if isinstance(o.get("parallelism"), str) else ""


def _plane(ok: list[tuple[dict, str]], field: str, label: str, what: str, chart_name: str) -> str:
    points = []
    for r, rid in ok:
        x, acc = num(r.get(field)), num(r.get("accuracy"))
        if x is None or acc is None:
            continue
        tip = (f"{name(r.get('key'), 64)}: {_options_label(obj(r.get('options')))}; accuracy {100 * acc:.2f}%, "
               f"{what} {fmt(x)}" + (" (on the Pareto front)" if r.get("pareto") is True else ""))
        group = family(r)
        points.append(Point(x, 100 * acc, f"#{rid}", tip + (f" [{group}]" if group else ""), rid,
                            r.get("pareto") is True, group))
    title = f"Accuracy against {what}"
    if not points:
        return figure(title, "", f"No measured configuration has both an accuracy and {what}: nothing to plot.")
    xs = [p.x for p in points]
    log_x = min(xs) > 0 and max(xs) >= LOG_RATIO * min(xs)
    svg = scatter(chart_name, title, points, label + (", log scale" if log_x else ""), "accuracy (%)", log_x)
    missing = len(ok) - len(points)
    cap = (f"Accuracy on the validation data against {what}, {len(points)} configuration(s)"
           + (f"; {what} on a logarithmic axis." if log_x else "."))
    if missing:
        cap += f" {missing} measured configuration(s) lack {what} and are not drawn."
    return figure(title, svg, cap)


def family(r: dict) -> str:
    """What a record's resources are counted in (its estimate's architecture, estimated or
    synthesized): the Pareto front compares records of one family only."""
    arch = name(r.get("arch"), 20) if isinstance(r.get("arch"), str) else ""
    how = name(r.get("resources_from"), 20) if isinstance(r.get("resources_from"), str) else ""
    return f"{arch}, {how}" if arch and how else arch or how


def _row(r: dict) -> list[str]:
    o = obj(r.get("options"))
    acc = num(r.get("accuracy"))
    energy = num(r.get("energy_pj"))

    def figure_(k: str) -> str:
        return fmt(num(r.get(k)))

    flag = {True: "yes", False: "no"}
    return [name(r.get("key"), 64), name(r.get("status"), 20),
            f"{fmt(num(o.get('weight_bits')))}/{fmt(num(o.get('act_bits')))}", flag.get(o.get("per_channel"), "-"),
            name(o.get("calibration_method"), 40) if o.get("calibration_method") is not None else "-",
            _folding(o) or "-", "-" if acc is None else f"{100 * acc:.2f}%", figure_("latency_us"), figure_("cycles"),
            figure_("ii_cycles"), figure_("clock_mhz"), figure_("multipliers"), figure_("dsp"), figure_("luts"),
            figure_("ffs"), figure_("bram"), figure_("fmax_mhz"), "-" if energy is None else f"{energy / 1000:,.3f}",
            name(r.get("part"), 60) if r.get("part") is not None else "-", "yes" if r.get("pareto") is True else ""]

