"""``report.html`` of a compiled output folder: precision, value ranges and saturation,
the Verilog engines' cycles, resources and timeline, and the energy estimate, drawn from
``report.json`` (every field read as untrusted: a missing or malformed one leaves its chart
out with a note, never an error)."""

from __future__ import annotations

import math
import re

from .page import count, figure, name, notice, obj, objs, page, section, summary_list, table
from .svg import Hist, bar_chart, esc, fmt, histogram, num, stacked_bar_chart, timeline

MAX_BINS = 1000  # bins of a profile histogram drawn at most
MAX_TENSORS = 400  # profile entries drawn at most
RESOURCES = (("dsp", "DSP blocks"), ("luts", "LUTs"), ("ffs", "flip-flops"), ("bram", "block RAMs"))
ENERGY_TOTALS = (("total_pj", "total: every MAC executed"), ("compute_pj", "arithmetic"),
                 ("memory_pj", "memory accesses"), ("sparse_pj", "only MACs with a nonzero weight"),
                 ("float32_pj", "the same network in float32"),
                 ("dram_weights_pj", "extra if every weight came from DRAM"))


def report_page(info: dict, profile: dict | None = None, precision: dict | None = None,
                data: str | None = None) -> str:
    """The HTML page of a compiled design's ``report.json`` (``info``). ``profile`` and
    ``precision`` replace report.json's (computed on the samples of the data file named
    ``data``). Raises ValueError when ``info`` is not an object."""
    if not isinstance(info, dict):
        raise ValueError("report.json does not hold a JSON object")
    model = name(info.get("model"))
    prof = obj(profile if profile is not None else info.get("profile"))
    prec = obj(precision if precision is not None else info.get("precision"))
    where = f"the data file {name(data)}" if data else "the calibration data"
    body = "".join([_overview(info, where), _precision(prec, objs(info.get("layers")), where), _ranges(prof, where),
                    _hardware(obj(info.get("verilog"))), _energy(info.get("energy"))])
    charts = re.findall(r'<svg class="chart" data-chart="([^"]*)"', body)
    nav = ('<p><a href="#precision">Precision</a> &middot; <a href="#ranges">Value ranges</a> &middot; '
           '<a href="#hardware">Verilog engines</a> &middot; <a href="#energy">Energy</a></p>')
    return page(f"nnforge report: {model}", "A compiled design: precision against the float model, value ranges, "
                "hardware and energy.", nav + body, {"model": model, "charts": charts})


def _overview(info: dict, where: str) -> str:
    q = obj(info.get("quantization"))
    i, o = obj(info.get("input")), obj(info.get("output"))

    def shape(v) -> str:
        dims = v.get("shape")
        return "x".join(fmt(d) for d in dims[:8]) if isinstance(dims, list) else "?"

    quant = ", ".join(p for p in (
        f"{fmt(q['weight_bits'])}-bit weights" if num(q.get("weight_bits")) is not None else "",
        f"{fmt(q['act_bits'])}-bit activations" if num(q.get("act_bits")) is not None else "",
        "per channel" if q.get("per_channel") is True else "",
        f"calibration {name(q['calibration'], 40)}" if isinstance(q.get("calibration"), str) else "") if p)
    targets = info.get("targets")
    pairs = [("model", name(info.get("model"))), ("source", name(info.get("source")) if info.get("source") else "-"),
             ("targets", ", ".join(name(t, 20) for t in targets[:10]) if isinstance(targets, list) else "-"),
             ("input", f"{shape(i)} {name(i.get('type'), 60)}"), ("output", f"{shape(o)} {name(o.get('type'), 60)}"),
             ("MACs per inference", fmt(num(info.get("macs")))), ("quantization", quant or "-"),
             ("SQNR and histograms on", where)]
    return section("Design", "design", summary_list(pairs))


def _sqnr(v) -> tuple[float | None, str]:
    if isinstance(v, float) and math.isinf(v):
        return None, "exact (no error)" if v > 0 else "no signal"
    n = num(v)
    return n, "-" if n is None else f"{n:.1f} dB"


