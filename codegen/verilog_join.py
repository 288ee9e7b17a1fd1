"""Join and gather engines for the Verilog backend.

* Join (``hls_templates/verilog/join.v.j2``): an op of several activations, in one of
  two forms:

  - streaming (Add, Mul, Max and Min of two activations, the ops of
    :data:`STREAM_JOINS`): both ports stream the same order; each has a two-element
    input buffer (ready = "not full", a register, so no ready depends on a valid); when
    both buffers hold an element and the pipeline moves, one of each is taken, the
    operands registered and the result registered in the output register
    (``STREAM_JOIN_LATENCY`` cycles from the later input beat to the output beat). No
    frame memory: a fork feeding both ports needs a FIFO on the short (skip) path,
    which :mod:`.verilog_cnn` sizes and inserts (``capacity``: the elements one port
    holds, for that analysis);
  - frame-buffered (Concat): each input port loads its whole tensor into its own memory
    and accepts beats independently of the others (so a fork feeding two ports never
    waits on the slower path); once every memory is full the outputs are computed one
    per cycle.

  The arithmetic (the same in both forms):

  - Add: both operands aligned to the finer scale exactly (left shift), added,
    requantized (round half up, saturate), as ``ir/ops/add.py``; with real scales
    (``rq_mult``) each operand is multiplied by its own constant before the sum;
  - Mul: the exact product requantized, as ``ir/ops/mul.py``;
  - Max / Min: both operands brought to one scale as for Add (a left shift; with real
    scales each times its own ``rq_mult``, a left shift when that is a power of two),
    compared (``a > b``, ``a < b`` for Min: one comparator), the winner passed on (one
    multiplexer) and requantized once, as ``ir/ops/minmax.py``: rescaling by multipliers
    >= 0 keeps the order, so the winner is the larger (smaller) of the two values;
  - Concat on any per-sample axis: the output in flat order is, for each index of the
    axes before ``axis``, a block of every input in turn; each input reads its memory in
    its own flat order, so a read pointer per port suffices; each value requantized from
    its input type to the output type, as ``ir/ops/concat.py``.

  Add and Mul with a constant operand are elementwise and go to the map engine; Max and
  Min with a constant operand, and every broadcast between two activations, are refused
  (naming the node).
* Gather (``hls_templates/verilog/gather.v.j2``): Transpose and nearest Resize with
  integer factors. The frame memory is read in output order: output axis ``j`` has
  ``D_j`` source positions each repeated ``R_j`` times, at input stride ``S_j``; the
  address is ``sum idx_j * S_j``. The integers are moved, not changed.
* Reorder (:func:`reorder_engine`, the gather template, no IR node): the stream of one
  tensor converted from one layout to another.

Stream layouts: a stream of a tensor of per-sample shape ``s`` (rank ``r``) in layout
``perm`` (a permutation of ``range(r)``) carries ``x.transpose(perm).reshape(-1)`` for one
sample ``x``; the identity is the IR's flat order (CHW), ``(1, ..., r - 1, 0)`` channels
last. The builders take ``layouts = {"in": [perm per activation input], "out": perm}``
(``None``, or a ``None`` perm, is the identity):

* Add / Mul / Max / Min of two activations: every input and the output in one layout (refused
  otherwise; layouts that differ only in where axes of size 1 go count as one, as they
  stream the same order); the elementwise loop is the same in any layout.
* Concat on IR axis ``a``: every input and the output in one layout ``perm`` (as for
  Add; refused otherwise); in the stream the concatenation axis is ``perm.index(a)`` of the permuted
  shapes, and the block logic above runs on those (channels-last concatenation of
  channels: one block per input per pixel).
* Gather: the memory is read in the output's stream order (the output shape permuted by
  the out layout); each output stream axis ``j`` is IR output axis ``k = out[j]``, whose
  source is input axis ``src(k)`` (``perm[k]`` for a Transpose of ``perm``, ``k`` for a
  Resize, ``out[j]`` for a reorder) with ``D_j = in_shape[src(k)]``, ``R_j`` its resize
  factor (1 otherwise) and ``S_j`` the stride of input axis ``src(k)`` in the input's
  stream layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..ir import Graph
from ..ir.ops.add import add_params
from .engines import GatherEngine, JoinEngine, Operators, Timing
from .estimate import bram_bank
from .lower import BackendError
from .naming import sanitize
from .registry import registrar
from .rtl import address_width, bits, counter, requant_numbers, sext, shex, ulit
from .verilog_streams import check_perm, layout_note, node_layouts, refuse, same_order, stream_shape, stream_strides

# a streaming join's input buffers (2) plus its operand and output registers (2): the
# elements one port can hold; and its cycles from an input beat to the output beat
STREAM_JOIN_CAPACITY = 4
STREAM_JOIN_LATENCY = 3

# op -> the arithmetic of its streaming join: (node, q, type of a, type of b, output type)
# -> the numbers its template branch prints (``rule``, ``mode``, ``R``, ...); every op
# here is implemented by :func:`join_engine` with two activations of one shape
STREAM_JOINS: dict[str, Callable] = {}


_stream_join = registrar(STREAM_JOINS, "streaming joins")


@_stream_join("Add")
def _add(node, q, ta, tb, out_t) -> dict:
    """Both operands aligned to the finer scale exactly and added (with real scales each
    times its own multiplier), requantized once, as ``ir/ops/add.py``."""
    if node.attrs.get("rq_mult") is not None:
        # real scales: y = sat(round_half_up((a * m_a + b * m_b) >> shift)), m_a, m_b >= 0
        ma, mb, shift = add_params(node, q)
        pa, pb = (ta.lo * ma, ta.hi * ma), (tb.lo * mb, tb.hi * mb)
        v_lo, v_hi = pa[0] + pb[0], pa[1] + pb[1]
        # the working width also holds each operand and each product on its own
        r = requant_numbers(min(v_lo, *pa, *pb, ta.lo, tb.lo), max(v_hi, *pa, *pb, ta.hi, tb.hi), shift, out_t)
        return {"rule": f"y = sat(round_half_up((a * {ma} + b * {mb}) >> {shift}))", "mode": "add_mult", "R": r,
                "mults": [shex(r["cw"], ma), shex(r["cw"], mb)], "multipliers": 2}
    f = max(ta.frac, tb.frac)
    ua, ub = f - ta.frac, f - tb.frac
    v_lo, v_hi = (ta.lo << ua) + (tb.lo << ub), (ta.hi << ua) + (tb.hi << ub)
    shift = f - out_t.frac
    return {"rule": f"y = sat(round_half_up(((a << {ua}) + (b << {ub})) >> {shift}))", "ups": [ua, ub],
            "mode": "add", "R": requant_numbers(v_lo, v_hi, shift, out_t)}


@_stream_join("Mul")
def _mul(node, q, ta, tb, out_t) -> dict:
    """The exact product requantized, as ``ir/ops/mul.py``."""
    prods = [ta.lo * tb.lo, ta.lo * tb.hi, ta.hi * tb.lo, ta.hi * tb.hi]
    shift = ta.frac + tb.frac - out_t.frac
    return {"rule": f"y = sat(round_half_up((a * b) >> {shift}))", "mode": "mul", "multipliers": 1,
            "R": requant_numbers(min(prods), max(prods), shift, out_t)}


# the comparison of the aligned operands that makes operand a the winner (on a tie
# either is the value)
PICK_CMP = {"Max": ">", "Min": "<"}


@_stream_join("Max", "Min")
def _pick(node, q, ta, tb, out_t) -> dict:
    """``y = sat(round_half_up(max(a * m_a, b * m_b) >> shift))`` (min for Min), as
    ``ir/ops/minmax.py``; a multiplier that is a power of two (every one with pow2
    scales) is a left shift."""
    ma, mb, shift = add_params(node, q)
    pa, pb = (ta.lo * ma, ta.hi * ma), (tb.lo * mb, tb.hi * mb)
    # the working width holds each operand and each aligned operand (the winner is one of them)
    r = requant_numbers(min(*pa, *pb, ta.lo, tb.lo), max(*pa, *pb, ta.hi, tb.hi), shift, out_t)
    fn = node.op.lower()
    if node.attrs.get("rq_mult") is not None:
        rule = f"y = sat(round_half_up({fn}(a * {ma}, b * {mb}) >> {shift}))"
    else:
        rule = f"y = sat(round_half_up({fn}(a << {ma.bit_length() - 1}, b << {mb.bit_length() - 1}) >> {shift}))"
    return {"rule": rule, "mode": fn, "R": r, "aligned": [_scaled(m, r["cw"]) for m in (ma, mb)],
            "cmp": PICK_CMP[node.op], "multipliers": sum(not _power_of_two(m) for m in (ma, mb))}


def _power_of_two(m: int) -> bool:
    return m > 0 and m & (m - 1) == 0


def _scaled(m: int, cw: int) -> str:
    """What multiplies a ``cw``-bit operand by ``m >= 0`` (appended to the operand): a
    left shift for a power of two (nothing for 1), else a product by the constant."""
    if _power_of_two(m):
        return f" <<< {m.bit_length() - 1}" if m > 1 else ""
    return f" * {shex(cw, m)}"


JOIN_OPS = frozenset(STREAM_JOINS) | {"Concat"}


@dataclass(frozen=True)
class PickJoinEngine(JoinEngine):
    """Max / Min of two activations: a streaming join whose data path is, besides the
    requantization, one comparator of the two aligned operands and the multiplexer that
    passes the winner."""

    def operators(self) -> Operators:
        o = super().operators()
        cw = self.numbers["R"]["cw"]
        return replace(o, comparators=o.comparators + (cw,), muxes=o.muxes + (cw,))


def _port(q: Graph, t: str, name: str) -> dict:
    tt = q.qtype(t)
    n = int(np.prod(q.shape(t)))
    return {"name": name, "n": n, "t": tt, "w": tt.width, "w_m1": tt.width - 1, "n_m1": n - 1, **counter("i", n)}


def join_engine(q: Graph, node, name: str, layouts: dict | None = None) -> JoinEngine:
    acts = [t for t in node.inputs if not q.is_const(t)]
    in_p, out_p = node_layouts(q, node, layouts)
    if not all(same_order(q.shape(t), p, out_p) for t, p in zip(acts, in_p)):
        refuse(node, f"has inputs in layouts {in_p} and its output in layout {out_p}: the join engine "
                      f"needs one layout for all of them")
    y = node.outputs[0]
    out_t = q.qtype(y)
    out_shape = tuple(q.shape(y))
    ports = [_port(q, t, f"p{k}") for k, t in enumerate(acts)]
    n_out = int(np.prod(out_shape))
    e: dict = {"template": "join.v.j2", "ports": [p["name"] for p in ports], "P": ports,
               "n_in": sum(p["n"] for p in ports), "n_out": n_out, "out_type": str(out_t),
               "in_types": [str(p["t"]) for p in ports], "multipliers": 0,
               "frame_memory_words": sum(p["n"] for p in ports), "macs": 0}
    if node.op in STREAM_JOINS:
        if len(acts) != 2:
            refuse(node, "has a constant operand: the join engine takes two activations")
        if any(tuple(q.shape(t)) != out_shape for t in acts):
            refuse(node, "needs two activations of the output's shape (no broadcasting between activations)")
        e.update(STREAM_JOINS[node.op](node, q, *(q.qtype(t) for t in acts), out_t))
        e["rule"] += layout_note(out_p)
        e["ops"] = [sext(f"d{k}", p["t"], e["R"]["cw"]) for k, p in enumerate(ports)]
    else:  # Concat
        e.update(_concat(q, node, name, acts, ports, out_p, out_shape))
    ob = bits(n_out)
    e.update(ob_m1=ob - 1, o_zero=ulit(ob, 0), o_one=ulit(ob, 1), o_last=ulit(ob, n_out - 1),
             ow_m1=out_t.width - 1, load_words=max(p["n"] for p in ports))
    streaming = node.op in STREAM_JOINS
    if streaming:
        # streaming: both ports in one order, one element of each per output; the ports
        # load in parallel, so a frame lasts its slowest input (at least n_out cycles)
        e.update(frame_memory_words=0, capacity=STREAM_JOIN_CAPACITY)
        timing = Timing(n_out, n_out + 3, STREAM_JOIN_LATENCY)
    else:
        timing = Timing(n_out, max(p["n"] for p in ports) + n_out + 3, n_out + 3)
    typed = ("template", "ports", "n_in", "n_out", "multipliers", "frame_memory_words", "macs", "load_words")
    cls = PickJoinEngine if node.op in PICK_CMP else JoinEngine
    return cls(e["template"], tuple(e["ports"]), e["n_in"], n_out, timing,
               {**{k: v for k, v in e.items() if k not in typed}, "streaming": streaming},
               multipliers=e["multipliers"], frame_memory_words=e["frame_memory_words"], streaming=streaming,
               buffered=STREAM_JOIN_CAPACITY if streaming else 0, port_sizes=tuple(p["n"] for p in ports))


def _concat(q: Graph, node, name: str, acts: list, ports: list, out_p: tuple, out_shape: tuple) -> dict:
    """The numbers of a Concat's frame-buffered join."""
    out_t = q.qtype(node.outputs[0])
    n_out = int(np.prod(out_shape))
    ir_axis = int(node.attr("axis"))
    axis = out_p.index(ir_axis)  # the concatenation axis of the stream
    blocks = [int(np.prod(stream_shape(q.shape(t), out_p)[axis:])) for t in acts]
    outer = int(np.prod(stream_shape(out_shape, out_p)[:axis]))
    if sum(blocks) * outer != n_out:
        raise BackendError(f"internal: concat {name} sizes")
    rs = []
    for k, (t, p) in enumerate(zip(acts, ports)):
        r = requant_numbers(p["t"].lo, p["t"].hi, p["t"].frac - out_t.frac, out_t)
        r["x"] = sext(f"d{k}", p["t"], r["cw"])
        rs.append(r)
    kb = bits(len(ports))
    bw = bits(max(blocks))
    return dict(mode="concat", RS=rs, kb_m1=kb - 1, bw_m1=bw - 1, blocks=blocks, outer=outer,
                k_zero=ulit(kb, 0), k_one=ulit(kb, 1), k_last=ulit(kb, len(ports) - 1),
                b_zero=ulit(bw, 0), b_one=ulit(bw, 1),
                block_last=[ulit(bw, b - 1) for b in blocks], ks=[ulit(kb, k) for k in range(len(ports))],
                rule=f"concatenation on axis {ir_axis}: per output row, blocks of {blocks} values, "
                     f"each requantized to {out_t}"
                     + ("" if axis == ir_axis and out_p == tuple(range(len(out_p)))
                        else f"; streams in layout {out_p}, stream axis {axis}"))


