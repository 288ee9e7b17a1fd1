"""Verilog for float16 / bfloat16 graphs: a floating-point multiply-accumulate processor.

The :class:`.c_float.FloatProgram` of the graph (the C backend's steps) runs on one
pipelined unit (``hls_templates/verilog/float_top.v.j2``): a binary32 multiplier and
adder (``nnf_fp.v``, copied into the design as ``nnf_fp_units.v``: IEEE round to nearest
even, subnormals, written out in Verilog), an activation memory holding every buffer, and weight / bias ROMs. Each step is a loop
nest of counters (output group, channel, row, column; input channel, kernel row, kernel
column) whose addresses Python writes per step; one tap enters the pipeline per cycle,
in the golden model's order, so the results are the golden model's bit for bit. A tap
in the padding enters as a bubble (its product is not added, as the contract allows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..ir.floats import FORMATS
from .c_float import FloatProgram, FloatStep
from .render import TEMPLATES, render
from .rtl import AXIS_TOP, TOP, axis_wrapper, bits, type_info

UNITS = "nnf_fp_units.v"
DRAIN = 3  # idle cycles after a step's last tap (with the 2 of the switch: the pipeline's depth)
# a Dense / Conv with at least this share of zero weights walks a list of its nonzero taps
# (one ROM entry each) instead of every tap: a zero weight costs no cycle
SPARSE_ZEROS = 0.125


def _sparse_taps(s: FloatStep) -> list[list[tuple[int, int, int]]] | None:
    """Per output channel, the (t1, t2, t3) taps of its nonzero weights, when the layer
    is sparse enough (:data:`SPARSE_ZEROS`); else None."""
    if s.kind not in ("dense", "conv"):
        return None
    w = np.asarray(s.params["weights"])
    if np.mean(w == 0) < SPARSE_ZEROS:
        return None
    w4 = w.reshape(w.shape[0], 1, 1, -1) if s.kind == "dense" else w.reshape(w.shape[0], w.shape[1], s.params["kh"],
                                                                             s.params["kw"])
    return [[tuple(int(v) for v in t) for t in np.argwhere(w4[m] != 0)] for m in range(w4.shape[0])]


def _lines(s: FloatStep, base: dict, w_base: int, b_base: int, aw: int, wwa: int, bw: int,
           taps: list | None = None) -> tuple[list[str], str, int]:
    """The step's constants and address expressions (Verilog statements), a note and its
    issue cycles; with ``taps`` (:func:`_sparse_taps`) the tap indices come from the entries."""
    p = s.params
    t1, t2, t3 = ("e1", "e2", "e3") if taps else ("t1", "t2", "t3")
    per_m = [max(1, len(t)) for t in taps] if taps else None
    x = base[s.inputs[0]]
    d = base[s.output]

    def lims(*ls):
        return [f"l{i} = 16'd{v};" for i, v in enumerate(ls) if v != 1]

    def window(c_expr: str):
        return [f"iy = $signed({{3'b0, o2}}) * 19'sd{p['sh']} - 19'sd{p['pt']} + $signed({{3'b0, {t2}}}) * 19'sd{p['dh']};",
                f"ix = $signed({{3'b0, o3}}) * 19'sd{p['sw']} - 19'sd{p['pl']} + $signed({{3'b0, {t3}}}) * 19'sd{p['dw']};",
                f"inb = (iy >= 19'sd0) && (iy < 19'sd{p['h']}) && (ix >= 19'sd0) && (ix < 19'sd{p['w']})"
                + (" && !e_none;" if taps else ";"),
                f"xa = {aw}'d{x} + (({c_expr}) * {aw}'d{p['h']} + iy[15:0]) * {aw}'d{p['w']} + ix[15:0];"]

    if s.kind == "dense":
        k, mm = p["k"], p["m"]
        lines = ["kind = K_MAC;", f"relu = 1'b{int(p['relu'])};", *lims(1, mm, 1, 1, 1, 1, 1 if taps else k),
                 "m = o1;", f"xa = {aw}'d{x} + {t3};", f"wa = {wwa}'d{w_base} + m * {wwa}'d{k} + {t3};",
                 f"ba = {bw}'d{b_base} + m;", f"da = {aw}'d{d} + m;"]
        if taps:
            lines += ["sp = 1'b1;", "inb = !e_none;"]
        return (lines, f"Dense {k} -> {mm}" + (" + Relu" if p["relu"] else "") + (" (zero weights skipped)" if taps else ""),
                sum(per_m) if taps else mm * k)
    if s.kind == "conv":
        groups, mg, cg = p["groups"], p["mg"], p["cg"]
        tl = (1, 1, 1) if taps else (cg, p["kh"], p["kw"])
        lines = ["kind = K_MAC;", f"relu = 1'b{int(p['relu'])};",
                 *lims(groups, mg, p["oh"], p["ow"], *tl),
                 f"m = o0 * 16'd{mg} + o1;", *window(f"o0 * {aw}'d{cg} + {t1}"),
                 f"wa = {wwa}'d{w_base} + ((m * {wwa}'d{cg} + {t1}) * {wwa}'d{p['kh']} + {t2}) * {wwa}'d{p['kw']} + {t3};",
                 f"ba = {bw}'d{b_base} + m;", f"da = {aw}'d{d} + (m * {aw}'d{p['oh']} + o2) * {aw}'d{p['ow']} + o3;"]
        if taps:
            lines.append("sp = 1'b1;")
        cycles = p["oh"] * p["ow"] * (sum(per_m) if taps else groups * mg * cg * p["kh"] * p["kw"])
        return (lines, f"Conv {p['kh']}x{p['kw']}, {groups * cg} -> {groups * mg} channels"
                + (" (zero weights skipped)" if taps else ""), cycles)
    if s.kind == "maxpool":
        lines = ["kind = K_MAX;", *lims(1, p["c"], p["oh"], p["ow"], 1, p["kh"], p["kw"]), *window("o1"),
                 f"da = {aw}'d{d} + (o1 * {aw}'d{p['oh']} + o2) * {aw}'d{p['ow']} + o3;"]
        return lines, f"MaxPool {p['kh']}x{p['kw']}", p["c"] * p["oh"] * p["ow"] * p["kh"] * p["kw"]
    if s.kind == "gap":
        recip = int(np.float32(1.0 / p["count"]).view(np.uint32))
        lines = ["kind = K_SUM;", "gap = 1'b1;", f"recip = 32'h{recip:08x};", *lims(1, p["c"], 1, 1, 1, 1, p["count"]),
                 f"xa = {aw}'d{x} + o1 * {aw}'d{p['count']} + t3;", f"da = {aw}'d{d} + o1;"]
        return lines, f"GlobalAveragePool over {p['count']}", p["c"] * p["count"]
    if s.kind == "add":
        y = base[s.inputs[1]]
        lines = ["kind = K_SUM;", *lims(1, p["n"], 1, 1, 1, 1, 2),
                 f"xa = (t3 == 16'd0 ? {aw}'d{x} : {aw}'d{y}) + o1;", f"da = {aw}'d{d} + o1;"]
        return lines, "Add", 2 * p["n"]
    if s.kind == "relu":
        lines = ["kind = K_RELU;", *lims(1, p["n"], 1, 1, 1, 1, 1), f"xa = {aw}'d{x} + o1;", f"da = {aw}'d{d} + o1;"]
        return lines, "Relu", p["n"]
    raise ValueError(s.kind)


def write_float_verilog(prog: FloatProgram, outdir: Path) -> dict:
    """Write the processor, its float units, the AXI4-Stream wrapper and
    ``verilog_info.json`` into ``outdir``; return the info."""
    fmt = FORMATS[prog.fmt]
    base = {"in": 0}
    at = prog.n_in
    for name, size in prog.buffers:
        base[name] = at
        at += size
    base["out"] = at
    act_words = at + prog.n_out
    w_all, b_all, wb, bb = [], [], {}, {}
    for s in prog.steps:
        if "weights" in s.params:
            wb[s.name], bb[s.name] = len(w_all), len(b_all)
            w_all += np.asarray(s.params["weights"]).reshape(-1).tolist()
            b_all += np.asarray(s.params["bias"]).reshape(-1).tolist()
    w_all, b_all = w_all or [0], b_all or [0]
    aw, wwa, bw = bits(act_words), bits(len(w_all)), bits(len(b_all))  # address widths
    sparse = {s.name: _sparse_taps(s) for s in prog.steps}
    all_taps = [t for ts in sparse.values() if ts for m in ts for t in (m or [(0, 0, 0)])]
    b1, b2, b3 = (max([bits(max(t[i] for t in all_taps) + 1)] if all_taps else [1]) for i in range(3))
    tap_words = []
    for ts in sparse.values():
        for m in ts or []:
            for j, t in enumerate(m or [None]):
                first, last, none = j == 0, j == max(len(m), 1) - 1, t is None
                t = t or (0, 0, 0)
                tap_words.append((first << (b1 + b2 + b3 + 2)) | (last << (b1 + b2 + b3 + 1))
                                 | (none << (b1 + b2 + b3)) | (t[0] << (b2 + b3)) | (t[1] << b3) | t[2])
    steps, cycles = [], 0
    for s in prog.steps:
        lines, what, n = _lines(s, base, wb.get(s.name, 0), bb.get(s.name, 0), aw, wwa, bw, sparse[s.name])
        steps.append({"name": s.name, "what": what, "lines": lines, "cycles": n + DRAIN + 1})
        cycles += n + DRAIN + 1
    sw = max(1, bits(len(steps)))
    ctx = {"top": TOP, "model": prog.name, "fmt": prog.fmt, "sat": fmt.sat, "neg_sat": fmt.sat | 0x8000, "exp": fmt.exp_bits,
           "man": fmt.man_bits, "n_in": prog.n_in, "n_out": prog.n_out, "act_words": act_words,
           "w_words": len(w_all), "b_words": len(b_all), "w_words_list": w_all, "b_words_list": b_all,
           "drain": DRAIN, "steps": steps, "sw": sw, "aw": aw, "ww": wwa, "bw": bw,
           "in_base": 0, "out_base": base["out"], "taps": tap_words, "tw": b1 + b2 + b3 + 3,
           "pw": bits(len(tap_words)), "b1": b1, "b2": b2, "b3": b3}
    files = {f"{TOP}.v": render("verilog", "float_top.v.j2", **ctx),
             UNITS: (TEMPLATES / "verilog" / "nnf_fp.v").read_text()}
    ii = prog.n_in + cycles + 3 * prog.n_out
    macs = prog.macs
    info = {
        "top": TOP, "model": prog.name, "parallelism": "float processor", "float_format": prog.fmt,
        "n_in": prog.n_in, "n_out": prog.n_out, "in_type": type_info(prog.in_t), "out_type": type_info(prog.out_t),
        "input_shape": list(prog.input_shape), "input_order": list(range(len(prog.input_shape))),
        "stream_order": f"{prog.fmt} patterns in the model's flat order, one per beat, both ways",
        # the steps run one after another on the one unit: each takes its taps + the drain
        "layers": [{"name": s.name, "op": s.kind, "module": TOP, "file": f"{TOP}.v", "what": st["what"],
                    "pe": 1, "simd": 1, "latency_cycles": st["cycles"], "ii_cycles": st["cycles"]}
                   for s, st in zip(prog.steps, steps)],
        "totals": {"latency_cycles": ii, "ii_cycles": ii, "macs": macs,
                   # one binary32 multiplier on the taps, one on the average's scale
                   "multipliers": 2, "lut_multipliers": 0,
                   "efficiency": round(macs / ii, 4),
                   "activation_words": act_words, "weight_words": len(w_all) + len(b_all),
                   "sparse_layers": [n for n, t in sparse.items() if t], "tap_entries": len(tap_words),
                   "zero_weights_skipped": int(sum(np.sum(np.asarray(s.params["weights"]) == 0)
                                                for s in prog.steps if sparse[s.name]))},
        "timing_notes": "cycles: load n_in, one per tap of every step plus a drain of "
                        f"{DRAIN + 1} per step, three per output word",
        "files": sorted(files) + [f"{AXIS_TOP}.v", "verilog_info.json"],
    }
    files[f"{AXIS_TOP}.v"], info["axis"] = axis_wrapper(info, prog.in_t, prog.out_t)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (outdir / name).write_text(text)
    (outdir / "verilog_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
