"""The interpolation engine of the Verilog backend: Resize with tap tables (linear, cubic,
nearest with any coordinate rule), ``hls_templates/verilog/interp.v.j2``.

Resize with integer ``scales`` (nearest, no ``taps``) stays a gather engine
(:func:`resize_engine` sends it there); a Resize with ``taps`` is built here, its integers
from :func:`nnforge.ir.ops.resize.int_taps` alone:

    y = saturate(round_shift(sum_taps P * x, n * FRAC), out_type)

with ``P`` the product of the resized axes' integer weights of one term and ``n`` the
number of resized axes (``ir/ops/resize.py``).

The engine loads the whole input (its stream layout) into a frame memory, then walks the
output in its stream order; for each output element it walks the taps of every resized
axis (nested tap counters, the last resized axis fastest), one term per cycle. Per
resized axis ``k`` two small ROMs indexed by the output index ``o_k`` (separable, no ROM
per output element): ``start_k[o_k]`` (the first input index) and the ``T_k`` integer
weights (word ``{o_k, t_k}``); an axis of one tap whose weights are all one power of two
(nearest: ``2**FRAC``) has no weight ROM, its factor is a shift. The input address is ``sum_k i_k * S_k`` with
``i_k = start_k[o_k] + t_k`` on a resized axis, ``o_k`` on another (``S_k``: the
stride of input axis ``k`` in the input's stream layout).

Pipeline (one global enable: the output register is free): issue (counters, start
ROM, address) -> stage 1 (the frame memory word, each axis's weight) -> stage 2 (``P``,
the product of the weights: ``v - 1`` multipliers for the ``v`` axes with a weight ROM)
-> stage 3 (``P * x``: one multiplier, a shift when ``v = 0``) -> the accumulator; on a term that is an element's last the rounded,
saturated sum goes to the output register. The next frame loads once the last term has
been issued.

Stream layouts: ``layouts = {"in": [perm], "out": perm}`` (:mod:`.verilog_streams`), any
pair; the counters follow the output's stream order and the strides the input's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import FixedType, Graph
from ..ir.fixed import signed_width_for
from ..ir.ops.resize import FRAC, checked_bound, int_taps
from .engines import Engine, Memory, Operators, Timing, counters, flags, registers
from .lower import BackendError
from .rtl import address_width, bits, counter, hexlit, requant_numbers, sext, ulit
from .verilog_join import gather_engine
from .verilog_streams import node_layouts, refuse, stream_strides

# registered stages from an issue to the accumulator (stage 1, 2, 3), and the output
# register: the outputs in flight
INTERP_STAGES = 3


def resize_engine(q: Graph, node, name: str, layouts: dict | None = None) -> Engine:
    """Resize: the gather engine for integer ``scales`` (nearest), else the interpolation
    engine (``taps``)."""
    if not node.attrs.get("taps"):
        return gather_engine(q, node, name, layouts)
    return interp_engine(q, node, name, layouts)


@dataclass(frozen=True)
class InterpEngine(Engine):
    """Resize with tap tables: a frame memory read ``taps`` times per output element,
    one term ``P * x`` per cycle into an accumulator."""

    def capacity(self, k: int = 0) -> float:
        # the frame, plus the elements in the pipeline and the output register
        return self.frame_memory_words + (INTERP_STAGES + 1) * self.n_in / max(1, self.n_out)

    def memories(self) -> tuple[Memory, ...]:
        n = self.numbers
        mems = [Memory("xmem", self.n_in, n["xw_m1"] + 1, False)]  # read into x1
        for a in n["A"]:
            # the start ROM is read as a wire (the address), the weight ROM into its register
            mems.append(Memory(f"{a['s']}_rom", len(a["s_words"]), a["sw"], True, values=a["s_values"],
                               registered=False))
            if a["w_words"]:
                mems.append(Memory(f"{a['w']}_rom", len(a["w_words"]), a["ww"], True, values=a["w_values"]))
        return tuple(mems)

    def operators(self) -> Operators:
        """The data path: the tap index and address sums, the weights' product (``v - 1``
        multipliers) and ``P * x`` (one; none when ``v = 0``), the accumulator, the rounding and the clamp,
        and the data registers (x1, x2, p2, m3, acc, res)."""
        n = self.numbers
        xw, pw, cw, ow, aw = n["xw_m1"] + 1, n["pw"], n["R"]["cw"], n["ow_m1"] + 1, n["aw_m1"] + 1
        var = [a for a in n["A"] if a["w_words"]]  # the axes whose weight varies (a ROM)
        ww = [a["ww"] for a in var]
        mults = ([(ww[0], ww[1])] if len(ww) > 1 else []) + [(pw, w) for w in ww[2:]] + ([(pw, xw)] if ww else [])
        # each weight register is its ROM's read register (counted with the ROM: registered)
        regs = registers(xw, cw, copies=2) + registers(pw if var else 0, ow)
        return regs + Operators(
            multipliers=tuple(mults),
            # start + tap per resized axis, each address term (a constant product) and its
            # sum, the accumulator, the rounding
            adders=tuple(a["sw"] for a in n["A"] if a["t"]) + (aw,) * n["terms"] + (cw,) * (1 + (n["shift"] > 0)),
            comparators=(cw, cw), muxes=(cw, ow, ow))  # the first term's select; the clamp

    def control(self) -> Operators:
        """``interp.v.j2``: the load counter and flag, the output and tap counters (each a
        register, its step, its wrap test and two selects), the first-tap tests, the
        stages' valid, first and last bits, the output valid bit and the ready test."""
        n = self.numbers
        cnt = [n["ib"]] + [c["b"] for c in n["C"]]
        taps = [a["tb"] for a in n["A"] if a["t"]]
        # loading (set, cleared), v1..v3, the output valid (set, cleared) and the ready test
        return (counters(*cnt) + Operators(comparators=tuple(taps))
                + flags(2 + 3 * INTERP_STAGES, reset=2 + INTERP_STAGES + 3))