def gather_engine(q: Graph, node, name: str, layouts: dict | None = None) -> GatherEngine:
    x, y = node.inputs[0], node.outputs[0]
    x_t, o_t = q.qtype(x), q.qtype(y)
    if x_t != o_t:
        refuse(node, "changes the fixed-point type")
    (in_p,), out_p = node_layouts(q, node, layouts)
    if node.op == "Transpose":
        perm = tuple(node.attr("perm"))
        src = [(p, 1) for p in perm]  # output axis k reads input axis perm[k]
        rule = f"transpose, perm {perm} of the per-sample axes"
    else:
        scales = tuple(int(v) for v in node.attr("scales"))
        src = [(k, f) for k, f in enumerate(scales)]
        rule = f"nearest resize by integer factors {scales}"
    if in_p != tuple(range(len(in_p))) or out_p != tuple(range(len(out_p))):
        rule += f"; input stream in layout {in_p}, output stream in layout {out_p}"
    return _gather(q, x, y, name, src, in_p, out_p, rule)


def reorder_engine(q: Graph, tensor: str, name: str, in_perm, out_perm) -> GatherEngine:
    """A gather engine (no IR node, op ``Reorder``) converting the stream of ``tensor``
    (type and values unchanged) from layout ``in_perm`` to layout ``out_perm``."""
    shape = tuple(q.shape(tensor))
    in_p = check_perm(in_perm, len(shape), f"the input of reorder {name}")
    out_p = check_perm(out_perm, len(shape), f"the output of reorder {name}")
    rule = f"reorder of {sanitize(tensor)} {shape} from layout {in_p} to layout {out_p}"
    e = _gather(q, tensor, tensor, name, [(k, 1) for k in range(len(shape))], in_p, out_p, rule)
    return e.placed(name=name, op="Reorder", module=f"nnf_{name}")


