"""Window engines for the Verilog backend: Conv, Dense (a 1x1 conv), MaxPool, AveragePool,
GlobalMaxPool and GlobalAveragePool over a circular buffer of input rows
(``hls_templates/verilog/line.v.j2``), reading and writing channels-last streams.

One template, three kinds, on 1-D ``(C, L)`` (as ``(C, 1, L)``) and 2-D ``(C, H, W)`` frames
(Dense and the global pools read their input as one row), with any kernel, stride,
dilation, pads (asymmetric too) and, for pools, ceil mode:

* ``mac`` (Conv with any groups, depthwise included, and Dense): y = requant(b + sum x*w);
* ``max`` (MaxPool, GlobalMaxPool): the maximum over the window's input taps;
* ``avg`` (AveragePool with count_include_pad 0 or 1, GlobalAveragePool): the golden
  floor((2*sum + cnt) / (2*cnt)), cnt counted per output position, by a restoring divider.

Refused: inputs of another rank, and pools that change the fixed-point format.

:func:`window_engine` checks one node against what the engine implements (refusing with
the node's name otherwise) and computes every number the template prints. The graph-level
part (streams, forks, the top) is in :mod:`.verilog_cnn`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..ir import Graph
from ..ir.fixed import signed_width_for
from ..ir.ops.dense import requant_params, ties_to_even
from .lower import BackendError
from .program import step_params
from .engines import EN_LANES, Timing, WindowEngine, dsp_registers, en_copies
from .estimate import bram_bank, rom_bank
from .folding import Fold, Geometry, compute_cycles, row_len, valid
from .rtl import NARROW_BITS, bits, channel_mult, check_accumulator, ext, hexlit, pack, product, product_split, shex, ulit
from .verilog_streams import refuse


def _global_geometry(q: Graph, node, p: dict) -> dict:
    """A global pool as one window covering the whole frame, read as (C, 1, prod(spatial))."""
    shp = q.shape(node.inputs[0])
    c, hh, ww = int(shp[0]), 1, int(np.prod(shp[1:]))
    return {**p, "c": c, "h": hh, "w": ww, "kh": hh, "kw": ww, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
            "pt": 0, "pl": 0, "pb": 0, "pr": 0, "oh": 1, "ow": 1, "m": c, "cg": 1, "mg": 1,
            "cnt_h0": 0, "cnt_h1": hh, "cnt_w0": 0, "cnt_w1": ww}


def _counts(p: dict) -> np.ndarray:
    """Counted taps of every output position (the golden ``window_counts``, from the rows
    [cnt_h0, cnt_h1) and columns [cnt_w0, cnt_w1) a counted cell lies in)."""
    iy = (np.arange(p["oh"])[:, None] * p["sh"] + np.arange(p["kh"])[None, :] * p["dh"] - p["pt"])
    ix = (np.arange(p["ow"])[:, None] * p["sw"] + np.arange(p["kw"])[None, :] * p["dw"] - p["pl"])
    cy = ((iy >= p["cnt_h0"]) & (iy < p["cnt_h1"])).sum(axis=1)
    cx = ((ix >= p["cnt_w0"]) & (ix < p["cnt_w1"])).sum(axis=1)
    return cy[:, None] * cx[None, :]


def choose_simd(cg: int, parallelism: str) -> int:
    """Input channels a MAC engine multiplies per cycle when no fold is given (the
    ``sequential`` and ``parallel`` modes; ``balanced`` and the goals are folded by
    :mod:`.folding`): ``sequential`` 1, ``parallel`` all its channels per group."""
    if parallelism == "sequential":
        return 1
    if parallelism == "parallel":
        return cg
    raise ValueError(f"unknown parallelism {parallelism!r}: a MAC engine without a fold is sequential or parallel")


def _dense_geometry(q: Graph, node, p: dict, name: str) -> tuple[dict, np.ndarray]:
    """Dense as a 1x1 conv of a (C, 1, 1) frame."""
    w = np.asarray(q.consts[node.inputs[1]], np.int64)
    p = {**p, "c": w.shape[1], "h": 1, "w": 1, "kh": 1, "kw": 1, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
         "pt": 0, "pl": 0, "pb": 0, "pr": 0, "oh": 1, "ow": 1, "m": w.shape[0], "cg": w.shape[1], "mg": w.shape[0]}
    return p, w.reshape(w.shape[0], w.shape[1], 1, 1)


def _conv_geometry(q: Graph, node, p: dict, name: str) -> tuple[dict, np.ndarray]:
    """Any stride, dilation, pads (bottom/right pads only set the output size) and groups:
    the address generator walks output channel m of group m // mg over input channels
    [c0, c0 + cg)."""
    w = np.asarray(q.consts[node.inputs[1]], np.int64)
    if len(w.shape) == 3:
        w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
    if p["c"] != p["groups"] * p["cg"] or p["m"] != p["groups"] * p["mg"]:
        raise BackendError(f"internal: layer {name} group geometry")
    return p, w


def _pool_geometry(q: Graph, node, p: dict, name: str) -> tuple[dict, None]:
    return {**p, "m": p["c"], "cg": 1, "mg": 1}, None


def _whole_frame_geometry(q: Graph, node, p: dict, name: str) -> tuple[dict, None]:
    return _global_geometry(q, node, p), None


class Window(NamedTuple):
    """How :func:`window_engine` implements an op: its ``kind`` ("mac", "max" or "avg"),
    ``geometry(q, node, step parameters, name) -> (geometry, weights as (m, cg, kh, kw)
    or None)``, and whether it slides over a (C, L) or (C, H, W) input (else it reads its
    input as one frame: Dense, global pools)."""

    kind: str
    geometry: Callable
    sliding: bool


# every op the window engine implements
WINDOWS: dict[str, Window] = {
    "Dense": Window("mac", _dense_geometry, False), "Conv": Window("mac", _conv_geometry, True),
    "MaxPool": Window("max", _pool_geometry, True), "GlobalMaxPool": Window("max", _whole_frame_geometry, False),
    "AveragePool": Window("avg", _pool_geometry, True),
    "GlobalAveragePool": Window("avg", _whole_frame_geometry, False),
}
WINDOW_OPS = frozenset(WINDOWS)
_GEOMETRY_KEYS = ("c", "h", "w", "kh", "kw", "sh", "sw", "dh", "dw", "pt", "pl", "pb", "pr", "oh", "ow", "m", "cg", "mg")


def window_engine(q: Graph, node, name: str, parallelism: str = "sequential",
                  fold: Fold | None = None) -> WindowEngine:
    """One window engine: channels-last input and output streams and a circular buffer of
    input rows (``line.v.j2``). ``fold`` (a MAC engine): its PE x SIMD lanes
    (:mod:`.folding`), else SIMD from ``parallelism``."""
    x, y = node.inputs[0], node.outputs[0]
    x_t, o_t = q.qtype(x), q.qtype(y)
    if node.op not in WINDOWS:
        refuse(node, f"the window engine implements {', '.join(sorted(WINDOWS))}")
    win = WINDOWS[node.op]
    kind = win.kind
    if win.sliding and len(q.shape(x)) not in (2, 3):
        refuse(node, "needs a (C, L) or (C, H, W) input")
    if kind != "mac" and o_t.frac != x_t.frac:
        refuse(node, "changes the fixed-point format (a pool engine keeps it)")
    _, p, macs, _ = step_params(q, node, name)
    p, w = win.geometry(q, node, p, name)
    e: dict = {"template": "line.v.j2", "in_type": str(x_t), "out_type": str(o_t), "macs": macs,
               **{k: int(p[k]) for k in _GEOMETRY_KEYS}}
    n_in, n_out = e["c"] * e["h"] * e["w"], e["m"] * e["oh"] * e["ow"]
    if n_in != int(np.prod(q.shape(x))) or n_out != int(np.prod(q.shape(y))):
        raise BackendError(f"internal: engine {name} sizes do not match the graph")
    if kind != "mac" or fold is None:
        fold = Fold(1, choose_simd(e["cg"], parallelism) if kind == "mac" else 1)
    geometry = Geometry(**{k: e[k] for k in _GEOMETRY_KEYS})
    if kind == "mac" and not valid(geometry, fold):
        raise BackendError(f"internal: layer {name} cannot be folded as {fold}")
    e.update(kind=kind, n_in=n_in, n_out=n_out)
    rows, wspan_h = _counters(e, fold, x_t, o_t)
    _line_numbers(e, fold.simd, rows, wspan_h)
    if fold.flat:
        _row_numbers(e, fold, rows)
    _bram_numbers(e)
    lo, hi = int(p["lo"]), int(p["hi"])
    e.update(lo=lo, hi=hi, lo_o=hexlit(o_t.width, lo), hi_o=hexlit(o_t.width, hi))
    if kind == "mac":
        _mac(e, q, node, name, p, w, fold)
    elif kind == "max":
        _max(e, x_t, lo, hi)
    else:
        _avg(e, p, x_t, x_t.width, _signed_width(x_t), o_t.width, lo, hi)
    # pipeline stages between the issue of a tap and the output register, beyond the read and
    # the accumulate: the memory output and buffer registers, the operand, product and adder
    # stages, the registered per-channel multiply and the registered requantization of a MAC
    # engine, the two address stages
    e["pipe"] = 2 + (3 + len(e["tree"]) + (e["cm"] != "none") if kind == "mac" else 0) + 2
    mac = kind == "mac"
    numbers = {k: v for k, v in e.items() if k not in ("template", "n_in", "n_out", "macs")}
    return WindowEngine(e["template"], ("in",), n_in, n_out, Timing(**_timing(e, geometry, fold)), numbers,
                        multipliers=(0 if e["lut_mul"] else fold.multipliers) + fold.pe * e["rq_multipliers"] if mac else 0,
                        lut_multipliers=fold.multipliers if mac and e["lut_mul"] else 0, macs=macs,
                        frame_memory_words=e["line_words"], kind=kind, geometry=geometry, fold=fold,
                        lut_mul=e.get("lut_mul", False),
                        rq_multipliers=e.get("rq_multipliers", 0), pipe=e["pipe"])


def _room_bounds(qw: int, rows: int, h: int) -> dict[str, str]:
    """The loader's free-slot bounds (line.v.j2): oldest row + ``rows`` (the slots), one less
    for the next row, ``h`` less for a loader a frame ahead; their offsets and their values
    when the oldest row is 0."""
    offs = {"s": rows, "n": rows - 1, "sa": rows - h, "na": rows - h - 1}
    return {**{f"rows_{k}_q": shex(qw, v) for k, v in offs.items() if k != "s"},
            **{f"room_{k}0": shex(qw, v) for k, v in offs.items()}}


def _signed_width(t) -> int:
    """Bits of a ``t`` value read as a signed number."""
    return t.width + (0 if t.signed else 1)


def _counters(e: dict, fold: Fold, x_t, o_t) -> tuple[int, int]:
    """The lanes, counters, addresses and window coordinates of an engine (one signed width
    ``q`` for every counter, address and coordinate); returns the row buffer's rows (a
    power of two >= the rows a window spans + the stride) and the rows a window spans."""
    # SIMD lanes (MAC engines): input channel c lives in memory bank c % S (the row buffer's
    # words: :func:`_line_numbers`), so one read per bank gives S channels of one pixel; the
    # channel counters then count blocks of S channels. PE output lanes: output channels
    # mo*PE + p of a pixel are computed together (they read the same input channels;
    # depthwise: lane p reads input channel mo*PE + p, bank p); the output channel counters
    # count blocks of PE
    # A row fold (flat) instead reads S consecutive elements of a kernel row per step (the
    # tap counter kx counts steps), in ceil(m / PE) blocks of output channels
    simd, pe, dw, flat = fold.simd, fold.pe, fold.depthwise, fold.flat
    n_in, n_out = e["n_in"], e["n_out"]
    cgb = 1 if dw or flat else e["cg"] // simd
    blocks = -(-e["m"] // pe)
    mgb = blocks if flat else 1 if dw else e["mg"] // pe
    steps = -(-row_len(Geometry(**{k: e[k] for k in _GEOMETRY_KEYS})) // simd) if flat else e["kw"]
    e.update(taps=cgb * e["kh"] * steps, S=simd, lanes=list(range(simd)), PE=pe, depthwise=dw, blocks=blocks,
             cgb=cgb, flat=flat, steps=steps, rot=False, zinit=False, short=e["m"] % pe if flat else 0)
    if simd > 1:
        lb = bits(simd)
        e.update(lb_m1=lb - 1, j_zero=ulit(lb, 0), j_one=ulit(lb, 1), j_last=ulit(lb, simd - 1),
                 lane_lit=[ulit(lb, j) for j in range(simd)])
    xw = x_t.width
    # iy, ix reach from -pt / -pl up to (o-1)*s + (k-1)*d - p (past the end pads in ceil mode)
    span_h = (e["oh"] - 1) * e["sh"] + (e["kh"] - 1) * e["dh"] + 1
    span_w = (e["ow"] - 1) * e["sw"] + (e["kw"] - 1) * e["dw"] + 1
    wspan_h = (e["kh"] - 1) * e["dh"] + 1  # rows one window spans
    # slots: a power of two >= span + stride (the next output row's rows load while this one
    # computes), and >= the rows the last output row reads + the rows the next frame's
    # first output row reads (the next frame loads while the last row computes)
    last_need = e["h"] - ((e["oh"] - 1) * e["sh"] - e["pt"])
    first_need = min(e["h"], wspan_h - e["pt"])
    rows = 1 << max(1, (max(wspan_h + e["sh"], last_need + first_need) - 1).bit_length())
    big = max(n_in, n_out, e["m"] * e["taps"] + 1, e["h"] + span_h + e["pt"], e["w"] + span_w + e["pl"],
              e["h"] + e["pb"], e["w"] + e["pr"], e["c"] + e["cg"], e["kh"] * e["dh"], e["kw"] * e["dw"],
              e["h"] + rows + wspan_h, e["w"] * e["c"] + e["c"],
              rows * ((e["ow"] * e["sw"] + e["kw"] + e["pl"] + e["w"]) * e["c"] + 2 * simd) if flat else 0)
    qw = big.bit_length() + 2
    e.update(q=qw, q_m1=qw - 1, xw=xw, xw_m1=xw - 1, ow_m1=o_t.width - 1, zero_q=shex(qw, 0), one_q=shex(qw, 1))
    for k, v in (("sh_q", e["sh"]), ("sw_q", e["sw"]), ("dh_q", e["dh"]), ("dw_q", e["dw"]), ("pt_q", e["pt"]),
                 ("pl_q", e["pl"]), ("h_q", e["h"]), ("w_q", e["w"]), ("cg_q", cgb)):
        e[k] = shex(qw, v)
    # each tap counter's last value and its "at its last value" flag <c>_last: a register
    # stepped with the counter, its value after a wrap (``wrap``: the counter has one value)
    # and the counter's value before the last (``prev``); the counters start at 0
    e["lasts"] = []
    for c, v in (("kx", steps - 1), ("ky", e["kh"] - 1), ("ci", cgb - 1), ("mo", blocks - 1), ("mg", mgb - 1),
                 ("ox", e["ow"] - 1), ("oy", e["oh"] - 1)):
        wrap = "1'b1" if v == 0 else "1'b0"
        e["lasts"].append({"c": c, "flag": f"{c}_last", "last": shex(qw, v), "wrap": wrap,
                           "prev": shex(qw, max(v - 1, 0)), "reset": f"{c}_last <= {wrap};"})
    e["x_ext"] = None
    return rows, wspan_h


def _max(e: dict, x_t, lo: int, hi: int) -> None:
    """Numbers of the maximum. The golden maximum starts below every input (int64 min) and
    saturates: starting from min(input lo, output lo) gives the same result, also for a
    window made of padding alone; padded taps are skipped (never read, never compared)."""
    xw = x_t.width
    init = min(x_t.lo, lo)
    aw = max(_signed_width(x_t) + 1, signed_width_for(init, max(x_t.hi, 0)))
    e.update(aw=aw, aw_m1=aw - 1, x_ext=ext(aw - xw, x_t.signed, f"x_q[{xw - 1}]"), init_a=shex(aw, init),
             rule=f"y = max over the window's input taps, starting from {init}")
    cw = max(aw, abs(lo).bit_length() + 1, abs(hi).bit_length() + 1) + 1
    e.update(cw_m1=cw - 1, cw_ext=ext(cw - aw, True, f"acc[{aw - 1}]"), lo_c=shex(cw, lo), hi_c=shex(cw, hi))


def _mac(e: dict, q: Graph, node, name: str, p: dict, w: np.ndarray, fold: Fold) -> None:
    """Numbers of a MAC engine: y = requant(b + sum x*w), with the per-channel multipliers."""
    x_t, o_t = q.qtype(node.inputs[0]), q.qtype(node.outputs[0])
    xw = x_t.width
    b = np.asarray(q.consts[node.inputs[2]], np.int64)
    aw = int(p["acc_width"])
    check_accumulator(name, aw, b, w, x_t)
    if aw < xw + 1:
        raise BackendError(f"internal: layer {name} accumulator narrower than its input")
    wwid = signed_width_for(int(w.min()), int(w.max())) if w.size else 2
    pw = _signed_width(x_t) + wwid
    mult, shift = requant_params(node, q)
    shift = int(shift)
    if shift != int(p["shift"]):
        raise BackendError(f"internal: layer {name} requantization shift")
    cm = channel_mult(mult, aw, e["m"], name)
    qa = cm["qa"]
    # which operand, if any, is narrow enough for LUT products (None: multiplier blocks)
    e["lut_mul"] = product("p", "x", "x", xw, x_t.signed, "w", "w", wwid, True, pw, _narrow(fold, xw, wwid))[1]
    _weights(e, w, b, fold, x_t, wwid, aw, pw)
    e.update(pw_m1=pw - 1, p_zero=shex(pw, 0), shift=shift,
             prod_mode="extend" if pw < aw else ("same" if pw == aw else "trunc"),
             rule=(f"y = sat(round_half_up((b + sum x*w) >> {shift})), accumulator s{aw}; "
                   f"padded taps add 0" if cm["mode"] == "none" else
                   f"y = sat(round_half_up(((b + sum x*w) * m[c]) >> {shift})), accumulator s{aw}, "
                   f"m[c] the output channel's multiplier ("
                   + ("a power of two: a left shift" if cm["mode"] == "pow2" else f"{cm['mw']} bits")
                   + f"), product s{qa}; padded taps add 0"),
             cm=cm["mode"], rq_multipliers=int(cm["mode"] == "mult"),
             x_zero=ulit(xw, 0))
    e["dsp"] = dsp_registers(e["lut_mul"], pw)
    _adder_tree(e)
    even = ties_to_even(node, shift)
    if even:
        e["rule"] = e["rule"].replace("round_half_up", "round_half_even")
    _mac_requant(e, cm, aw, shift, o_t.width, even)


def row_weights(w: np.ndarray, fold: Fold, blocks: int, steps: int) -> np.ndarray:
    """A row fold's weight words, (mo, ky, step) in order: lane p*S + j holds output channel
    mo*PE + p and element step*S + j of kernel row ky (column (step*S + j) // cg, channel
    (step*S + j) % cg); past the row or the channels, 0."""
    m, cg, kh, kw = w.shape
    pe, simd = fold.pe, fold.simd
    row = np.zeros((blocks * pe, kh, steps * simd), np.int64)
    row[:m, :, :kw * cg] = w.transpose(0, 2, 3, 1).reshape(m, kh, kw * cg)  # (m, ky, kx*cg + c)
    return row.reshape(blocks, pe, kh, steps, simd).transpose(0, 2, 3, 1, 4).reshape(-1, pe * simd)


def _weights(e: dict, w: np.ndarray, b: np.ndarray, fold: Fold, x_t, wwid: int, aw: int, pw: int) -> None:
    """The weight and bias ROMs and each lane's product. ROM word (mo*cgb + cb)*kh*kw +
    ky*kw + kx holds, in lane p*S + j (bits [l*ww, (l+1)*ww)), the weight of output channel
    mo*PE + p and input channel cb*S + j (depthwise: lane p, its own channel); bias word mo:
    output channel mo*PE + p in lane p."""
    simd, pe, dw = fold.simd, fold.pe, fold.depthwise
    blocks, cgb, xw = e["blocks"], e["cgb"], x_t.width
    kh, kw = w.shape[2], w.shape[3]
    if fold.flat:
        wl = row_weights(w, fold, blocks, e["steps"])
        b = np.concatenate([b, np.zeros(blocks * pe - len(b), np.int64)])
    elif dw:
        wl = w.reshape(blocks, pe, kh, kw).transpose(0, 2, 3, 1).reshape(-1, pe)
    else:
        wl = w.reshape(blocks, pe, cgb, simd, kh, kw).transpose(0, 2, 4, 5, 1, 3).reshape(-1, pe * simd)
    nl = wl.shape[1]
    words = pack(wl, wwid)
    outs = []
    for p_ in range(pe):
        prods = []
        for j in ([p_] if dw else range(simd)):
            i = f"{p_}_{j}"
            ln = p_ if dw else p_ * simd + j
            prods.append({"id": i, "j": j, "en": f"en_c{ln // EN_LANES}",  # its copy of the stall enable
                          "xp_ext": ext(pw - xw, x_t.signed, f"x_b{j}[{xw - 1}]"),
                          "wp_ext": ext(pw - wwid, True, f"w_{i}[{wwid - 1}]"),
                          "prod_ext": ext(aw - pw, True, f"prod_{i}[{pw - 1}]"),
                          "w_hi": (ln + 1) * wwid - 1, "w_lo": ln * wwid,
                          # a LUT product: its pair sums registered in place of the operands
                          "split": product_split(f"prod_{i}", f"xpg_{i}", f"xg_{i}", xw, x_t.signed, f"wp_{i}",
                                                 f"w_{i}", wwid, True, pw) if e["lut_mul"] else None})
        outs.append({"p": p_, "prods": prods, "b_hi": (p_ + 1) * aw - 1, "b_lo": p_ * aw})
    wb = bits(len(words))
    e.update(aw=aw, aw_m1=aw - 1, ww_m1=wwid - 1, wrw_m1=nl * wwid - 1, n_w_m1=len(words) - 1,
             m_m1=blocks - 1, wb=wb, wb_m1=wb - 1, mb=bits(blocks), mb_m1=bits(blocks) - 1,
             wa_zero=ulit(wb, 0), wa_one=ulit(wb, 1), wrom=[hexlit(nl * wwid, v) for v in words],
             brw_m1=pe * aw - 1, brom=[hexlit(pe * aw, v) for v in pack(b.reshape(blocks, pe), aw)], O=outs,
             wbank=rom_bank(nl * wwid, words, wb),  # the weight ROM in DP16KD tiles (ECP5), if in block RAM
             # the stall enable's register copies: one for every EN_LANES product lanes, one
             # (en_f) for the tap issue and address stages, one (en_m) for the memory read and
             # output stages
             en_copies=en_copies(nl, 2), en_lanes=EN_LANES)


def _narrow(fold: Fold, xw: int, ww: int) -> int:
    """Operand width up to which products are built from LUTs: any, for a LUT fold."""
    return max(xw, ww) if fold.lut else NARROW_BITS


def _adder_tree(e: dict) -> None:
    """The registered products t0_j, then registered stages of two-term adders (one carry
    chain each, for the clock) until one term is left for the accumulator."""
    tree = []
    for o in e["O"]:
        names = [f"t0_{pr['id']}" for pr in o["prods"]]
        k = 0
        while len(names) > 1:
            k += 1
            groups = [{"name": f"t{k}_{o['p']}_{g}", "src": names[i:i + 2]}
                      for g, i in enumerate(range(0, len(names), 2))]
            if len(tree) < k:
                tree.append({"k": k, "groups": []})
            tree[k - 1]["groups"] += groups
            names = [g["name"] for g in groups]
        o["final"] = names
    e.update(tree=tree, tree_ks=list(range(len(tree) + 1)), tk=len(tree))


def _mac_requant(e: dict, cm: dict, aw: int, shift: int, ow: int, even: bool = False) -> None:
    """The per-channel multiply (the multiplier or exponent of each output channel, read
    with its bias) and the round / shift / saturate of each PE lane (``even``: ties to
    even, ``(a + 2^(s-1) - 1 + a[s]) >>> s``)."""
    pe, qa, lo, hi = e["PE"], cm["qa"], e["lo"], e["hi"]
    src = "acc" if cm["mode"] == "none" else "accm"
    if cm["mode"] != "none":
        mw = cm["mw"]
        e.update(mw_m1=mw - 1, mrw_m1=pe * mw - 1, qa_m1=qa - 1, m_ext=ulit(qa - mw, 0),
                 mrom=[hexlit(pe * mw, v) for v in pack(_padded(cm["vals"], e["blocks"] * pe).reshape(e["blocks"], pe), mw)])
    cw = max(qa + 1, qa - shift, ow + 1, abs(lo).bit_length() + 1, abs(hi).bit_length() + 1) + 1
    if even:  # the parity bit a[shift] must be a bit of the word, and the sum must fit it
        cw = max(cw, shift + 2)
    below, above = _clamp_tests(qa, cw, shift, lo, hi, even)
    for o in e["O"]:
        o.update(acc_ext=ext(qa - aw, True, f"acc{o['p']}[{aw - 1}]"),
                 cw_ext=ext(cw - qa, True, f"{src}{o['p']}[{qa - 1}]"),
                 below=below.format(a=f"ax{o['p']}"), above=above.format(a=f"ax{o['p']}"))
        if cm["mode"] != "none":
            o.update(m_hi=(o["p"] + 1) * cm["mw"] - 1, m_lo=o["p"] * cm["mw"])
    lcw = bits(pe + 1)
    e.update(cw_m1=cw - 1, rnd_c=shex(cw, ((1 << (shift - 1)) - even) if shift > 0 else 0), lc_m1=lcw - 1,
             even=even, even_pad=ulit(cw - 1, 0),
             lc_zero=ulit(lcw, 0), lc_one=ulit(lcw, 1), lc_pe=ulit(lcw, pe))
    if e["short"]:  # the last block of output channels has fewer than PE
        obw = bits(e["blocks"])
        e.update(ob_m1=obw - 1, ob_zero=ulit(obw, 0), ob_one=ulit(obw, 1), ob_last=ulit(obw, e["blocks"] - 1),
                 lc_short=ulit(lcw, e["short"]))


def _clamp_tests(qa: int, cw: int, shift: int, lo: int, hi: int, even: bool = False) -> tuple[str, str]:
    """The clamp's two tests of ``q = round_shift(a, shift)`` made on ``a`` itself (a
    ``qa``-bit value in ``cw`` bits), so they need not wait for the rounding adder: ``q < lo``
    and ``q > hi`` as ``a < L`` and ``a > H`` (``{a}`` stands for the value; a test no
    ``qa``-bit value can pass or fail is a constant). ``even``: ties to even."""
    if shift > 0:  # floor((a + 2^(s-1)) / 2^s) < lo  <=>  a < lo*2^s - 2^(s-1)
        below, above = (lo << shift) - (1 << (shift - 1)), ((hi + 1) << shift) - (1 << (shift - 1)) - 1
        if even:  # a tie below lo goes down to lo - 1 (the test moves up by 1) when lo is odd; the one
            # above hi goes up to hi + 1 only when hi + 1 is even (else the test moves up by 1)
            below, above = below + (lo & 1), above + ((hi + 1) & 1)
    else:  # a * 2^k < lo  <=>  a < ceil(lo / 2^k);  a * 2^k > hi  <=>  a > floor(hi / 2^k)
        below, above = -((-lo) >> -shift), hi >> -shift
    amin, amax = -(1 << (qa - 1)), (1 << (qa - 1)) - 1
    lt = "1'b0" if below <= amin else "1'b1" if below > amax else f"({{a}} < {shex(cw, below)})"
    gt = "1'b0" if above >= amax else "1'b1" if above < amin else f"({{a}} > {shex(cw, above)})"
    return lt, gt


def _padded(vals, n: int) -> np.ndarray:
    """Per-channel values padded with zeros to ``n`` (the lanes past the last channel)."""
    v = np.asarray(vals, np.int64).reshape(-1)
    return np.concatenate([v, np.zeros(n - len(v), np.int64)])


def _avg(e: dict, p: dict, x_t, xw: int, xe: int, ow: int, lo: int, hi: int) -> None:
    """Numbers of the exact average: y = floor((2*sum + cnt) / (2*cnt)), cnt the counted taps
    of the output position (golden ``div_round_half_up``; cnt = 0 gives 0)."""
    counts = _counts(p)
    cmax, cmin = int(counts.max()), int(counts.min())
    if counts.shape != (e["oh"], e["ow"]) or not 0 < cmax <= e["kh"] * e["kw"]:  # 0: no counted cell at all
        raise BackendError(f"internal: layer {e.get('name')} counts")
    const = cmin == cmax
    off = -x_t.lo if x_t.lo < 0 else 0
    # acc = sum over the counted taps of (x + off) (a padded tap adds off): non-negative
    acc_max = cmax * (x_t.hi + off)
    aw = max(xe + 1, signed_width_for(0, acc_max), signed_width_for(-off, x_t.hi + off))
    num_max = 2 * acc_max + cmax
    nw = max(2, num_max.bit_length())
    div_max = max(2 * cmax, 1)
    cb = max(1, cmax.bit_length())
    rw = max((2 * div_max - 1).bit_length(), cb + 2)  # the remainder, < 2 * divisor while shifting
    yw = max(nw + 2, off.bit_length() + 2, abs(lo).bit_length() + 2, abs(hi).bit_length() + 2)
    db = bits(nw)
    # counted cells: the input (count_include_pad 0) or the input plus its explicit pads
    # (rows [-pt, h + pb), columns [-pl, w + pr)); a tap never lies above or left of the pads
    incl = (p["cnt_h0"], p["cnt_w0"]) != (0, 0) or (p["cnt_h1"], p["cnt_w1"]) != (e["h"], e["w"])
    if incl and (p["cnt_h0"], p["cnt_w0"]) != (-e["pt"], -e["pl"]):
        raise BackendError(f"internal: layer {e.get('name')} counted region")
    sw = max(aw + 2, nw + 1) + 1
    e.update(aw=aw, aw_m1=aw - 1, x_ext=ext(aw - xw, x_t.signed, f"x_q[{xw - 1}]"), acc_zero=shex(aw, 0),
             off_a=shex(aw, off), off=off, nw=nw, nw_m1=nw - 1, nw_m2=nw - 2, sw_m1=sw - 1,
             num_ext=ext(sw - aw, True, f"acc[{aw - 1}]"), two_s=shex(sw, 2),
             rw_m1=rw - 1, rw_m2=rw - 2, yw_m1=yw - 1, off_y=shex(yw, off),
             y_zero=shex(yw, 0), lo_y=shex(yw, lo), hi_y=shex(yw, hi),
             db_m1=db - 1, d_zero=ulit(db, 0), d_one=ulit(db, 1),
             d_last=ulit(db, nw - 1), q_zero_n=ulit(nw, 0), r_zero=ulit(rw, 0),
             cnt_const=const, cnt_incl=incl, cnt_zero=cmin == 0, cmax=cmax, cmin=cmin,
             ch1_q=shex(e["q"], int(p["cnt_h1"])), cw1_q=shex(e["q"], int(p["cnt_w1"])),
             cb_m1=cb - 1, c_zero=ulit(cb, 0), c_one=ulit(cb, 1),
             cnt_s=shex(sw, cmax), div_r=ulit(rw, 2 * cmax), dv_pad=ulit(rw - cb - 1, 0),
             num_cext=ulit(sw - cb, 0),
             rule=(f"y = floor((2*sum + cnt) / (2*cnt)), cnt = {cmax} counted taps" if const else
                   f"y = floor((2*sum + cnt) / (2*cnt)), cnt = {cmin}..{cmax} counted taps "
                   f"({'input and pads' if incl else 'input only'}) counted per output")
             + (" (cnt = 0 gives 0)" if cmin == 0 else "") + f"; quotient up to {x_t.hi + off}")
    if rw < cb + 2 or sw <= cb:
        raise BackendError(f"internal: layer {e.get('name')} divisor width")


def _line_numbers(e: dict, simd: int, rows: int, span: int) -> None:
    """The row buffer of a line engine: ``rows`` slots of W * C words ({simd} banks)."""
    qw = e["q"]
    cb = max(1, e["c"] // simd)  # a row fold's slots are laid out in _row_numbers
    wcb = e["w"] * cb
    bank = rows * wcb
    ab = bits(bank)
    rb = rows.bit_length() - 1
    lrw = max(1, e["h"].bit_length())
    offb = bits(wcb)
    need_after = [oy for oy in range(e["oh"]) if oy * e["sh"] - e["pt"] + span - 1 >= e["h"] - 1]
    e.update(rows=rows, span_h=span, rb=rb, rb_m1=rb - 1,
             bank_m1=bank - 1, ab=ab, ab_m1=ab - 1, line_words=simd * bank, rows_after=len(need_after),
             lrw_m1=lrw - 1, lrow_ext=f"{qw - lrw}'d0", lrow_zero=ulit(lrw, 0), lrow_one=ulit(lrw, 1),
             h_l=ulit(lrw, e["h"]), h_last_l=ulit(lrw, e["h"] - 1),
             offb_m1=offb - 1, off_last=ulit(offb, wcb - 1), off_zero=ulit(offb, 0), off_one=ulit(offb, 1),
             loff_a=f"{{{ab - offb}'d0, loff}}" if ab > offb else "loff", wcb_a=ulit(ab, wcb),
             slot_zero=ulit(rb, 0), slot_one=ulit(rb, 1), h_slot=ulit(rb, e["h"] % rows),
             **_slot_table(rows, wcb, ab),
             h_q=shex(qw, e["h"]), h_last_q=shex(qw, e["h"] - 1), h_last_sh_q=shex(qw, e["h"] - 1 - e["sh"]), rows_q=shex(qw, rows),
             **_room_bounds(qw, rows, e["h"]),
             span_m1_q=shex(qw, span - 1), cb_q=shex(qw, cb),
             raw1_q=shex(qw, e["sh"] + span - 1 - e["pt"]),
             need0_q=shex(qw, min(span - 1 - e["pt"], e["h"] - 1)),
             need1_q=shex(qw, min(e["sh"] + span - 1 - e["pt"], e["h"] - 1)))


def _bram_numbers(e: dict) -> None:
    """A row buffer bank in block RAM: DP16KD tiles in the ECP5 flow (:func:`.estimate.bram_bank`)."""
    e["bram"] = bram_bank(e["xw"], e["bank_m1"] + 1, e["ab"])


def _slot_table(rows: int, words: int, ab: int) -> dict:
    """Where row slot s starts (s * words): a shift when ``words`` is a power of two, else a
    table of the ``rows`` starts (a few LUTs, where a product by the constant would take a
    multiplier block and a long path)."""
    if words & (words - 1) == 0:
        return {"slot_tab": []}
    rb = rows.bit_length() - 1
    return {"slot_tab": [(ulit(rb, k), ulit(ab, k * words)) for k in range(rows)]}


def _timing(e: dict, g: Geometry, fold: Fold) -> dict:
    """Cycles of one frame (downstream always ready).

    ``compute_cycles``: the first tap issued to the last. A mac/max engine issues one tap
    per cycle: n_out * taps. An average engine also runs a divider of nw + 2 cycles per
    output, overlapped with the next output's taps, so outputs leave max(taps, nw + 2)
    apart. The engine loads while it computes: a frame takes the longer of the two, and
    the last input row is followed by the output rows that read it."""
    t, n = e["taps"], e["n_out"]
    if e["kind"] == "avg":
        d = e["nw"] + 2
        compute = t + (n - 1) * max(t, d)
        tail = e["nw"] + 3 + e["pipe"]  # the last output's division
    elif e["kind"] == "mac" and fold.flat:
        compute, tail = compute_cycles(g, fold), 3 + e["pipe"] + fold.pe - 1
    else:
        pe = e.get("PE", 1)  # PE outputs per block of taps, leaving one per cycle
        compute, tail = (n // pe) * max(t, pe), 3 + e["pipe"] + pe - 1
    per_row = compute / e["oh"]
    return {"compute_cycles": compute, "frame_cycles": max(e["n_in"], compute) + 3,
            "in_to_out": int(round(per_row * e["rows_after"])) + tail}


def _row_numbers(e: dict, fold: Fold, rows: int) -> None:
    """A row fold's row buffer: each of the ``rows`` slots holds a whole padded row (columns
    -pl .. of the window's reach, channels-last: element p = (x + pl) * C + c) in S banks,
    element p in bank p % S at word p // S of the slot (RW words). The pad columns are never
    written and read as 0 (the memory starts at 0), so a step reads S consecutive elements
    with no test per lane: output column ox's kernel row starts at p = ox * sw * C, step t
    at p + t * S, bank b reads word (p + t * S) // S (+1 for b < p % S) and lane j takes bank
    (p % S + j) % S (a rotation, when p % S takes more than one value)."""
    c, simd, qw = e["c"], fold.simd, e["q"]
    wp = max(e["pl"] + e["w"], (e["ow"] - 1) * e["sw"] + e["kw"])
    reach = (e["ow"] - 1) * e["sw"] * c + e["steps"] * simd  # past the last step's last lane
    rw = -(-max(wp * c, reach) // simd)
    bank = rows * rw
    ab = bits(bank)
    offb = bits(rw)
    p0, p_last = e["pl"] * c, (e["pl"] + e["w"]) * c - 1
    step = e["sw"] * c
    rset = {(ox * step) % simd for ox in range(e["ow"])}
    e.update(bank_m1=bank - 1, ab=ab, ab_m1=ab - 1, line_words=simd * bank, rw=rw,
             offb_m1=offb - 1, off_last=ulit(offb, p_last // simd), off_zero=ulit(offb, p0 // simd),
             off_one=ulit(offb, 1), loff_a=f"{{{ab - offb}'d0, loff}}" if ab > offb else "loff",
             wcb_a=ulit(ab, rw), **_slot_table(rows, rw, ab), zinit=wp > e["w"], rot=len(rset) > 1,
             dq=ulit(ab, step // simd if e["ow"] > 1 else 0), a_zero=ulit(ab, 0), a_one=ulit(ab, 1))
    if simd > 1:
        lb = bits(simd)
        e.update(j_start=ulit(lb, p0 % simd), j_end=ulit(lb, p_last % simd))
    if e["rot"]:
        rr = bits(simd)
        dr = step % simd
        e.update(rr_m1=rr - 1, r_zero=ulit(rr, 0), r_wrap=ulit(rr, simd - dr), r_down=ulit(rr, simd - dr),
                 r_up=ulit(rr, dr), dq1=ulit(ab, step // simd + 1), hi_lit=[ulit(rr, j) for j in range(simd - 1)],
                 barrel=[[(j + (1 << k)) % simd for j in range(simd)] for k in range(rr)])
    if ab > qw:
        raise BackendError(f"internal: layer {e.get('name')} row buffer address width")
