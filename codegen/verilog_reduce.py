"""Reduce engines for the Verilog backend (``hls_templates/verilog/reduce.v.j2``):
ReduceSum, ReduceMean, ReduceMax and ReduceMin over axes of a sample, and ArgMax (the
model's last op).

The engine loads one input frame, in its stream layout, into a frame memory, then walks
the outputs in the output's stream order and, for each, the reduced elements: the address
is ``base(output index) + offset(reduced index)``, the sum over nested counters of each
counter times its axis's stride in the input stream (no table of addresses). One element
is read per cycle and folded into the running sum, maximum or minimum (ArgMax: the
maximum and the reduced axis's counter where it was found; ties keep the first index, or
the last with ``select_last_index``, as ``ir/ops/argmax.py``). Max / Min / ArgMax move
integers (the output type is the input's, or the index type).

Sum / Mean: ``y = sat(floor(N / D))`` with ``N = 2 * S * 2**u + d`` and ``D = 2 * d``
(``ir/ops/reduce.py``; ``S`` the exact sum). The engine adds ``K * D`` (the smallest
multiple of ``D`` making ``N`` non-negative over the accumulator's range), so
``N' = N + K * D`` lies in ``[0, N'max]``, and computes ``floor(N' / D) - K`` as
``(N' * M) >> s`` with ``M = ceil(2**s / D)``: with ``e = M * D - 2**s`` (``0 <= e < D``),
``N' * M / 2**s = N' / D + N' * e / (D * 2**s)``, whose second term is below ``1 / D``
when ``e * N'max < 2**s``, so the floor is that of ``N' / D`` for every ``N'`` in range
(the proof; the smallest such ``s`` is chosen, and small ranges are also checked
exhaustively when the engine is built). ``M`` a power of two is a shift, no multiplier.

Layouts: ``layouts = {"in": [perm], "out": perm}`` as every engine builder
(:mod:`.verilog_streams`): the input is read with its own stream strides, the outputs
are produced in the output layout's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import FixedType, Graph
from ..ir.fixed import reciprocal, signed_width_for
from ..ir.ops import OPS, op_def
from ..ir.ops import argmax as argmax_op, reduce as reduce_op
from ..ir.ops.argmax import index_type
from ..ir.ops.reduce import axes_of, count, sum_params
from .engines import Engine, Memory, Operators, Timing, counters, flags, read_stages, registers
from .estimate import bram_bank
from .lower import BackendError
from .rtl import address_width, bits, counter, hexlit, sext, shex, ulit
from .verilog_streams import node_layouts, refuse, stream_strides

# the reductions (the ops of ir/ops/reduce.py's shape rule) and ArgMax, from the op registry
REDUCE_OPS = frozenset(op for op in OPS if op_def(op).shape in (reduce_op.shape, argmax_op.shape))


@dataclass(frozen=True)
class ReduceEngine(Engine):
    """A reduction over axes of a sample, or ArgMax: a frame memory read once per reduced
    element, an accumulator (or maximum and index), and for Sum / Mean the exact division
    by a multiplication with a reciprocal (or a shift)."""

    stages: int = 4  # registers from the issue of a read to the output register, inclusive

    def capacity(self, k: int = 0) -> float:
        # the frame, plus one output's worth of input in each pipeline register
        return self.frame_memory_words + self.stages * self.n_in / max(1, self.n_out)

    def memories(self) -> tuple[Memory, ...]:
        return (Memory("xmem", self.n_in, self.numbers["xw"], False),)

    def operators(self) -> Operators:
        """``reduce.v.j2``'s data path: the read address (each counter's term stepped by its stride,
        summed), the element read, the fold (Sum / Mean: the accumulator, the numerator, the
        product by the reciprocal, the quotient minus K and its saturation; Max / Min /
        ArgMax: the comparison and the kept value, ArgMax's index), the output word."""
        n = self.numbers
        xw, ow, mode = n["xw"], n["ow"], n["mode"]
        k = len(n["D"])  # each axis's address term (a register stepped by its stride), their sum
        address = Operators(adders=(n["adw"],) * (2 * k - 1), muxes=(n["adw"],) * k) + registers(*(n["adw"],) * k)
        reads = read_stages(xw, n.get("bram"))  # x_m, x_q (in block RAM: the DP16KD's own, ECP5)
        if mode == "sum":
            aw, nw, yw = n["aw"], n["nw"], n["yw"]
            mults = ((nw - 1, n["mw"]),) if n["mul"] else ()
            return address + Operators(multipliers=mults, adders=(aw, nw, yw), comparators=(yw, yw),
                                       muxes=(aw, ow, ow)) + reads + registers(aw, n["qw"], ow)
        if mode == "argmax":
            rb = n["rb"]
            return address + Operators(comparators=(xw + 1,)) + reads + registers(rb, rb, xw, rb, ow)
        # the kept value is loaded on an enable (a flip-flop's), no multiplexer
        return address + Operators(comparators=(xw + 1,)) + reads + registers(xw, ow)

    def control(self) -> Operators:
        """The load counter and flag, the walk's counters (with their wrap tests and the
        test of a group's first element), the pipeline's valid and first / last bits, the
        output valid bit."""
        n = self.numbers
        widths = (n["ib"], *(d["db"] for d in n["D"]))
        inner = tuple(d["db"] for d in n["D"] if d["inner"])
        valid = self.stages  # v0, v1, v2 (and v3), the output valid; with reset (the output's: two)
        # + loading, f0, l0, f1, l1 (one-bit registers with no reset)
        return counters(*widths) + Operators(comparators=inner) + flags(valid + 5, reset=2 * valid + 1)


def _mode(op: str) -> str:
    """"sum" (Sum, Mean: the exact sum, one rounding), "max" / "min" or "argmax"."""
    d = op_def(op)
    if d.shape is argmax_op.shape:
        return "argmax"
    if d.int_ref is reduce_op.sum_ref:
        return "sum"
    return "max" if op == "ReduceMax" else "min"  # reduce.extreme_ref's test


def _reduced(q: Graph, node) -> tuple[tuple[int, ...], bool]:
    """The reduced per-sample axes and keepdims."""
    rank = len(q.shape(node.inputs[0]))
    if _mode(node.op) == "argmax":
        a = int(node.attrs.get("axis", 0))
        if not 0 <= a < rank:
            refuse(node, f"axis {a} is not an axis of the {rank}-axis sample")
        return (a,), bool(node.attrs.get("keepdims", True))
    return axes_of(node.attrs, rank), bool(node.attrs.get("keepdims", True))


def _walk(q: Graph, node, in_p, out_p) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``(outer, inner)``: the counters (extent, input stride) of the output stream order
    and of the reduced elements (ArgMax: its one axis), outermost first."""
    x = node.inputs[0]
    in_shape = tuple(q.shape(x))
    axes, keep = _reduced(q, node)
    strides = stream_strides(in_shape, in_p)
    kept = [a for a in range(len(in_shape)) if a not in axes]
    src = list(range(len(in_shape))) if keep else kept  # IR output axis -> input axis
    if len(src) != len(q.shape(node.outputs[0])):
        raise BackendError(f"internal: reduce {node.name} ranks")
    outer = [(in_shape[src[k]], strides[src[k]]) for k in out_p if src[k] not in axes and in_shape[src[k]] > 1]
    inner = sorted(((in_shape[a], strides[a]) for a in axes), key=lambda d: -d[1])
    if _mode(node.op) != "argmax":  # ArgMax keeps its axis's counter: the index
        inner = [d for d in inner if d[0] > 1]
    return outer or [(1, 0)], inner or [(1, 0)]


def _sum_numbers(q: Graph, node, x_t, o_t) -> dict:
    """The accumulator and the exact division of a Sum / Mean (see the module notes)."""
    n = count(node, q.shape(node.inputs[0]))
    u, d = sum_params(node, q)
    aw = max(signed_width_for(n * x_t.lo, n * x_t.hi), x_t.width + (0 if x_t.signed else 1))
    div = 2 * d
    n_lo, n_hi = ((2 * n * x_t.lo) << u) + d, ((2 * n * x_t.hi) << u) + d
    k = -(n_lo // div) if n_lo < 0 else 0
    c = d + k * div
    top = n_hi + k * div  # N' in [0, top]
    nw = max(top.bit_length() + 1, aw + u + 2)
    m, s = reciprocal(top, div)
    mw = max(1, m.bit_length())
    shift_only = m & (m - 1) == 0
    sh = s - (m.bit_length() - 1) if shift_only else s
    pw = max(nw - 1 + (0 if shift_only else mw), sh + 1)  # the product (or N'), unsigned
    qw = max(1, (top // div).bit_length())  # the quotient's bits (it is at most top // div)
    yw = max(qw + 1, (k + 1).bit_length() + 1, signed_width_for(o_t.lo, o_t.hi)) + 1
    return {"aw": aw, "aw_m1": aw - 1, "u1": u + 1, "nw": nw, "nw_m1": nw - 1, "c_n": shex(nw, c),
            "mul": not shift_only, "m_lit": ulit(mw, m), "mw": mw, "pw": pw, "pw_m1": pw - 1, "s": sh,
            "q_hi": sh + qw - 1, "qw": qw, "yw": yw, "yw_m1": yw - 1, "yq_pad": ulit(yw - qw, 0), "k_y": shex(yw, k),
            "lo_y": shex(yw, o_t.lo), "hi_y": shex(yw, o_t.hi),
            "lo_o": hexlit(o_t.width, o_t.lo), "hi_o": hexlit(o_t.width, o_t.hi),
            "x_acc": sext("x_q", x_t, aw), "acc_n": sext("acc", FixedType(aw, 0), nw),
            "n_pad": ulit(pw - nw + 1, 0) if pw > nw - 1 else None,
            "rule": f"y = sat(floor((2 * S * 2**{u} + {d}) / {div})), S the exact sum of {n} values: "
                    + (f"((N + {k * div}) * {m}) >> {s}, minus {k}" if k else f"(N * {m}) >> {s}")}


def reduce_engine(q: Graph, node, name: str, layouts: dict | None = None) -> ReduceEngine:
    x, y = node.inputs[0], node.outputs[0]
    if sum(not q.is_const(t) for t in node.inputs) != 1:
        refuse(node, "needs one activation input")
    x_t, o_t = q.qtype(x), q.qtype(y)
    mode = _mode(node.op)
    (in_p,), out_p = node_layouts(q, node, layouts)
    outer, inner = _walk(q, node, in_p, out_p)
    n_in, n_out = int(np.prod(q.shape(x))), int(np.prod(q.shape(y)))
    per = int(np.prod([d for d, _ in inner]))
    if int(np.prod([d for d, _ in outer])) != n_out or per * n_out != n_in:
        raise BackendError(f"internal: reduce {name} sizes")
    if mode in ("max", "min") and x_t != o_t:
        refuse(node, f"changes the type ({x_t} to {o_t}); a maximum or minimum keeps it")
    if mode == "argmax" and o_t != index_type(inner[0][0]):
        refuse(node, f"its output type {o_t} is not the index type of an axis of {inner[0][0]}")
    xw, load = x_t.width, counter("i", n_in)
    adw = address_width(load["ib"], outer + inner)
    D = [{**counter("d", d), "stride": ulit(adw, s),
          "inner": j >= len(outer)} for j, (d, s) in enumerate(outer + inner)]
    numbers = {"D": D, "mode": mode, "xw": xw, "xw_m1": xw - 1, "ow": o_t.width, "ow_m1": o_t.width - 1,
               **load, "n_in_m1": n_in - 1, "adw": adw, "adw_m1": adw - 1, "a_zero": ulit(adw, 0), "in_type": str(x_t), "out_type": str(o_t),
               "n_inner": len(inner), "per": per, "cx": sext("x_q", x_t, xw + 1), "cb": sext("best", x_t, xw + 1),
               "last_index": bool(node.attrs.get("select_last_index", False)),
               "bram": bram_bank(xw, n_in, load["ib"])}  # the frame memory in DP16KD tiles (ECP5)
    if mode == "sum":
        numbers.update(_sum_numbers(q, node, x_t, o_t))
    elif mode == "argmax":
        rb = inner[0][0]
        numbers.update(rb=bits(rb), rb_m1=bits(rb) - 1,
                       rule=f"the index of the {'last' if numbers['last_index'] else 'first'} maximum of {rb} values")
    else:
        numbers["rule"] = f"the {'maximum' if mode == 'max' else 'minimum'} of {per} values"
    if in_p != tuple(range(len(in_p))) or out_p != tuple(range(len(out_p))):
        numbers["rule"] += f"; input stream in layout {in_p}, output stream in layout {out_p}"
    # the reads issue one per cycle right after the last input beat, the next frame loads
    # from the cycle after the last read; the last output leaves ``stages`` cycles after it
    stages = 5 if mode == "sum" else 4
    walk = n_out * per
    return ReduceEngine("reduce.v.j2", ("in",), n_in, n_out, Timing(walk, n_in + walk, walk + stages),
                        numbers, multipliers=int(bool(numbers.get("mul"))), frame_memory_words=n_in, stages=stages)
