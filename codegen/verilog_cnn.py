"""Verilog for simple CNN chains: one frame engine per step, chained by valid/ready.

Scope (everything else is refused, naming the node, before any file is written): a chain
(one input, one output, each step feeding the next) of

* Conv (2-D, or 1-D as (C, 1, L)): stride 1, symmetric zero pads, no dilation, groups 1
  or depthwise (``groups == C``), fused relu;
* MaxPool: kernel == stride, no pads;
* GlobalAveragePool: ``y = (2*sum + n) // (2*n)``, floor division, done exactly by a
  restoring divider on a dividend made non-negative by adding a multiple of ``2*n``;
* Reshape: no hardware;
* Dense: a 1x1 "conv" on (n_in, 1, 1).

Stream order: every stream (top input, between engines, top output) carries one element
per beat in the IR's flat per-sample order, i.e. CHW. Each engine holds its whole input
tensor in a frame memory (``hls_templates/verilog/window.v.j2``), so the top accepts
exactly ``x_int.reshape(N, -1)`` and the Dense after GAP/Reshape sees the golden flat
order with no layout step. Folding: PE = SIMD = 1 (one multiplier per conv/dense engine,
one tap per cycle).

Timing per engine (downstream ready): load ``n_in`` beats (no faster than the upstream
engine computes); compute ``n_out * taps``
issue cycles plus a 3-cycle pipeline (GAP: plus ``nw + 1`` divider cycles per output,
during which issue stalls); the next frame's load starts once the last tap is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import Graph
from ..ir.fixed import signed_width_for
from .lower import BackendError, ModelIO, interface
from .naming import sanitize
from .program import _step_params
from .render import render
from .verilog import TOP, _bits, _hex, _shex, _type_info, _ulit, write_files

CNN_OPS = frozenset({"Conv", "MaxPool", "GlobalAveragePool", "Reshape", "Dense"})


@dataclass(frozen=True)
class CnnModel(ModelIO):
    """A quantized graph checked to be in scope: what :func:`write_cnn` renders."""

    graph: Graph = field(repr=False)
    macs: int = 0


def _refuse(node, why: str):
    raise BackendError(f"target 'verilog' cannot implement node {sanitize(node.name)!r} (op {node.op}): {why}")


def _chain(q: Graph) -> list:
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    nodes = q.topo()
    for n in nodes:
        if n.op not in CNN_OPS:
            _refuse(n, f"supported ops: {', '.join(sorted(CNN_OPS))} (Dense chains and simple CNN chains)")
    cur = q.inputs[0]
    for n in nodes:
        acts = [t for t in n.inputs if not q.is_const(t)]
        if acts != [cur] or len(n.outputs) != 1:
            _refuse(n, "is not part of a single chain (the Verilog backend streams chains only)")
        cur = n.outputs[0]
    if cur != q.outputs[0]:
        raise BackendError("target 'verilog': the graph output is not the end of the chain")
    return nodes


def _engine(q: Graph, node, name: str, index: int) -> dict:
    kind_c, p, macs, _ = _step_params(q, node, name)
    x, y = node.inputs[0], node.outputs[0]
    x_t, o_t = q.qtype(x), q.qtype(y)
    e: dict = {"name": name, "op": node.op, "module": f"nnf_{name}", "index": index, "next": index + 1,
               "in_type": str(x_t), "out_type": str(o_t), "macs": macs}
    if node.op == "Dense":
        w = np.asarray(q.consts[node.inputs[1]], np.int64)
        p = {**p, "c": w.shape[1], "h": 1, "w": 1, "kh": 1, "kw": 1, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
             "pt": 0, "pl": 0, "pb": 0, "pr": 0, "oh": 1, "ow": 1, "m": w.shape[0], "cg": w.shape[1], "mg": w.shape[0]}
        w = w.reshape(w.shape[0], w.shape[1], 1, 1)
        kind = "mac"
    elif node.op == "Conv":
        w = np.asarray(q.consts[node.inputs[1]], np.int64)
        if len(w.shape) == 3:
            w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
        if (p["sh"], p["sw"], p["dh"], p["dw"]) != (1, 1, 1, 1):
            _refuse(node, "has a stride or dilation other than 1 (Verilog conv engines take stride 1, no dilation)")
        if (p["pt"], p["pl"]) != (p["pb"], p["pr"]):
            _refuse(node, "has asymmetric pads")
        if not (p["groups"] == 1 or (p["groups"] == p["c"] and p["cg"] == 1)):
            _refuse(node, f"has groups={p['groups']} (Verilog conv engines take groups 1 or depthwise)")
        kind = "mac"
    elif node.op == "MaxPool":
        if (p["kh"], p["kw"]) != (p["sh"], p["sw"]) or any(p[k] for k in ("pt", "pl", "pb", "pr")) \
                or (p["dh"], p["dw"]) != (1, 1):
            _refuse(node, "needs kernel == stride, no pads and no dilation in the Verilog backend")
        if (p["oh"] * p["kh"], p["ow"] * p["kw"]) != (p["h"], p["w"]) and node.attr("ceil_mode"):
            _refuse(node, "uses ceil_mode with a partial window")
        if o_t.frac != x_t.frac:
            _refuse(node, "changes the fixed-point format")
        p = {**p, "m": p["c"], "cg": 1, "mg": 1}
        kind = "max"
    else:  # GlobalAveragePool
        shp = q.shape(x)
        c, hh, ww = (shp[0], 1, shp[1]) if len(shp) == 2 else tuple(shp)
        if len(shp) not in (2, 3) or o_t.frac != x_t.frac:
            _refuse(node, "needs a (C, L) or (C, H, W) input and the same format in and out")
        p = {**p, "c": c, "h": hh, "w": ww, "kh": hh, "kw": ww, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
             "pt": 0, "pl": 0, "oh": 1, "ow": 1, "m": c, "cg": 1, "mg": 1}
        kind = "gap"
    if kind == "gap" and p["oh"] * p["ow"] != 1:
        raise BackendError("internal: GAP geometry")
    for k in ("c", "h", "w", "kh", "kw", "sh", "sw", "dh", "dw", "pt", "pl", "oh", "ow", "m", "cg", "mg"):
        e[k] = int(p[k])
    n_in, n_out = e["c"] * e["h"] * e["w"], e["m"] * e["oh"] * e["ow"]
    if n_in != int(np.prod(q.shape(x))) or n_out != int(np.prod(q.shape(y))):
        raise BackendError(f"internal: engine {name} sizes do not match the graph")
    e.update(kind=kind, n_in=n_in, n_out=n_out, taps=e["cg"] * e["kh"] * e["kw"])
    xw, ow = x_t.width, o_t.width
    xe = xw + (0 if x_t.signed else 1)  # the input as a signed value
    # one signed width for every counter, address and window coordinate
    big = max(n_in, n_out, e["m"] * e["taps"], e["h"] + e["kh"] + e["pt"], e["w"] + e["kw"] + e["pl"], e["c"] + e["cg"])
    qw = big.bit_length() + 2
    e.update(q=qw, q_m1=qw - 1, xw=xw, xw_m1=xw - 1, ow_m1=ow - 1, ib=_bits(n_in), ib_m1=_bits(n_in) - 1,
             n_in_m1=n_in - 1, i_zero=_ulit(_bits(n_in), 0), i_one=_ulit(_bits(n_in), 1),
             i_last=_ulit(_bits(n_in), n_in - 1), zero_q=_shex(qw, 0), one_q=_shex(qw, 1))
    for k, v in (("kw_last", e["kw"] - 1), ("kh_last", e["kh"] - 1), ("cg_last", e["cg"] - 1),
                 ("ow_last", e["ow"] - 1), ("oh_last", e["oh"] - 1), ("m_last", e["m"] - 1),
                 ("mg_last", e["mg"] - 1), ("sh_q", e["sh"]), ("sw_q", e["sw"]), ("dh_q", e["dh"]),
                 ("dw_q", e["dw"]), ("pt_q", e["pt"]), ("pl_q", e["pl"]), ("h_q", e["h"]), ("w_q", e["w"]),
                 ("cg_q", e["cg"]), ("khkw_q", e["kh"] * e["kw"]), ("kw_q", e["kw"])):
        e[k] = _shex(qw, v)
    e["x_ext"] = None
    lo, hi = int(p["lo"]), int(p["hi"])
    e.update(lo=lo, hi=hi, lo_o=_hex(ow, lo), hi_o=_hex(ow, hi))
    if kind == "mac":
        b = np.asarray(q.consts[node.inputs[2]], np.int64)
        aw = int(p["acc_width"])
        x_mag = max(abs(x_t.lo), abs(x_t.hi))
        bound = int(np.max(np.abs(b) + np.abs(w).reshape(w.shape[0], -1).sum(axis=1) * x_mag))
        if bound > (1 << (aw - 1)) - 1:
            raise BackendError(f"layer {name}: acc_width {aw} cannot hold the bound {bound} of its partial sums")
        wwid = signed_width_for(int(w.min()), int(w.max())) if w.size else 2
        pw = xe + wwid
        shift = int(p["shift"])
        e.update(aw=aw, aw_m1=aw - 1, ww_m1=wwid - 1, n_w_m1=w.size - 1, m_m1=e["m"] - 1,
                 wb=_bits(w.size), wb_m1=_bits(w.size) - 1, mb=_bits(e["m"]), mb_m1=_bits(e["m"]) - 1,
                 wrom=[_hex(wwid, int(v)) for v in w.reshape(-1)], brom=[_hex(aw, int(v)) for v in b],
                 pw_m1=pw - 1, xp_ext=_ext(pw - xw, x_t.signed, f"x_q[{xw - 1}]"),
                 wp_ext=_ext(pw - wwid, True, f"w_q[{wwid - 1}]"), p_zero=_shex(pw, 0), shift=shift,
                 prod_mode="extend" if pw < aw else ("same" if pw == aw else "trunc"),
                 prod_ext=_ext(aw - pw, True, f"prod[{pw - 1}]"),
                 x_ext=_ext(aw - xw, x_t.signed, f"x_q[{xw - 1}]"),
                 rule=f"y = sat(round_half_up((b + sum x*w) >> {shift})), accumulator s{aw}")
        if aw < xw + 1:
            raise BackendError(f"internal: layer {name} accumulator narrower than its input")
        cw = max(aw + 1, aw - shift, ow + 1, abs(lo).bit_length() + 1, abs(hi).bit_length() + 1) + 1
        e.update(cw_m1=cw - 1, cw_ext=_ext(cw - aw, True, f"acc[{aw - 1}]"),
                 rnd_c=_shex(cw, (1 << (shift - 1)) if shift > 0 else 0), lo_c=_shex(cw, lo), hi_c=_shex(cw, hi))
    elif kind == "max":
        aw = xe + 1
        e.update(aw=aw, aw_m1=aw - 1, x_ext=_ext(aw - xw, x_t.signed, f"x_q[{xw - 1}]"),
                 rule="y = max over the window")
        cw = max(aw, abs(lo).bit_length() + 1, abs(hi).bit_length() + 1) + 1
        e.update(cw_m1=cw - 1, cw_ext=_ext(cw - aw, True, f"acc[{aw - 1}]"), lo_c=_shex(cw, lo), hi_c=_shex(cw, hi))
    else:
        n = e["h"] * e["w"]
        aw = max(signed_width_for(n * x_t.lo, n * x_t.hi), xe + 1)
        off = -x_t.lo if x_t.lo < 0 else 0
        div = 2 * n
        nconst = n + div * off
        num_max = 2 * n * x_t.hi + nconst
        num_min = 2 * n * x_t.lo + nconst
        if num_min < 0:
            raise BackendError("internal: GAP dividend offset")
        nw = max(2, num_max.bit_length())
        sw = max(aw + 2, nw + 1, nconst.bit_length() + 2)
        rw = (2 * div - 1).bit_length()
        q_max = num_max // div
        yw = max(nw + 2, off.bit_length() + 2, abs(lo).bit_length() + 2, abs(hi).bit_length() + 2)
        db = _bits(nw)
        e.update(aw=aw, aw_m1=aw - 1, x_ext=_ext(aw - xw, x_t.signed, f"x_q[{xw - 1}]"), acc_zero=_shex(aw, 0),
                 n=n, div=div, off=off, nw=nw, nw_m1=nw - 1, nw_m2=nw - 2, sw_m1=sw - 1,
                 num_ext=_ext(sw - aw, True, f"acc[{aw - 1}]"), two_s=_shex(sw, 2), nconst_s=_shex(sw, nconst),
                 rw_m1=rw - 1, rw_m2=rw - 2, div_r=_ulit(rw, div), yw_m1=yw - 1, off_y=_shex(yw, off),
                 lo_y=_shex(yw, lo), hi_y=_shex(yw, hi), db_m1=db - 1, d_zero=_ulit(db, 0), d_one=_ulit(db, 1),
                 d_last=_ulit(db, nw - 1), q_zero_n=_ulit(nw, 0), r_zero=_ulit(rw, 0),
                 rule=f"y = floor((2*sum + {n}) / {div}), quotient up to {q_max}")
    e["timing"] = _timing(e)
    return e


def _ext(n: int, signed: bool, bit: str) -> str:
    if n <= 0:  # not used by the template in that case
        return ""
    return f"{{{n}{{{bit}}}}}" if signed else f"{n}'d0"


def _timing(e: dict) -> dict:
    """Cycles of one frame (downstream always ready)."""
    per_out = e["taps"] + (e["nw"] + 2 if e["kind"] == "gap" else 0)
    compute = e["n_out"] * per_out
    # last input beat -> last output beat: first issue one cycle after the load ends, the
    # last tap leaves stage 2 two cycles after its issue, the output register one later
    return {"compute_cycles": compute, "frame_cycles": e["n_in"] + compute + 3,
            "in_to_out": compute + 3}


def _engines(q: Graph) -> list[dict]:
    nodes = _chain(q)
    compute = [n for n in nodes if n.op != "Reshape"]
    if not compute:
        raise BackendError("the model has no layer to implement")
    used: set[str] = set()
    return [_engine(q, n, sanitize(n.name, used, prefix="layer"), i) for i, n in enumerate(compute)]


def lower_cnn(q: Graph) -> CnnModel:
    """Check the whole graph against the scope (every engine's numbers are computed, so
    every refusal happens here, before any file is written)."""
    engines = _engines(q)
    return CnnModel(**interface(q), graph=q, macs=sum(e["macs"] for e in engines))


def write_cnn(model: Graph | CnnModel, outdir: Path) -> dict:
    """Render every engine and the top, then write them with ``verilog_info.json``."""
    q = model.graph if isinstance(model, CnnModel) else model
    engines = _engines(q)
    in_t, out_t = q.qtype(q.inputs[0]), q.qtype(q.outputs[0])
    n_in, n_out = int(np.prod(q.shape(q.inputs[0]))), int(np.prod(q.shape(q.outputs[0])))
    files = {f"{e['module']}.v": render("verilog", "window.v.j2", E=e) for e in engines}
    ob = _bits(n_out)
    top_ctx = {"top": TOP, "layers": engines, "n_layers": len(engines), "xw": in_t.width, "ow": out_t.width,
               "n_in": n_in, "n_out": n_out, "xw_m1": in_t.width - 1, "ow_m1": out_t.width - 1,
               "ob_m1": ob - 1, "ob": ob, "o_zero": _ulit(ob, 0), "o_one": _ulit(ob, 1),
               "o_last": _ulit(ob, n_out - 1), "in_type": str(in_t), "out_type": str(out_t)}
    files[f"{TOP}.v"] = render("verilog", "top.v.j2", **top_ctx)
    # an engine loads no faster than its upstream engine computes
    for a, b in zip(engines, engines[1:]):
        b["timing"]["frame_cycles"] = max(b["n_in"], a["timing"]["compute_cycles"]) + b["timing"]["compute_cycles"] + 3
    ii = max(e["timing"]["frame_cycles"] for e in engines)
    latency = (n_in - 1) + sum(e["timing"]["in_to_out"] for e in engines)
    info = {
        "top": TOP, "model": sanitize(q.name, prefix="model"), "parallelism": "sequential-frame",
        "n_in": n_in, "n_out": n_out, "in_type": _type_info(in_t), "out_type": _type_info(out_t),
        "stream_order": "CHW (the IR's flat per-sample order), one element per beat",
        "layers": [{"name": e["name"], "op": e["op"], "module": e["module"], "file": f"{e['module']}.v",
                    "n_in": e["n_in"], "n_out": e["n_out"], "taps": e["taps"], "pe": 1, "simd": 1,
                    "latency_cycles": e["timing"]["in_to_out"], "ii_cycles": e["timing"]["frame_cycles"], "multipliers": int(e["kind"] == "mac"),
                    "acc_width": e["aw"], "frame_memory_words": e["n_in"], **e["timing"]} for e in engines],
        "totals": {"latency_cycles": latency, "ii_cycles": ii,
                   "multipliers": sum(int(e["kind"] == "mac") for e in engines),
                   "macs": sum(e["macs"] for e in engines)},
        "timing_notes": "estimates: ii_cycles = the slowest engine's load (no faster than its upstream "
                        "engine computes) + compute + 3 per frame (an engine does not load while it computes); latency_cycles = sum of the engines' compute + 3",
        "files": sorted(files) + ["verilog_info.json"],
    }
    return write_files(Path(outdir), files, info)