def _axis(k: int, table, in_len: int, out_len: int, node) -> dict:
    """The numbers of resized IR axis ``k``: its start ROM and weight ROM (word
    ``{o, t}``, padded to a power of two taps), its counters and its input index."""
    starts, weights, T = table
    if len(starts) != out_len or any(len(w) != T for w in weights):
        raise BackendError(f"internal: resize taps of axis {k} do not fit {out_len} outputs")
    if any(s < 0 or s + T > in_len for s in starts):
        refuse(node, f"reads taps outside the {in_len} inputs of axis {k}")
    sw = bits(in_len)
    ob, tb = bits(out_len), bits(T)
    flat = [int(v) for v in np.asarray(weights, dtype=np.int64).reshape(-1)]
    # one tap of one power-of-two weight (nearest): a shift, no ROM and no multiplier
    const = flat[0] if T == 1 and len(set(flat)) == 1 and flat[0] > 0 and flat[0] & (flat[0] - 1) == 0 else None
    flat.append(0)
    ww = signed_width_for(min(flat), max(flat))
    if T > 1:
        words = [weights[o][t] if t < T else 0 for o in range(out_len) for t in range(1 << tb)]
        wa = f"{{o{k}, t{k}}}"
        src = f"st{k}_q + {{{sw - tb}'d0, t{k}}}" if sw > tb else f"st{k}_q + t{k}"
    else:
        words = [w[0] for w in weights]
        wa, src = f"o{k}", f"st{k}_q"
    return {"k": k, "s": f"st{k}", "w": f"wt{k}", "sw": sw, "sw_m1": sw - 1, "ww": ww, "ww_m1": ww - 1,
            "o": f"o{k}", "t": f"t{k}" if T > 1 else None, "T": T, "ob": ob, "tb": tb,
            "s_words": [hexlit(sw, s) for s in starts], "s_values": tuple(int(s) for s in starts),
            "w_words": [] if const else [hexlit(ww, int(v)) for v in words],
            "w_values": () if const else tuple(int(v) & ((1 << ww) - 1) for v in words),
            "const_shift": None if const is None else const.bit_length() - 1,
            "wa": wa, "src": src, "lo": min(flat), "hi": max(flat)}


def _counter(name: str, n: int) -> dict:
    b = bits(n)
    return {"name": name, "b": b, "b_m1": b - 1, "zero": ulit(b, 0), "one": ulit(b, 1), "last": ulit(b, n - 1)}


def _address(in_shape, strides, A: dict, ib: int) -> tuple[str, int, int]:
    """The frame memory address (a Verilog expression), its width and its number of terms."""
    aw = address_width(ib, zip(in_shape, strides))
    terms = []
    for k, (d, s) in enumerate(zip(in_shape, strides)):
        if d == 1:
            continue  # index 0 always
        idx, w = (f"st{k}_src", A[k]["sw"]) if k in A else (f"o{k}", bits(d))
        terms.append((f"{{{aw - w}'d0, {idx}}}" if aw > w else idx) + f" * {ulit(aw, s)}")
    return (" + ".join(terms) or ulit(aw, 0)), aw, len(terms)