def _precision(prec: dict, layers: list[dict], where: str) -> str:
    rows = objs(prec.get("layers"))
    parts = []
    if rows:
        labels = [f"{name(r.get('name'))} ({name(r.get('op'), 30)})" for r in rows]
        values, texts = zip(*(_sqnr(r.get("sqnr_db")) for r in rows))
        cap = (f"The SQNR of each layer's output (the golden integers scaled back) against the float model, on "
               f"{fmt(count(prec.get('samples')))} samples of {where}: higher is better, and 6 dB is about one bit.")
        out = _sqnr(prec.get("output_sqnr_db"))[1]
        cap += f" Model output: {out}."
        if isinstance(prec.get("worst_layer"), str):
            cap += (f" The largest loss: {name(prec['worst_layer'])} ({fmt(num(prec.get('worst_drop_db')))} dB "
                    f"below its input).")
        parts.append(figure("SQNR per layer", bar_chart("sqnr", "SQNR per layer", labels, list(values),
                                                        "SQNR (dB)", list(texts)), cap))
    else:
        parts.append(notice("No precision report: report.json holds none (a design compiled without calibration "
                            "data). Give --data DATA.npz to compute one."))
    acc = [(name(r.get("name")), count(r.get("acc_width"))) for r in layers if count(r.get("acc_width"))]
    if acc:
        labels = [lb for lb, _ in acc]
        parts.append(figure("Accumulator width per layer", bar_chart(
            "acc-width", "Accumulator width per layer", labels, [w for _, w in acc], "accumulator width (bits)",
            [f"{w} bits" for _, w in acc]),
            "The accumulator width of each layer with weights, derived from its quantized weights and its input's "
            "range so that no sum, in any order, can overflow."))
    else:
        parts.append(notice("No layer has an integer accumulator (a float-format design, or none with weights)."))
    return section("Precision", "precision", *parts)


def _hist(t: dict) -> Hist | None:
    """A profile entry as a histogram, or None when it is malformed."""
    edges, interval = t.get("edges"), t.get("interval")
    if not (isinstance(edges, list) and len(edges) == 2 and all(num(e) is not None for e in edges)
            and edges[0] < edges[1]):
        return None

    def counts(v):
        ok = isinstance(v, list) and 0 < len(v) <= MAX_BINS and all(count(c) is not None for c in v)
        return v if ok else None

    ints, floats = counts(t.get("int")), counts(t.get("float"))
    if ints is None or (floats is not None and len(floats) != len(ints)):
        return None
    if not (isinstance(interval, list) and len(interval) == 2 and all(num(e) is not None for e in interval)):
        interval = None
    below, above, values = count(t.get("below")), count(t.get("above")), count(t.get("values"))
    if floats is None or below is None or above is None:
        note, alarm = "no float values to compare", False
    elif below + above:
        share = f" ({100 * (below + above) / values:.2g}% of {fmt(values)})" if values else ""
        note, alarm = f"saturated: {fmt(below)} below, {fmt(above)} above{share}", True
    else:
        note, alarm = "no value saturates", False
    return Hist((float(edges[0]), float(edges[1])), floats if floats is not None else ints,
                ints if floats is not None else None, tuple(interval) if interval else None, note, alarm)


