"""HLS C++ in the form of the Verilog engine graph: the same engines, the same folding, the
same streams.

:func:`stream_design` plans the quantized graph as the Verilog target does
(:func:`.verilog_cnn.plan_engines`: one engine per node, channels-last streams, each MAC
engine folded to ``PE x SIMD`` lanes by the same goal, skip FIFOs sized by the same
analysis) and describes one DATAFLOW process per engine, ``hls::stream`` channels with
stated depths between them:

- a MAC engine (Conv, Dense) is two processes: a sliding-window generator over a line
  buffer of ``span_h + 1`` padded rows (channels-last: the window's rows and the one being
  read) that sends, per output
  pixel, its window as ``TAPS`` vectors (``SIMD`` inputs each; a depthwise engine's ``PE``
  channels, per block of ``PE`` output channels), and a matrix-vector unit whose pipelined
  loop does exactly ``PE x SIMD`` multiplies per iteration (``PE`` depthwise) with its
  weights a flat array of ``BLOCKS * TAPS`` words of ``PE x SIMD``, partitioned cyclically
  by ``PE x SIMD``;
  a block of ``PE`` outputs leaves one per cycle while the next block accumulates (its
  loop runs ``max(TAPS, PE)`` iterations), so its period is the Verilog engine's
  ``compute_cycles``. Row folds take ``SIMD`` consecutive inputs of a kernel row (its ``kw
  * cg`` inputs, channels-last), the last vector of a row padded with zeros;
- MaxPool: the window generator with vectors of every channel of one cell, and a max unit
  that takes a pixel's channels at once;
- GlobalAveragePool: one process summing each channel;
- Relu, Add of two activations: one element per cycle;
- Reshape: no process (the stream passes on);
- a stream read by several engines is copied by a ``dup`` process into one stream per
  reader (DATAFLOW needs one consumer per channel); the skip stream of a streaming Add
  gets the depth of the Verilog skip FIFO in front of that port.

Every value is computed with the integer rules of the array form's templates (the same
``nnf_requant``, ties to even where the layer says so); a graph with an op or a layout
this form does not implement gets the array form (:mod:`.hls_program`).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.ops.dense import requant_params, ties_to_even
from .estimate import design_estimate
from .folding import Fold
from .lower import DENSE_CHAIN, BackendError, c_int_type, lower
from .program import rows, step_params
from .registry import Lowerings
from .rtl import tdata_bits
from .verilog import dense_folding
from .verilog_cnn import plan_engines

DEPTH = 2  # a stream between two processes: a producer's element and the next one
SKIP = "skip FIFO (the Verilog's, same analysis)"  # why a stream is deeper


def _ctype(q: Graph, tensor: str) -> str:
    """The element type of a tensor's stream: ``nnf_s<W>`` / ``nnf_u<W>``, ``ap_int<W>`` /
    ``ap_uint<W>`` under Vitis HLS (a FIFO and a line buffer as wide as the values), the C
    integer holding it under g++ (:func:`element_types`)."""
    t = q.qtype(tensor)
    return f"nnf_{'s' if t.signed else 'u'}{t.width}"


def element_types(names) -> list[dict]:
    """The typedefs of the stream element types ``names`` (``nnf_s8``, ...)."""
    out = []
    for n in sorted(set(names)):
        signed, width = n[4] == "s", int(n[5:])
        out.append({"name": n, "ap": f"ap_{'' if signed else 'u'}int<{width}>", "c": c_int_type(width, signed)})
    return out


def _window_table(g, fold, kind: str) -> tuple[list[list[tuple[int, int, int]]], int, int]:
    """The window vectors a generator sends per output pixel, in order: for each
    emission, per lane, (row in the window, column in the window, channel), or (-1, 0, 0)
    for a zero; the taps per block and the emission blocks (1: the vectors are the same
    for every block of output channels)."""
    span = []
    if kind == "max":  # every channel of one cell a vector
        for i in range(g.kh):
            for j in range(g.kw):
                span.append([(i * g.dh, j * g.dw, c) for c in range(g.c)])
        return span, g.kh * g.kw, 1
    if fold.depthwise:
        blocks = g.m // fold.pe
        for b in range(blocks):
            for i in range(g.kh):
                for j in range(g.kw):
                    span.append([(i * g.dh, j * g.dw, b * fold.pe + p) for p in range(fold.pe)])
        return span, g.kh * g.kw, blocks
    if fold.flat:  # SIMD consecutive inputs of a kernel row (column-major, channels inner)
        row = [(j * g.dw, c) for j in range(g.kw) for c in range(g.cg)]
        steps = -(-len(row) // fold.simd)
        for i in range(g.kh):
            for k in range(steps):
                chunk = row[k * fold.simd:(k + 1) * fold.simd]
                span.append([(i * g.dh, col, c) for col, c in chunk] + [(-1, 0, 0)] * (fold.simd - len(chunk)))
        return span, g.kh * steps, 1
    for i in range(g.kh):  # SIMD channels of one cell (one group: cg == c)
        for j in range(g.kw):
            for k in range(g.cg // fold.simd):
                span.append([(i * g.dh, j * g.dw, k * fold.simd + s) for s in range(fold.simd)])
    return span, (g.cg // fold.simd) * g.kh * g.kw, 1


def _runs(table, c: int) -> tuple[list[int], list[int], list[int]]:
    """Each window vector as a run of the line buffer's row (stored ``column * c +
    channel``): its row in the window, the first lane's offset from the pixel's first
    column, and its lanes (the rest are zeros). The lanes of every fold are consecutive
    there (channels of one cell, or a row fold's inputs of one kernel row: no column
    dilation), so a lane's bank of the row partitioned by lanes is its own."""
    tr, ts, tn = [], [], []
    for v in table:
        live = [(i, j * c + ch) for i, j, ch in v if i >= 0]
        if not live or any(i != live[0][0] for i, _ in live) or any(
                o != live[0][1] + k for k, (_, o) in enumerate(live)) or any(i >= 0 for i, _, _ in v[len(live):]):
            raise BackendError("internal: a window vector that is not one run of a line buffer row")
        tr.append(live[0][0])
        ts.append(live[0][1])
        tn.append(len(live))
    return tr, ts, tn


