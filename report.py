"""What a design reports: its layers, the precision of each against the float model, the
``report.json`` / ``report.txt`` of an output folder, and the text of a layer trace.

These read a :class:`nnforge.design.Design` (or its graphs); nothing here writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .energy import energy_estimate, energy_lines
from .ir import Graph, dequantize, run_float, run_int
from .ir.floats import is_float
from .ir.ops import ops_with
from .ir.text import name as pname
from .passes.prune import compression_text
from .persist import report_quantization
from .targets import TARGETS


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Text columns as wide as their widest cell (real-scale types are long); the first
    two left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in rows]


def layer_rows(q: Graph) -> list[dict]:
    """Per node of the quantized graph: its formats, and for a layer with weights (the
    ``linear`` trait: Dense, Conv) its weights, accumulator width and MACs."""
    layers = ops_with(linear=True)
    rows = []
    for n in q.topo():
        row = {"name": n.name, "op": n.op, "input": str(q.qtype(n.inputs[0])),
               "output": str(q.qtype(n.outputs[0])), "shape": list(q.shape(n.outputs[0]))}
        if n.op in layers:
            # every output value takes one MAC per weight of its output channel
            w_shape = q.shape(n.inputs[1])
            per_output = int(np.prod(w_shape[1:]))
            row.update(weights=str(q.qtype(n.inputs[1])),
                       acc_width="fp32" if is_float(q.qtype(n.outputs[0])) else n.attr("acc_width"),
                       relu=bool(n.attr("relu")),
                       macs=int(np.prod(q.shape(n.outputs[0]))) * per_output)
        rows.append(row)
    return rows


def summary_text(q: Graph) -> str:
    """The model's input and output and one line per layer."""
    i, o = q.inputs[0], q.outputs[0]
    lines = [f"model {pname(q.name)}: input {q.shape(i)} {q.qtype(i)}, output {q.shape(o)} {q.qtype(o)}"]
    lines += table([("layer", "op", "in", "weights", "acc", "out", "MACs")] + [
        (pname(r["name"])[:15], (r["op"] + ("+relu" if r.get("relu") else ""))[:11], r["input"],
         str(r.get("weights", "-")), str(r.get("acc_width", "-")), r["output"], str(r.get("macs", "-")))
        for r in layer_rows(q)])
    return "\n".join(lines)


def quant_references(f: Graph) -> dict[str, str]:
    """For a model carrying its own quantization: the float tensor each quantized tensor
    stands for, the output of the Quant that marks it (through a Relu the quantizer fused),
    so the precision report compares with the model's own fake-quantized values."""
    refs: dict[str, str] = {}
    for node in f.topo():
        if node.op != "Quant":
            continue
        t = node.inputs[0]
        refs[t] = node.outputs[0]
        producer = f.producer(t)
        if producer is not None and producer.op == "Relu":
            refs[producer.inputs[0]] = node.outputs[0]
    return refs


def value_envs(float_passes: Graph, q: Graph, x: np.ndarray, x_int: np.ndarray) -> tuple[dict, dict]:
    """Every tensor of the float graph ``float_passes`` on the float samples ``x`` and of
    the golden model ``q`` on ``x_int`` (``x`` quantized): what :func:`precision` and
    :func:`tensor_profile` read, computed once for both."""
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow shows as an SQNR of nan
        fenv = run_float(float_passes, x, keep=True)
    return fenv, run_int(q, x_int, keep=True)