def _ranges(prof: dict, where: str) -> str:
    entries = [(t, h) for t in objs(prof.get("tensors"), MAX_TENSORS) if (h := _hist(t)) is not None]
    if not entries:
        return section("Value ranges and saturation", "ranges", notice(
            "No value profile: report.json holds none (a design compiled without calibration data, or by an "
            "earlier nnforge) and no --data was given. Give --data DATA.npz to draw the histograms."))
    samples = fmt(count(prof.get("samples")))
    intro = (f"<p>Histograms of the values on {samples} samples of {where}: bars for the float model, the line for "
             "the golden integer model scaled back. The dashed lines mark the interval the tensor's format "
             "represents; values beyond it saturate (the shaded sides), and their count is printed above the "
             "plot.</p>")
    cards = {"weights": [], "values": []}
    for i, (t, h) in enumerate(entries):
        kind = t.get("kind")
        layer, op, fmt_name = name(t.get("layer")), name(t.get("op"), 30), name(t.get("format"), 60)
        widest = " (the widest channel's: one scale per channel)" if t.get("per_channel") is True else ""
        iv = f"[{fmt(h.interval[0])}, {fmt(h.interval[1])}]" if h.interval else "unknown"
        if kind == "weights":
            title, group, log = f"{layer} ({op}): weights", "weights", False
        else:
            title = "model input" if kind == "input" else f"{layer} ({op}): output"
            group, log = "values", True
        cap = (f"Tensor {name(t.get('tensor'))}, format {fmt_name}: it represents {iv}{widest}; "
               f"{fmt(count(t.get('values')))} values" + (", counts on a log scale." if log else "."))
        svg = histogram(f"{group}-{i}", title, h, "value", ("float model", "golden model, scaled back"), log=log)
        cards[group].append(figure(title, svg, cap))
    parts = [intro]
    for group, head in (("weights", "Weights"), ("values", "Activations (the model input and every node's output)")):
        if cards[group]:
            parts.append(f'<h3>{head}</h3><div class="cards">{"".join(cards[group])}</div>')
    return section("Value ranges and saturation", "ranges", *parts)


def _in_to_out(layer: dict) -> float:
    """Cycles from an engine's last input beat to its last output beat: its ``in_to_out``,
    or (a Dense-chain layer) its latency less its input's beats."""
    if num(layer.get("in_to_out")) is not None:
        return num(layer["in_to_out"])
    lat = num(layer.get("latency_cycles")) or 0.0
    n_in = num(layer.get("n_in"))
    return max(lat - (n_in - 1), 0.0) if n_in is not None and lat >= n_in - 1 else lat


def engine_timeline(v: dict, layers: list[dict]) -> list[tuple[str, float, float, str]]:
    """Each engine's busy interval in one frame, ``(name, start, end, tooltip)``: it ends
    when the engine's last output leaves, the last input beat (cycle ``n_in - 1``) plus the
    ``in_to_out`` cycles of the engines on the longest path to it (by the streams an
    engine reads, else along the list), and lasts its compute cycles (its frame cycles where
    it reports none)."""
    first = max((num(v.get("n_in")) or 1.0) - 1, 0.0)
    done: dict[str, float] = {}
    prev, rows = first, []
    for layer in layers:
        ins = layer.get("inputs")
        if isinstance(ins, list) and ins and all(isinstance(s, str) for s in ins):
            start = max(done.get(s, first) for s in ins)
        else:
            start = prev
        end = start + _in_to_out(layer)
        if isinstance(layer.get("output"), str):
            done[layer["output"]] = end
        prev = end
        busy = num(layer.get("compute_cycles"))
        busy = num(layer.get("ii_cycles")) if busy is None else busy
        busy = min(busy or 0.0, end)
        rows.append((name(layer.get("name")), end - busy, end,
                     f"{name(layer.get('name'))}: busy from cycle {fmt(end - busy)} to {fmt(end)}"))
    return rows