def _mac_weights(w: np.ndarray, g, fold, table) -> tuple[np.ndarray, int]:
    """Weights as ``[blocks * taps][PE][SIMD]`` (``SIMD`` 1 when depthwise) for the vectors
    of ``table``, zeros for missing lanes and the padding of a shorter last block."""
    taps = len(table) if not fold.depthwise else g.kh * g.kw
    blocks = -(-g.m // fold.pe)
    simd = 1 if fold.depthwise else fold.simd
    out = np.zeros((blocks * taps, fold.pe, simd), dtype=np.int64)
    for b in range(blocks):
        for t in range(taps):
            vec = table[b * taps + t] if fold.depthwise else table[t]
            for p in range(fold.pe):
                m = b * fold.pe + p
                if m >= g.m:
                    continue
                for s, (i, j, c) in enumerate(vec):
                    if i < 0:
                        continue
                    if fold.depthwise:
                        if s == p:
                            out[b * taps + t, p, 0] = w[m, 0, i // g.dh, j // g.dw]
                    else:
                        out[b * taps + t, p, s] = w[m, c, i // g.dh, j // g.dw]
    return out, blocks


def _geometry_rows(g) -> tuple[int, int, int]:
    """The window's height and the padded plane's rows and columns a generator walks."""
    span_h, span_w = (g.kh - 1) * g.dh + 1, (g.kw - 1) * g.dw + 1
    hr = max(g.h + g.pt + g.pb, (g.oh - 1) * g.sh + span_h)
    wr = max(g.w + g.pl + g.pr, (g.ow - 1) * g.sw + span_w)
    return span_h, hr, wr


def _window_engine(q: Graph, node, e, ctx: dict) -> dict:
    g, fold = e.geometry, e.fold
    kind = "max" if e.kind == "max" else "mac"
    table, taps, eb = _window_table(g, fold, kind)
    span_h, hr, wr = _geometry_rows(g)
    vec = len(table[0])
    tr, ts, tn = _runs(table, g.c)
    d = {"kind": f"{kind}_window", "g": g, "taps": taps, "eb": eb, "vec": vec, "span_h": span_h, "hr": hr,
         "wr": wr, "nr": span_h + 1, "flat": fold.flat, "in_ctype": ctx["in_ctype"], "out_ctype": ctx["out_ctype"],
         "tr": rows(tr), "ts": rows(ts), "tn": rows(tn), "n_vectors": len(table), "pad": 0}
    if kind == "max":
        _, p, _, _ = step_params(q, node, e.name)
        d.update(init=p["init"], lo=p["lo"], hi=p["hi"], pad=p["init"], loop=max(taps, g.c))
        return d
    # (a Dense is a 1x1 window over one pixel; a 1-D Conv one of height 1)
    w = np.asarray(q.consts[node.inputs[1]], dtype=np.int64).reshape(g.m, g.cg, g.kh, g.kw)
    b = np.asarray(q.consts[node.inputs[2]], dtype=np.int64)
    wl, blocks = _mac_weights(w, g, fold, table)
    mult, shift = requant_params(node, q)
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (g.m,))
    _, p, _, _ = step_params(q, node, e.name)
    acc_width = int(node.attr("acc_width"))
    valid = [min(fold.pe, g.m - k * fold.pe) for k in range(blocks)]
    d.update(pe=fold.pe, simd=1 if fold.depthwise else fold.simd, depthwise=fold.depthwise, blocks=blocks,
             loop=max(taps, fold.pe), w_rows=rows(wl.reshape(-1), fold.pe * wl.shape[2]),
             w_ctype=p["w_ctype"], b_rows=rows(np.concatenate([b, np.zeros(blocks * fold.pe - g.m, np.int64)])),
             b_ctype=p["b_ctype"], acc_width=acc_width, acc_ctype=p["acc_ctype"],
             mult=None if np.all(mult == 1) else rows(mult),
             mult_ctype=c_int_type(int(mult.max()).bit_length() + 1, True),
             shift=shift, even=ties_to_even(node, shift), lo=p["lo"], hi=p["hi"], valid=valid,
             multiplies=fold.multipliers, mul_impl="fabric" if (e.lut_mul or fold.lut) else "dsp")
    return d


# the stream form's process builders, one per op: ``f(q, node, engine, ctx) -> dict`` (the
# template stream_<kind>.j2 renders it), or None when this node needs the array form
LOWERINGS = Lowerings("hls-stream")


@LOWERINGS.lowers("Conv")
def _conv(q: Graph, node, e, ctx: dict) -> dict | None:
    g = e.geometry
    if not (e.fold.depthwise or e.fold.flat or (g.cg == g.c and g.mg == g.m)):
        return None  # grouped convolutions: the array form
    return _window_engine(q, node, e, ctx)


LOWERINGS.lowers("Dense", "MaxPool")(_window_engine)


@LOWERINGS.lowers("GlobalAveragePool")
def _gap(q: Graph, node, e, ctx: dict) -> dict:
    _, p, _, _ = step_params(q, node, e.name)
    return {"kind": "gap", "c": p["c"], "n": p["n"], "lo": p["lo"], "hi": p["hi"], **ctx}


@LOWERINGS.lowers("Relu")
def _relu(q: Graph, node, e, ctx: dict) -> dict:
    _, p, _, _ = step_params(q, node, e.name)
    return {"kind": "relu", "size": p["size"], "shift": p["shift"], "lo": p["lo"], "hi": p["hi"], **ctx}


@LOWERINGS.lowers("Add")
def _add(q: Graph, node, e, ctx: dict) -> dict | None:
    _, p, _, acts = step_params(q, node, e.name)
    if len(acts) != 2:
        return None  # an Add of a constant: the array form
    return {"kind": "add", "p": p, "size": p["size"], **ctx}


@LOWERINGS.lowers("Reshape")
def _view(q: Graph, node, e, ctx: dict) -> None:
    raise BackendError("internal: a Reshape is no engine")  # the planner passes its stream on


STREAM_OPS = LOWERINGS.ops()


def stream_design(q: Graph, parallelism) -> dict:
    """The processes and streams of the stream form, or ``{"array": why}`` when the graph
    needs the array form (an op, a layout or a fold this form does not implement; a
    folding the engine graph refuses)."""
    ops = sorted({n.op for n in q.topo()} - STREAM_OPS)
    if ops:
        return {"array": f"the stream form does not implement {', '.join(ops)}"}
    try:
        plan, estimate, verilog_period = _plan(q, parallelism)
    except BackendError as e:
        return {"array": f"the engine graph refuses the folding: {e}"}
    producer = {n.outputs[0]: n for n in q.topo()}
    stream_ctype = {0: _ctype(q, q.inputs[0])}
    procs = []
    for e in plan.engines:
        if producer.get(e.tensor) is None or producer[e.tensor].op != e.op:
            return {"array": "the engine graph reorders a tensor (the stream form does not)"}
        stream_ctype[e.out_stream] = _ctype(q, e.tensor)
    for e in plan.engines:
        node = producer[e.tensor]
        ctx = {"in_ctype": stream_ctype[e.in_streams[0]], "out_ctype": stream_ctype[e.out_stream],
               "b_ctype": stream_ctype[e.in_streams[-1]]}
        d = LOWERINGS[node.op](q, node, e, ctx)
        if d is None:
            return {"array": f"the stream form does not implement node {e.name} ({node.op}) as it is"}
        d.update(name=e.name, op=node.op, tensor=e.tensor, layout=list(e.layout), trace=len(procs),
                 ins=[f"s{sid}" for sid in e.in_streams], out=f"s{e.out_stream}", form=_form(d))
        procs.append(d)
    # fan-out: a dup process per stream with several readers; reader k reads s<id>_<k>
    fifo_depth = {(f["engine"], f["port"]): f["depth"] for f in plan.fifos}
    chans = [{"name": "s0", "ctype": stream_ctype[0], "depth": DEPTH, "why": ""}]
    dups = []
    for s in plan.streams:
        if s.id != 0:
            # a stream with one reader: the skip FIFO of the join port it feeds, if any
            skip = fifo_depth.get(s.readers[0]) if len(s.readers) == 1 else None
            chans.append({"name": f"s{s.id}", "ctype": stream_ctype[s.id], "depth": skip or DEPTH,
                          "why": SKIP if skip else ""})
        if len(s.readers) > 1:
            outs = []
            for k, (ei, port) in enumerate(s.readers):
                name = f"s{s.id}_{k}"
                chans.append({"name": name, "ctype": stream_ctype[s.id], "depth": fifo_depth.get((ei, port), DEPTH),
                              "why": SKIP if (ei, port) in fifo_depth else ""})
                outs.append(name)
                if ei >= 0:
                    proc = procs[ei]
                    proc["ins"][plan.engines[ei].ports.index(port)] = name
            dups.append({"kind": "dup", "name": f"dup_s{s.id}", "in": f"s{s.id}", "outs": outs,
                         "form": f"copies a stream for its {len(outs)} readers, one value a cycle",
                         "n": int(np.prod(q.shape(_tensor_of(plan, q, s.id)))), "ctype": stream_ctype[s.id],
                         "after": -1 if s.id == 0 else next(i for i, e in enumerate(plan.engines) if e.out_stream == s.id)})
    order = [d for d in dups if d["after"] == -1]
    for i, p in enumerate(procs):
        order.append(p)
        order += [d for d in dups if d["after"] == i]
    out_read = f"s{plan.out_stream}"
    for s in plan.streams:  # the top output is the last reader of a forked stream
        if s.id == plan.out_stream and len(s.readers) > 1:
            out_read = f"s{s.id}_{[r[0] for r in s.readers].index(-1)}"
    n_in = int(np.prod(q.shape(q.inputs[0])))
    n_out = int(np.prod(q.shape(q.outputs[0])))
    in_shape = tuple(q.shape(q.inputs[0]))
    # the input array (the IR's order) read in the stream's order (channels-last)
    perm = list(plan.in_perm)
    order_idx = np.arange(n_in).reshape(in_shape).transpose(perm).reshape(-1)
    folding = plan.folding
    text = folding.get("mode", "")
    if "period_cycles" in folding:
        text += f", period {folding['period_cycles']} cycles"
    arch = folding.get("arch", "ecp5")
    layers = []
    for p, e in zip(procs, plan.engines):
        row = {"name": p["name"], "op": p["op"], "tensor": p["tensor"], "layout": p["layout"], "cycles": _cycles(p),
               "verilog_compute_cycles": e.timing().compute_cycles}
        if p["kind"] == "mac_window":
            row.update(pe=p["pe"], simd=p["simd"], depthwise=p["depthwise"], row_fold=p["flat"],
                       multipliers=p["multiplies"],
                       verilog_multipliers=e.fold.multipliers)
        layers.append(row)
    cycles = [ly["cycles"] for ly in layers] + [d["n"] for d in dups] + [n_in, n_out]
    totals = {"multipliers": sum(ly.get("multipliers", 0) for ly in layers), "period_cycles": max(cycles),
              "verilog_period_cycles": verilog_period,
              "estimate": {k: estimate[k] for k in ("dsp", "bram", "luts", "ffs")}, "arch": arch}
    return {"processes": order, "channels": chans, "in_index": rows(order_idx), "n_in": n_in, "n_out": n_out,
            "out_stream": out_read, "folding": folding, "folding_text": text, "vec_depth": DEPTH,
            "out_ctype": _ctype(q, q.outputs[0]), "layers": layers, "totals": totals,
            "types": element_types([*stream_ctype.values(), _ctype(q, q.outputs[0])]),
            "axis": _axis(q, perm, n_in, n_out)}


def _cycles(d: dict) -> int:
    """Cycles a frame takes in the layer's processes (the slower of a window engine's
    two), each pipelined loop at one iteration a cycle."""
    if d["kind"] in ("mac_window", "max_window"):
        g = d["g"]
        sends = g.ow * d["eb"] * d["taps"]
        rows_sent = {oh * g.sh + d["span_h"] for oh in range(g.oh)}
        swg = sum(max(d["wr"] * g.c if r < d["hr"] else 0, sends if r in rows_sent else 0)
                  for r in range(d["hr"] + 1))
        if d["kind"] == "max_window":
            return max(swg, g.oh * g.ow * d["loop"] + g.c)
        return max(swg, g.oh * g.ow * d["blocks"] * d["loop"] + d["valid"][-1])
    if d["kind"] == "gap":
        return d["c"] * d["n"] + 2 * d["c"]
    return d["size"]


def _plan(q: Graph, parallelism):
    """The engine graph with the Verilog target's folding, the Verilog's resource estimate
    of it and its period: a graph of Dense layers only is the Dense chain there
    (:func:`.verilog.dense_folding`: its PE and SIMD become row folds, which compute the
    same), anything else the engine graph."""
    if all(n.op in DENSE_CHAIN for n in q.topo()):
        hw = lower(q, "verilog")
        par, decision, estimate, period = dense_folding(hw, parallelism)
        folds = {ly.name: Fold(pe, simd, flat=True) for ly, (pe, simd) in zip(hw.layers, par)}
        plan = plan_engines(q, decision, folds)
        if {e.name for e in plan.engines if e.kind == "mac"} != set(folds):
            raise BackendError("the Dense chain's layers are not the engine graph's")
        return plan, estimate, period
    plan = plan_engines(q, parallelism)
    forks = [{"readers": len(s.readers)} for s in plan.streams if len(s.readers) > 1]
    n_out = int(np.prod(q.shape(q.outputs[0])))
    estimate = design_estimate(plan.engines, forks, plan.fifos, n_out, plan.folding.get("arch", "ecp5"))[1]
    return plan, estimate, max(e.timing().frame_cycles for e in plan.engines)


def _axis(q: Graph, perm: list[int], n_in: int, n_out: int) -> dict:
    """The AXI4-Stream top's data layout, the Verilog wrapper's (:func:`.rtl.axis_wrapper`):
    TDATA widths in whole bytes, an element a beat, the input channels last."""
    in_t, out_t = q.qtype(q.inputs[0]), q.qtype(q.outputs[0])
    out_bits = tdata_bits(out_t.width)
    return {"xw": in_t.width, "in_bits": tdata_bits(in_t.width), "in_signed": in_t.signed,
            "out_bits": out_bits, "out_signed": out_t.signed, "in_order": perm,
            "n_in": n_in, "n_out": n_out, "in_mask": hex((1 << in_t.width) - 1),
            "out_mask": hex((1 << out_bits) - 1), "keep": hex((1 << out_bits // 8) - 1)}


def _form(d: dict) -> str:
    """What a process is, for the source's header comment."""
    if d["kind"] == "mac_window":
        lanes = f"PE {d['pe']} x SIMD {d['simd']}" if not d["depthwise"] else f"PE {d['pe']} (depthwise)"
        return (f"window generator + matrix-vector unit, {lanes}: {d['multiplies']} multiplies an iteration, "
                f"{d['blocks']} block(s) x {d['loop']} iterations a pixel")
    if d["kind"] == "max_window":
        return f"window generator + max unit, {d['taps']} cells of {d['g'].c} channels a pixel"
    return {"gap": "a sum per channel, one value a cycle", "relu": "one value a cycle",
            "add": "one value of each operand a cycle"}[d["kind"]]


def _tensor_of(plan, q: Graph, sid: int) -> str:
    if sid == 0:
        return q.inputs[0]
    return next(e.tensor for e in plan.engines if e.out_stream == sid)


__all__ = ["DEPTH", "LOWERINGS", "STREAM_OPS", "element_types", "stream_design"]