def interp_engine(q: Graph, node, name: str, layouts: dict | None = None) -> InterpEngine:
    """The interpolation engine of a Resize node with ``taps``."""
    x, y = node.inputs[0], node.outputs[0]
    x_t, o_t = q.qtype(x), q.qtype(y)
    (in_p,), out_p = node_layouts(q, node, layouts)
    in_shape, out_shape = tuple(int(d) for d in q.shape(x)), tuple(int(d) for d in q.shape(y))
    if not node.attrs.get("taps"):
        refuse(node, "has no tap tables (a Resize by integer scales is a gather engine)")
    tables = int_taps(node.attr("taps"))
    if len(tables) != len(in_shape):
        refuse(node, f"has {len(tables)} tap tables for a rank-{len(in_shape)} input")
    try:
        bound = checked_bound(node.attr("taps"), x_t)
    except ValueError as e:
        refuse(node, str(e))
    A = {k: _axis(k, t, in_shape[k], out_shape[k], node) for k, t in enumerate(tables) if t is not None}
    for k in range(len(in_shape)):
        if k not in A and in_shape[k] != out_shape[k]:
            raise BackendError(f"internal: resize {name} changes the extent of axis {k} without taps")
    n_res = len(A)
    shift = n_res * FRAC
    # counters: the output in its stream order, then the taps of each resized axis
    C = [_counter(f"o{k}", out_shape[k]) for k in out_p if out_shape[k] > 1 or k in A]
    C += [_counter(a["t"], a["T"]) for a in A.values() if a["t"]]
    C = C or [_counter("o0", 1)]
    taps = int(np.prod([a["T"] for a in A.values()]))
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    ib = bits(n_in)
    addr, aw, terms = _address(in_shape, stream_strides(in_shape, in_p), A, ib)
    # P: the product of the weights (exact in pw bits); P * x and the sums in cw bits
    p_ext = [1]
    for a in A.values():
        p_ext = [p * w for p in p_ext for w in (a["lo"], a["hi"])]
    pw = max([signed_width_for(min(p_ext), max(p_ext))] + [a["ww"] for a in A.values()])
    m_ext = [p * v for p in (min(p_ext), max(p_ext)) for v in (x_t.lo, x_t.hi)]
    lo, hi = min(m_ext + p_ext + [-bound, x_t.lo]), max(m_ext + p_ext + [bound, x_t.hi])
    r = requant_numbers(lo, hi, shift, o_t)
    cw = r["cw"]
    var = [a for a in A.values() if a["w_words"]]
    up = sum(a["const_shift"] for a in A.values() if not a["w_words"])  # P's constant factor 2**up
    p_expr = " * ".join(sext(f"wq{a['k']}", FixedType(a["ww"], 0, True), pw) for a in var)
    x_x = sext("x2", x_t, cw)
    if var:
        p_expr = f"({p_expr}) <<< {up}" if up else p_expr
        m_expr = f"{sext('p2', FixedType(pw, 0, True), cw)} * {x_x}"
    else:
        m_expr = f"{x_x} <<< {up}" if up else x_x
    tap_names = [a["t"] for a in A.values() if a["t"]]
    mode = node.attrs.get("mode", "linear")
    rule = (f"{mode} resize, axes {sorted(A)} with {[a['T'] for a in A.values()]} taps: "
            f"y = sat(round_half_up(sum_taps (prod_axes w) * x >> {shift})), {FRAC}-bit weights")
    if in_p != tuple(range(len(in_p))) or out_p != tuple(range(len(out_p))):
        rule += f"; input stream in layout {in_p}, output stream in layout {out_p}"
    numbers = {
        "A": list(A.values()), "C": C, "taps": taps, "pipe": INTERP_STAGES, "terms": terms,
        "in_type": str(x_t), "out_type": str(o_t), "xw_m1": x_t.width - 1, "ow_m1": o_t.width - 1,
        "n_in_m1": n_in - 1, **counter("i", n_in), "aw_m1": aw - 1, "addr": addr,
        "first": " & ".join(f"({t} == {ulit(A[int(t[1:])]['tb'], 0)})" for t in tap_names) or "1'b1",
        "last": " & ".join(f"{t}_w" for t in tap_names) or "1'b1",
        "pw": pw, "pw_m1": pw - 1, "p_expr": p_expr, "p_on": bool(var), "m_expr": m_expr, "cw_m1": cw - 1, "R": r,
        "shift": shift, "rule": rule, "acc_bound": bound, "aw": cw,  # the accumulator's width
    }
    k_issue = n_out * taps
    return InterpEngine("interp.v.j2", ("in",), n_in, n_out,
                        Timing(k_issue, n_in + k_issue + 3, k_issue + INTERP_STAGES + 2), numbers,
                        multipliers=len(var), macs=k_issue if var else 0, frame_memory_words=n_in)