def precision(float_passes: Graph, q: Graph, x: np.ndarray, x_int: np.ndarray,
              envs: tuple[dict, dict] | None = None) -> dict:
    """Per layer of ``q``: formats, accumulator width and the SQNR of its output (golden
    integers scaled back against ``float_passes``, the float graph after the float passes,
    in dB) on the float samples ``x`` (``x_int`` quantized; ``envs``: their
    :func:`value_envs`, when already computed); ``worst_layer`` is the layer whose output
    SQNR falls furthest below its input's."""
    fenv, qenv = envs or value_envs(float_passes, q, x, x_int)
    refs = quant_references(float_passes)

    def sqnr(t: str) -> float | None:
        f = refs.get(t, t)
        if f not in fenv or t not in qenv:
            return None
        ref = np.asarray(fenv[f], np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            err = dequantize(qenv[t], q.qtype(t)) - ref
            sig, noise = float(np.sum(ref ** 2)), float(np.sum(err ** 2))
        if noise == 0.0:
            return float("inf")
        return float(10.0 * np.log10(sig / noise)) if sig > 0 else float("-inf")

    rows, worst, worst_drop = [], None, -np.inf
    for r in layer_rows(q):
        node = q.node(r["name"])
        s_in, s_out = sqnr(node.inputs[0]), sqnr(node.outputs[0])
        rows.append({**r, "sqnr_in_db": s_in, "sqnr_db": s_out})
        if s_out is None or not np.isfinite(s_out):
            continue
        drop = (s_in - s_out) if s_in is not None and np.isfinite(s_in) else -s_out
        if drop > worst_drop:
            worst, worst_drop = r["name"], drop
    return {"samples": int(len(x)), "layers": rows, "output_sqnr_db": sqnr(q.outputs[0]),
            "worst_layer": worst, "worst_drop_db": None if worst is None else float(worst_drop)}


def precision_text(p: dict) -> str:
    def db(v):
        return "-" if v is None else ("inf" if v == float("inf") else f"{v:.1f}")
    lines = [f"precision on {p['samples']} samples (SQNR of each layer's output against the float model, dB)"]
    lines += table([("layer", "op", "in", "weights", "acc", "out", "SQNR")] + [
        (pname(r["name"])[:15], pname(r["op"])[:11], r["input"], str(r.get("weights", "-")),
         str(r.get("acc_width", "-")),
         r["output"], db(r["sqnr_db"])) for r in p["layers"]])
    lines.append(f"model output SQNR {db(p['output_sqnr_db'])} dB")
    if p["worst_layer"]:
        lines.append(f"largest loss: {pname(p['worst_layer'])} ({p['worst_drop_db']:.1f} dB below its input)")
    return "\n".join(lines) + "\n"


PROFILE_BINS = 40  # equal bins of each tensor's histogram in a profile


def tensor_profile(float_passes: Graph, q: Graph, x: np.ndarray, x_int: np.ndarray, bins: int = PROFILE_BINS,
                   envs: tuple[dict, dict] | None = None) -> dict:
    """The values of the model input, of every node's output and of every layer's weights
    (the ``linear`` trait) as histograms, for the HTML report: the float model's values
    (``float_passes`` on ``x``) and the golden model's scaled back (``q`` on ``x_int``;
    ``envs``: their :func:`value_envs`, when already computed), counted in ``bins`` equal
    bins over the span of both, beside the interval the tensor's format represents and how
    many float values fall beyond it (those it saturates)."""
    fenv, qenv = envs or value_envs(float_passes, q, x, x_int)
    refs = quant_references(float_passes)
    linear = ops_with(linear=True)

    def activation(layer: str, op: str, kind: str, t: str) -> dict:
        t_q = q.qtype(t)
        lo, hi, step = _format_interval(t_q)
        ref = fenv.get(refs.get(t, t))
        return _tensor_histogram(layer, op, kind, t, t_q, ref, dequantize(qenv[t], t_q), (lo, hi, step), bins)

    tensors = [activation("", "input", "input", q.inputs[0])]
    for n in q.topo():
        if n.op in linear:
            tensors.append(_weights_histogram(float_passes, q, n, bins))
        tensors.append(activation(n.name, n.op, "activation", n.outputs[0]))
    return {"samples": int(len(x)), "bins": int(bins), "tensors": tensors}


def _format_interval(t) -> tuple[float, float, float]:
    """The real values a tensor type represents, ``[lo, hi]``, and one step of it (0 for a
    float format, whose interval is its largest finite value with either sign)."""
    if t.is_float:
        sat = float(t.format.sat_value)
        return -sat, sat, 0.0
    return t.lo * t.scale, t.hi * t.scale, t.scale


def weight_steps(q: Graph, node) -> np.ndarray:
    """The real value of one step of each output channel's weights of a ``linear``
    fixed-point node: the weight type's scale, or with a per-channel requantization
    (``y = acc * rq_mult[n] >> rq_shift`` at the output's scale, ``acc`` at
    scale(x) * step[n]) ``step[n] = rq_mult[n] * 2**-rq_shift * scale(y) / scale(x)``."""
    x_t, w_t, y_t = q.qtype(node.inputs[0]), q.qtype(node.inputs[1]), q.qtype(node.outputs[0])
    mult = node.attr("rq_mult")
    if mult is None:
        return np.full(q.shape(node.inputs[1])[0], w_t.scale)
    return np.ldexp(np.asarray(mult, np.float64), -int(node.attr("rq_shift"))) * y_t.scale / x_t.scale


def _weights_histogram(float_passes: Graph, q: Graph, node, bins: int) -> dict:
    """A layer's weights: the float model's (where it has them, in the same shape) against
    the quantized ones scaled back. With a step per output channel, each channel saturates
    at its own interval and the interval shown is the widest channel's."""
    w = node.inputs[1]
    w_t, w_q = q.qtype(w), q.consts[w]
    ref = float_passes.consts.get(w)
    ref = ref if ref is not None and np.shape(ref) == np.shape(w_q) else None
    if w_t.is_float:
        return _tensor_histogram(node.name, node.op, "weights", w, w_t, ref, dequantize(w_q, w_t),
                                 _format_interval(w_t), bins)
    steps = weight_steps(q, node)
    rows = steps.reshape((-1,) + (1,) * (np.ndim(w_q) - 1))
    entry = _tensor_histogram(node.name, node.op, "weights", w, w_t, ref, w_q * rows,
                              (w_t.lo * rows, w_t.hi * rows, rows), bins)
    entry["per_channel"] = bool(np.unique(steps).size > 1)
    return entry


def _tensor_histogram(layer: str, op: str, kind: str, tensor: str, t, ref, deq, interval, bins: int) -> dict:
    """One tensor's profile entry. ``interval``: ``(lo, hi, step)``, numbers or arrays that
    broadcast against ``ref`` (one per output channel); the entry states the widest. A float
    value saturates when rounding it to the format (half up) leaves the interval: below
    ``lo - step/2``, or from ``hi + step/2`` up (beyond ``hi`` for a float format)."""
    lo, hi, step = (np.asarray(v, np.float64) for v in interval)
    deq = np.asarray(deq, np.float64).ravel()
    size = deq.size
    vals = [_finite_values(deq)]
    below = above = None
    if ref is not None:
        ref = np.asarray(ref, np.float64)
        with np.errstate(invalid="ignore"):
            below = int(np.count_nonzero(ref < lo - step / 2))
            above = int(np.count_nonzero(ref >= hi + step / 2 if np.all(step > 0) else ref > hi))
        vals.append(_finite_values(ref.ravel()))
    ends = [(float(v.min()), float(v.max())) for v in vals if v.size]
    a, b = (min(e[0] for e in ends), max(e[1] for e in ends)) if ends else (0.0, 0.0)
    if a == b:
        pad = abs(a) / 2 or 0.5
        a, b = a - pad, b + pad

    def counts(v) -> list[int]:  # equal bins over [a, b], the last one closed
        idx = np.minimum(((v - a) * (bins / (b - a))).astype(np.int64), bins - 1)
        return [int(c) for c in np.bincount(idx, minlength=bins)]

    return {"layer": layer, "op": op, "kind": kind, "tensor": tensor, "format": str(t),
            "interval": [float(lo.min()), float(hi.max())], "per_channel": False, "edges": [a, b],
            "float": counts(vals[1]) if ref is not None else None, "int": counts(vals[0]),
            "values": int(size), "below": below, "above": above}


def _finite_values(v: np.ndarray) -> np.ndarray:
    return v if np.isfinite(v).all() else v[np.isfinite(v)]


def report_info(design, targets) -> dict:
    """``report.json`` of an output folder, before the targets add their sections."""
    q = design.qgraph
    layers = layer_rows(q)
    softmax = bool(q.meta.get("output_softmax"))
    return {"model": q.name, "source": design.source, "targets": list(targets),
            "quantization": report_quantization(design.config, design.mixed),
            "compression": design.compression, "training": design.training,
            "input": {"shape": list(design.input_shape), "type": str(design.input_type)},
            "output": {"shape": list(design.output_shape), "type": str(design.output_type),
                       "softmax_on_host": softmax},
            "layers": layers, "macs": sum(r.get("macs", 0) for r in layers),
            "energy": energy_estimate(q),
            "precision": design.calibration_precision,
            "profile": design.calibration_profile}


def training_text(run: dict) -> str:
    """A fine-tuning record (``design.training``, :mod:`nnforge.train.loop`) as text; a
    record from a design file is shown as far as it holds what a record holds (its strings
    made printable)."""
    def num(v, fmt: str, default: str = "?") -> str:
        return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else default

    def text(v) -> str:
        return pname(str(v)[:80])

    run = run if isinstance(run, dict) else {}
    c = run.get("config") if isinstance(run.get("config"), dict) else {}
    labels = bool(run.get("labels"))
    how = "labels" if labels else "no labels"
    if c.get("distill") is not None:
        how += f", distillation T={num(c['distill'], 'g')}" + (
            f" (weight {num(c.get('distill_weight'), 'g')})" if labels else "")
    if c.get("prune") is not None:
        how += f", pruned gradually to {num(c['prune'], '.0%')}" + (
            " over the network" if c.get("prune_scope") == "global" else "")
    if run.get("learned_scales") in ("tensor", "channel"):
        how += f", weight scales learned per {run['learned_scales']}"
    history = run.get("history") if isinstance(run.get("history"), list) else []
    lines = [f"fine-tuned ({text(run.get('task', '?'))}, {how}): {len(history)} epoch(s) on "
             f"{num(run.get('samples'), 'd')} samples, lr {num(c.get('lr'), 'g')}, batch {num(c.get('batch'), 'd')}, "
             f"seed {num(c.get('seed'), 'd')}, {num(run.get('seconds'), '.1f')} s"]
    moved = [m for m in run.get("formats_moved") or [] if isinstance(m, dict)]
    if moved:
        lines.append("  formats moved: " + ", ".join(
            f"{text(m.get('tensor'))} {text(m.get('before'))} -> {text(m.get('after'))}" for m in moved))
    before, after = run.get("validation_before"), run.get("validation_after")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        fmt = ".2%" if run.get("task") == "classification" else ".5g"
        kept = run.get("kept_epoch")
        line = (f"  validation: {num(before, fmt)} before, {num(after, fmt)} after"
                + (f" (epoch {num(kept, 'd')} kept)" if kept else " (no epoch beat the design: its weights kept)"))
        if isinstance(run.get("validation_float"), (int, float)):
            line += f"; float model {num(run['validation_float'], fmt)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def report_text(design, info: dict) -> str:
    """``report.txt``: the summary, compression, precision and the Verilog figures."""
    lines = [summary_text(design.qgraph), "", f"MACs per inference: {info['macs']}"]
    lines += energy_lines(info.get("energy"))
    if design.mixed:
        lines.append(design.mixed.text().rstrip())
    for c in design.compression:
        lines.append(compression_text(c).rstrip())
    for run in design.training:
        lines.append(training_text(run).rstrip())
    if design.calibration_precision:
        lines += ["", "On the calibration data:", precision_text(design.calibration_precision).rstrip()]
    for name, target in TARGETS.items():  # the sections the targets added to report.json
        if info.get(name):
            lines += target.report_lines(info[name])
    if info["output"]["softmax_on_host"]:
        lines.append("The model ends in Softmax: the hardware outputs the logits; the float "
                     "wrapper applies softmax.")
    return "\n".join(lines) + "\n"


@dataclass
class LayerTrace:
    """One layer of a backend's trace against golden."""

    step: str
    op: str
    tensor: str
    values: int
    mismatches: int  # output values that differ from golden
    first_index: int | None = None  # the first differing value (row-major in the IR shape)

    def as_dict(self) -> dict:
        return {"step": self.step, "op": self.op, "tensor": self.tensor, "values": self.values,
                "mismatches": self.mismatches, "first_index": self.first_index}


def trace_text(traces: dict[str, list[LayerTrace]], sample: int) -> str:
    """The per-layer comparison of :meth:`Design.trace`, naming each backend's first
    layer that differs from golden."""
    lines = [f"Trace of sample {sample}, every layer against golden:"]
    for b, layers in traces.items():
        first = next((t for t in layers if t.mismatches), None)
        lines.append(f"  {b}: " + (f"first layer that differs: {first.step} ({first.op}, tensor {first.tensor}), "
                                   f"{first.mismatches} of {first.values} values, first at index {first.first_index}"
                                   if first else f"all {len(layers)} layers equal golden"))
        for t in layers:
            lines.append(f"    {t.step:<24} {t.op:<20} {t.values:>7} values  "
                         + ("ok" if not t.mismatches else f"{t.mismatches} differ"))
    return "\n".join(lines) + "\n"