def _hardware(v: dict) -> str:
    layers = objs(v.get("layers"))
    if not layers:
        return section("Verilog engines", "hardware", notice(
            "This folder has no Verilog design (compile with --targets verilog for the engines' cycles, resources "
            "and timeline)."))
    names = [name(layer.get("name")) for layer in layers]
    totals = obj(v.get("totals"))
    ii = num(totals.get("ii_cycles")) or max((num(layer.get("ii_cycles")) or 0.0) for layer in layers)
    busy = []
    for layer in layers:
        b = num(layer.get("compute_cycles"))
        busy.append(num(layer.get("ii_cycles")) if b is None else b)
    idle = [max(ii - b, 0.0) if b is not None else None for b in busy]
    parts = [figure("Cycles per frame by engine", stacked_bar_chart(
        "cycles", "Cycles per frame by engine", names, [("computing", busy), ("waiting", idle)],
        "clock cycles per frame"),
        f"The cycles each engine computes per frame and the rest of the design's initiation interval "
        f"({fmt(ii)} cycles) it waits; the slowest engine sets the interval ({name(v.get('parallelism'), 40)} "
        f"folding).")]
    est = [obj(layer.get("estimate")) for layer in layers]
    kinds = [(k, label) for k, label in RESOURCES if any(num(e.get(k)) is not None for e in est)]
    if kinds:
        sums = [sum(num(e.get(k)) or 0.0 for e in est) for k, _ in kinds]
        target = name(obj(totals.get("estimate")).get("target"), 300)
        parts.append(figure("Resources by engine", stacked_bar_chart(
            "resources", "Resources by engine", [label for _, label in kinds],
            [(n, [num(e.get(k)) for k, _ in kinds]) for n, e in zip(names, est)], "share of the design (%)",
            percent=True, totals=[fmt(s) for s in sums]),
            "Each resource of the design's estimate split by the engine that uses it; the number at the end is "
            f"the design's total. Estimate for {target if target != '?' else 'the target architecture'}."))
    rows = engine_timeline(v, layers)
    lat = num(totals.get("latency_cycles"))
    lat = max(r[2] for r in rows) if lat is None else lat
    parts.append(figure("Folding timeline of one frame", timeline(
        "timeline", "Folding timeline of one frame", rows,
        [(ii, f"II {fmt(ii)}"), (lat, f"latency {fmt(lat)}")],
        "clock cycles from the frame's first input beat"),
        "An approximation from the report's figures: each engine is drawn busy for its compute cycles, ending "
        "when its last output of the frame leaves, which is the last input beat plus the in-to-out latencies of "
        "the engines on the path to it. Stalls and the exact start of each engine are not modelled. The next "
        "frame enters one initiation interval (II) after this one and overlaps it."))
    cells = [[n, fmt(num(layer.get("latency_cycles"))), fmt(num(layer.get("ii_cycles"))),
              fmt(num(layer.get("compute_cycles"))), *(fmt(num(e.get(k))) for k, _ in RESOURCES)]
             for n, layer, e in zip(names, layers, est)]
    parts.append("<p>Each engine's figures: its cycles (from its last input to its last output, per frame, "
                 "computing) and the resources of the estimate.</p>")
    parts.append(table(["engine", "latency (cycles)", "II (cycles)", "compute (cycles)",
                        *(label for _, label in RESOURCES)], cells, set(range(1, 8))))
    return section("Verilog engines", "hardware", *parts)


def _energy(e) -> str:
    if not isinstance(e, dict):
        return section("Energy", "energy", notice("no energy estimate in this report"))
    layers = objs(e.get("layers"))
    model = e.get("model")
    parts = [f"<p>How it is estimated: {esc(name(model, 600))}</p>"] if isinstance(model, str) else []
    if layers:
        labels = [f"{name(layer.get('name'))} ({name(layer.get('op'), 30)})" for layer in layers]
        parts.append(figure("Energy per inference by layer", stacked_bar_chart(
            "energy", "Energy per inference by layer", labels,
            [("arithmetic", [num(layer.get("compute_pj")) for layer in layers]),
             ("memory", [num(layer.get("memory_pj")) for layer in layers])], "energy per inference (pJ)"),
            "The estimate of each layer: its arithmetic and its memory accesses, every MAC executed."))
    total = num(e.get("total_pj"))
    rows = []
    for key, what in ENERGY_TOTALS:
        v = num(e.get(key))
        if v is not None:
            ratio = f"{v / total:.2f} x total" if total and key != "total_pj" else ""
            rows.append([what, f"{v / 1000:,.3f}", ratio])
    if rows:
        parts.append(table(["per inference", "nJ", "against the total"], rows, {1, 2}))
    if not layers and not rows:
        parts.append(notice("the energy estimate in this report holds no figures"))
    return section("Energy (first-order estimate)", "energy", *parts)