def _gather(q: Graph, x: str, y: str, name: str, src: list[tuple[int, int]], in_p: tuple[int, ...],
            out_p: tuple[int, ...], rule: str) -> GatherEngine:
    """The gather engine reading ``x`` (stream layout ``in_p``) as ``y`` (layout ``out_p``):
    IR output axis ``k`` reads input axis ``src[k][0]``, each position repeated
    ``src[k][1]`` times."""
    x_t, o_t = q.qtype(x), q.qtype(y)
    in_shape = tuple(q.shape(x))
    strides = stream_strides(in_shape, in_p)
    if len(src) != len(q.shape(y)):
        raise BackendError(f"internal: gather {name} ranks")
    # output stream axis j is IR output axis out_p[j]
    dims = [(in_shape[src[k][0]], src[k][1], strides[src[k][0]]) for k in out_p]
    # axes of size 1 repeated once are no-ops; merge nothing else (keep it readable)
    dims = [d for d in dims if (d[0], d[1]) != (1, 1)] or [(1, 1, 0)]
    n_in = int(np.prod(in_shape))
    n_out = int(np.prod(q.shape(y)))
    if int(np.prod([d * r for d, r, _ in dims])) != n_out:
        raise BackendError(f"internal: gather {name} sizes")
    load = counter("i", n_in)
    aw = address_width(load["ib"], [(d, s) for d, _, s in dims])
    D = [{**counter("d", d), **counter("r", r), "rep": r > 1, "stride": ulit(aw, s)} for d, r, s in dims]
    numbers = {"D": D, "dims": [{"D": d, "R": r, "S": s} for d, r, s in dims],
               "in_type": str(x_t), "out_type": str(o_t), "xw_m1": x_t.width - 1, "n_in_m1": n_in - 1,
               **load, "aw_m1": aw - 1, "a_zero": ulit(aw, 0), "rule": rule,
               "bram": bram_bank(x_t.width, n_in, load["ib"])}  # the frame memory in DP16KD tiles (ECP5)
    return GatherEngine("gather.v.j2", ("in",), n_in, n_out, Timing(n_out, n_in + n_out + 3, n_out + 4), numbers,
                        frame_memory_words=n_in)
