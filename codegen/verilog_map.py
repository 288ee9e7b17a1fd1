"""Map engines for the Verilog backend: elementwise ops, one element per cycle, no frame
memory (``hls_templates/verilog/map.v.j2``).

The engine streams: input register (with a one-word skid slot, so ``in_ready`` is a
register) -> compute -> output register, one element per cycle at full throughput;
``out_ready`` low holds the pipeline, no element is lost or duplicated. Every number
comes from :func:`.program.step_params` (the C backend's parameters, i.e. the golden
``int_ref`` of each op) through the op's entry in :data:`VALUES`, and is printed by the
template:

* ``sat(round_shift(v, shift))`` ops (the ``requant`` macro of ``_requant.v.j2`` with the
  numbers of :func:`.rtl.requant_numbers`), ``v`` from the input ``x``:

  - Relu: ``sat(round_shift(max(x, 0), s)) == clamp(round_shift(x, s), max(lo, 0), hi)``
    (``round_shift`` is monotone and maps 0 to 0), so ``v = x`` with the lower bound
    ``max(lo(y), 0)``;
  - Clip: ``sat(min(max(x, lo_q), hi_q)) == clamp(x, sat(min(lo_q, hi_q)), sat(hi_q))``
    (also right when ``lo_q > hi_q``: then both bounds are ``sat(hi_q)``), so ``v = x``,
    shift 0, those bounds;
  - LeakyRelu: ``v = x < 0 ? x * mult : x << mult_frac``;
  - PRelu: ``v = x < 0 ? x * mult[c] : x << mult_frac``;
  - BatchNormalization: ``v = x * mul[c] + add[c]``;
  - Add with one constant operand ``k``: ``v = (x << ux) + (k << uk)`` (``k << uk`` is
    stored shifted);
  - Mul with one constant operand ``k``: ``v = x * k``.

* table ops (every op with the ``table`` trait: Sigmoid, Tanh, ...): ``y = table[x - lo(x)]``,
  a ROM of ``2**width(x)`` words read at ``(x - lo(x)) mod 2**width(x)``.

Per-position constants (BN's ``mul``/``add``, PRelu's ``mult``, the constant of Add/Mul broadcast to the
output shape) are stored as small ROMs read at ``(i // R) % D`` for the flat index ``i``
(CHW order), with a repeat counter ``r`` (0..R-1) and an index counter ``d`` (0..D-1)
that advance with every element leaving the input register. ``(R, D)`` is the smallest
pattern that holds for the values: ``D = 1`` (one number, no ROM), per channel
(``R = H*W, D = C``), per position (``R = 1, D = H*W``), ..., or the whole tensor.

Stream layouts (``layouts = {"in": [perm], "out": perm}``, see :mod:`.verilog_streams`):
the input and the output must be in one layout, or in layouts that stream the same order
(differing only in axes of size 1); refused otherwise: an elementwise engine does not
reorder. The constants follow the stream: each is broadcast to the output
shape, transposed by the layout and flattened (BN's ``mul``/``add`` through the channel
index of every element), and ``(R, D)`` is found on that array over the permuted shape;
channels last, a per-channel constant is ``R = 1, D = C``.

Timing: the engine computes while it loads, so ``compute_cycles`` is 0 (the frame time
is the load time + 3, the graph top's rule) and ``in_to_out`` is 3 (last input beat ->
last output beat, counted as the window engines count theirs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..ir import FixedType, Graph
from ..ir.ops import ops_with
from ..ir.ops.add import add_params
from ..ir.ops.prelu import channel_slopes
from ..ir.fixed import signed_width_for
from .engines import MapEngine, Timing
from .lower import BackendError
from .program import step_params
from .registry import registrar
from .rtl import counter, hexlit, requant_numbers, sext, shex
from .verilog_streams import node_layouts, refuse, same_order, stream_shape

TABLE_OPS = ops_with(table=True)  # y = table[x - lo(x)]; every other op: VALUES below
JOINED = ops_with(join=True)  # two operands: here one of them a constant




def _pattern(arrays: list[np.ndarray], shape: tuple[int, ...]) -> tuple[int, int, list[np.ndarray]]:
    """``(R, D, roms)``: the smallest ``D`` (then ``R``) with ``a[i] == rom[(i // R) % D]``
    for every flat array ``a`` (row-major over ``shape``), ``D`` and ``R`` products of
    neighbouring axes (``D = 1`` is one number; ``D = n`` the whole tensor)."""
    shape = tuple(int(d) for d in shape) or (1,)
    n = int(np.prod(shape))
    cands = {(n, 1)}
    for j in range(len(shape)):
        for k in range(j, len(shape)):
            cands.add((int(np.prod(shape[k + 1:])), int(np.prod(shape[j:k + 1]))))
    for r, d in sorted(cands, key=lambda rd: (rd[1], rd[0])):
        roms = [a.reshape(-1, d, r)[0, :, 0] for a in arrays]
        if all(np.array_equal(a.reshape(-1, d, r), np.broadcast_to(rom.reshape(1, d, 1), (n // (d * r), d, r)))
               for a, rom in zip(arrays, roms)):
            return r, d, roms
    raise BackendError("internal: no constant pattern")  # unreachable: (R, D) = (1, n) always fits


def _rom(name: str, values: np.ndarray, d: int) -> dict:
    """One constant operand: a ROM of ``d`` words (or, for ``d == 1``, a literal)."""
    w = signed_width_for(int(values.min()), int(values.max()))
    return {"name": name, "w": w, "w_m1": w - 1, "n_m1": d - 1, "t": FixedType(w, 0, True),
            "words": [hexlit(w, int(v)) for v in values], "lo": int(values.min()), "hi": int(values.max()),
            "values": values}


@dataclass
class _Value:
    """One op's ``v`` before ``sat(round_shift(v, shift))`` to ``[lo, hi]``: the Verilog
    expression ``expr`` of the input ``{x}``, the constants ``{k0}``, ``{k1}`` (``consts``:
    per position, flat in stream order) and the literals ``literals``; ``extent(roms)``:
    the values ``v`` and its partial results reach, given the constants' ROMs (their
    ``lo`` / ``hi``); ``product``: ``v`` multiplies ``x`` by a constant (a multiplier
    when that constant is a ROM of several words)."""

    shift: int
    lo: int
    hi: int
    expr: str
    rule: str
    extent: Callable[[list[dict]], list[int]]
    consts: list = field(default_factory=list)
    literals: dict = field(default_factory=dict)
    product: bool = False


# op -> its ``v`` (:class:`_Value`) from (q, node, step parameters, input type, output
# type, stream view); every op here is implemented by :func:`map_engine`
VALUES: dict[str, Callable] = {}


_value = registrar(VALUES, "map engine values")


@dataclass(frozen=True)
class _View:
    """The output shape, its stream layout and a constant's flat stream order."""

    shape: tuple[int, ...]
    perm: tuple[int, ...]

    @property
    def identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm)))

    def stream(self, a: np.ndarray) -> np.ndarray:
        """A constant broadcast to the output shape, flat in stream order."""
        return np.broadcast_to(a, self.shape).transpose(self.perm).reshape(-1)


@_value("Relu")
def _relu(q, node, p, x_t, o_t, view) -> _Value:
    shift = int(p["shift"])
    lo, hi = max(o_t.lo, 0), o_t.hi
    return _Value(shift, lo, hi, "{x}", f"y = sat(round_half_up(max(x, 0) >> {shift})) = "
                  f"clamp(round_half_up(x >> {shift}), {lo}, {hi})", lambda roms: [x_t.lo, x_t.hi])


@_value("Clip")
def _clip(q, node, p, x_t, o_t, view) -> _Value:
    lo_q, hi_q = int(p["lo"]), int(p["hi"])
    lo, hi = (int(np.clip(v, o_t.lo, o_t.hi)) for v in (min(lo_q, hi_q), hi_q))
    return _Value(0, lo, hi, "{x}", f"y = sat(min(max(x, {lo_q}), {hi_q})) = clamp(x, {lo}, {hi})",
                  lambda roms: [x_t.lo, x_t.hi])


@_value("LeakyRelu")
def _leaky_relu(q, node, p, x_t, o_t, view) -> _Value:
    shift, mult, mf = int(p["shift"]), int(p["mult"]), int(p["mult_frac"])
    cand = [max(x_t.lo, 0) << mf, max(x_t.hi, 0) << mf]
    if x_t.lo < 0:
        cand += [x_t.lo * mult, min(x_t.hi, -1) * mult]
        expr = f"x1[{x_t.width - 1}] ? ({{x}} * {{mult}}) : ({{x}} <<< {mf})"  # a constant product
    else:  # never negative
        expr = f"{{x}} <<< {mf}"
    return _Value(shift, o_t.lo, o_t.hi, expr,
                  f"y = sat(round_half_up((x < 0 ? x * {mult} : x << {mf}) >> {shift}))",
                  lambda roms: cand + [mult], literals={"mult": mult})


@_value("PRelu")
def _prelu(q, node, p, x_t, o_t, view) -> _Value:
    """LeakyRelu's ``v`` with a multiplier per channel: ``x < 0 ? x * mult[c] : x << mult_frac``."""
    shift, mf = int(p["shift"]), int(p["mult_frac"])
    mult = channel_slopes(np.asarray(q.consts[node.inputs[1]], dtype=np.int64), view.shape)
    cand = [max(x_t.lo, 0) << mf, max(x_t.hi, 0) << mf]
    if x_t.lo < 0:
        consts, where = _per_channel([mult], view)
        expr = f"x1[{x_t.width - 1}] ? ({{x}} * {{k0}}) : ({{x}} <<< {mf})"
    else:  # never negative: no multiplier
        consts, where, expr = [], "", f"{{x}} <<< {mf}"

    def extent(roms):
        if not roms:
            return cand
        return cand + [xv * mv for xv in (x_t.lo, min(x_t.hi, -1)) for mv in (roms[0]["lo"], roms[0]["hi"])]

    return _Value(shift, o_t.lo, o_t.hi, expr,
                  f"y = sat(round_half_up((x < 0 ? x * mult[c] : x << {mf}) >> {shift}))" + (where and f", {where}"),
                  extent, consts, product=bool(consts))


def _per_channel(vectors: list[np.ndarray], view: _View) -> tuple[list[np.ndarray], str]:
    """Per-channel constants (``(C,)`` each) as per-element arrays in stream order, and how
    the channel ``c`` of element ``i`` is found."""
    shape = view.shape
    chan = int(np.prod(shape)) // shape[0]
    if view.identity:
        return [np.repeat(v, chan) for v in vectors], f"c = i // {chan}"
    # the channel (IR axis 0) of every element, in stream order
    c_idx = view.stream(np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)))
    return [v[c_idx] for v in vectors], f"c = the channel of element i in layout {view.perm}"


@_value("BatchNormalization")
def _batchnorm(q, node, p, x_t, o_t, view) -> _Value:
    shift = int(p["shift"])
    mul = np.asarray(q.consts[node.inputs[1]], dtype=np.int64).reshape(-1)
    add = np.asarray(q.consts[node.inputs[2]], dtype=np.int64).reshape(-1)
    consts, where = _per_channel([mul, add], view)

    def extent(roms):
        m, a = roms
        vals = [int(xv) * int(mv) + int(av) for mv, av in zip(m["values"], a["values"]) for xv in (x_t.lo, x_t.hi)]
        return vals + [xv * mv for xv in (x_t.lo, x_t.hi) for mv in (m["lo"], m["hi"])]

    return _Value(shift, o_t.lo, o_t.hi, "{x} * {k0} + {k1}",
                  f"y = sat(round_half_up((x * mul[c] + add[c]) >> {shift})), {where}", extent, consts,
                  product=True)


def _const_operand(q, node, view) -> tuple[int, np.ndarray]:
    ki = next(i for i, t in enumerate(node.inputs) if q.is_const(t))
    return ki, view.stream(np.asarray(q.consts[node.inputs[ki]], dtype=np.int64))


@_value("Add")
def _add_const(q, node, p, x_t, o_t, view) -> _Value:
    if node.attrs.get("rq_mult") is not None:
        refuse(node, "has real-scale multipliers (rq_mult) and a constant operand; the map engine "
                     "implements only the power-of-two Add")
    shift = int(p["shift"])
    ki, k = _const_operand(q, node, view)
    ops = (p["a"], p["b"])
    ux, uk = int(ops[1 - ki]["up"]), int(ops[ki]["up"])
    return _Value(shift, o_t.lo, o_t.hi, f"({{x}} <<< {ux}) + {{k0}}" if ux else "{x} + {k0}",
                  f"y = sat(round_half_up(((x << {ux}) + (k << {uk})) >> {shift})), k constant",
                  lambda roms: [(x_t.lo << ux) + roms[0]["lo"], (x_t.hi << ux) + roms[0]["hi"],
                                x_t.lo << ux, x_t.hi << ux], [k << uk])


@_value("Mul")
def _mul_const(q, node, p, x_t, o_t, view) -> _Value:
    shift = int(p["shift"])
    _, k = _const_operand(q, node, view)
    return _Value(shift, o_t.lo, o_t.hi, "{x} * {k0}", f"y = sat(round_half_up((x * k) >> {shift})), k constant",
                  lambda roms: [int(xv) * kv for xv in (x_t.lo, x_t.hi) for kv in (roms[0]["lo"], roms[0]["hi"])],
                  [k], product=True)


@_value("Max", "Min")
def _pick_const(q, node, p, x_t, o_t, view) -> _Value:
    """Max / Min with a constant operand (``ir/ops/minmax.py``): the activation and the
    constant each times its own multiplier (a shift when a power of two), compared, the
    winner requantized once."""
    ki, k = _const_operand(q, node, view)
    mults = add_params(node, q)
    mx, mk, shift = mults[1 - ki], mults[ki], mults[2]
    if mx & (mx - 1) == 0:
        xs = f"({{x}} <<< {mx.bit_length() - 1})"
    else:  # a product by one constant: shifts and adds
        xs = "({x} * {mx})"
    cmp = ">" if node.op == "Max" else "<"
    return _Value(shift, o_t.lo, o_t.hi, f"(({xs} {cmp} {{k0}}) ? {xs} : {{k0}})",
                  f"y = sat(round_half_up({node.op.lower()}(x * {mx}, k * {mk}) >> {shift})), k constant",
                  lambda roms: [x_t.lo * mx, x_t.hi * mx, mx], [k * mk], literals={"mx": mx})


def _check(q: Graph, node, layouts: dict | None) -> tuple[str, str, _View]:
    """The node's activation input, its output and the stream view, refused when the map
    engine cannot stream it (one activation of the output's shape, one layout)."""
    acts = [t for t in node.inputs if not q.is_const(t)]
    if len(acts) != 1:
        refuse(node, "needs exactly one activation input (the map engine)")
    x, y = acts[0], node.outputs[0]
    shape = tuple(int(d) for d in q.shape(y))
    if tuple(q.shape(x)) != shape:
        refuse(node, f"reads an activation of shape {tuple(q.shape(x))} for an output of shape {shape}")
    (in_p,), perm = node_layouts(q, node, layouts)
    if not same_order(shape, in_p, perm):
        refuse(node, f"has its input in layout {in_p} and its output in layout {perm}: an elementwise "
                      f"engine keeps the layout")
    if node.op in JOINED and len(node.inputs) != 2:
        refuse(node, "needs two operands")
    return x, y, _View(shape, perm)


def map_engine(q: Graph, node, name: str, layouts: dict | None = None) -> MapEngine:
    """The map engine of an elementwise node: a table op, or ``sat(round_shift(v, shift))``
    of a ``v`` from :data:`VALUES`."""
    x, y, view = _check(q, node, layouts)
    x_t, o_t = q.qtype(x), q.qtype(y)
    n = int(np.prod(view.shape))
    e: dict = {"template": "map.v.j2", "ports": ["in"], "n_in": n, "n_out": n, "in_type": str(x_t),
               "out_type": str(o_t), "xw_m1": x_t.width - 1, "ow_m1": o_t.width - 1, "frame_memory_words": 0,
               "macs": 0, "multipliers": 0, "roms": [], "R": 1, "D": 1, "rom_on": False, "timing": _timing(n)}
    if node.op in TABLE_OPS:
        return _engine({**e, **_table(node, q, x_t, o_t), **_counters(1, 1, n)})
    if node.op not in VALUES:
        refuse(node, f"the map engine implements {', '.join(sorted(TABLE_OPS | set(VALUES)))}")
    _, p, macs, _ = step_params(q, node, name)
    val = VALUES[node.op](q, node, p, x_t, o_t, view)
    rule = val.rule + ("" if view.identity else f"; streams in layout {view.perm}")
    if val.consts:  # per-position constants: the smallest (R, D) pattern, ROMs read at the counters
        r_rep, d_idx, roms = _pattern(val.consts, stream_shape(view.shape, view.perm))
        e.update(roms=[_rom(f"k{j}", rv, d_idx) for j, rv in enumerate(roms)], R=r_rep, D=d_idx)
    if val.product:
        e.update(multipliers=int(e["D"] > 1), macs=macs)  # a product by one constant: shifts and adds
    # the working width holds v, x, every constant and every partial result (products)
    ext = val.extent(e["roms"]) + [x_t.lo, x_t.hi] + [b for rom in e["roms"] for b in (rom["lo"], rom["hi"])]
    r = requant_numbers(min(ext), max(ext), val.shift, o_t, lo=val.lo, hi=val.hi)
    cw = r["cw"]
    ks = {}
    for rom in e["roms"]:
        if e["D"] == 1:  # one number: a literal, no ROM
            ks[rom["name"]] = shex(cw, int(rom["values"][0]))
        else:
            ks[rom["name"]] = sext(f"{rom['name']}_q", rom["t"], cw)
    ks.update({k: shex(cw, v) for k, v in val.literals.items()})
    for rom in e["roms"]:
        del rom["t"], rom["values"]
    e.update(mode="requant", RQ=r, v=val.expr.format(x=sext("x1", x_t, cw), **ks), rule=rule, rom_on=e["D"] > 1)
    return _engine({**e, **_counters(e["R"], e["D"], n)})


def _engine(e: dict) -> MapEngine:
    """The typed engine of a map engine's numbers."""
    typed = ("template", "ports", "n_in", "n_out", "timing", "multipliers", "macs", "frame_memory_words")
    return MapEngine(e["template"], tuple(e["ports"]), e["n_in"], e["n_out"], Timing(**e["timing"]),
                     {k: v for k, v in e.items() if k not in typed}, multipliers=e["multipliers"], macs=e["macs"])


def _table(node, q: Graph, x_t, o_t) -> dict:
    """A table op: ``y = table[x - lo(x)]``, the table a constant over the whole input type."""
    table = np.asarray(q.consts[node.inputs[1]], dtype=np.int64)
    if table.shape != (1 << x_t.width,) or x_t.hi - x_t.lo + 1 != table.size:
        refuse(node, "has no table over its whole input type")
    if table.size and (int(table.min()) < o_t.lo or int(table.max()) > o_t.hi):
        refuse(node, "has table values outside its output type")
    return {"mode": "table", "n_tab_m1": table.size - 1, "tab": [hexlit(o_t.width, int(v)) for v in table],
            "lo_x": hexlit(x_t.width, x_t.lo), "rule": f"y = table[x - ({x_t.lo})], {table.size} entries"}


def _counters(r_rep: int, d_idx: int, n: int) -> dict:
    if n % (r_rep * d_idx):
        raise BackendError("internal: map engine counters do not divide the frame")
    return {"r_on": r_rep > 1 and d_idx > 1, **counter("r", r_rep), **counter("d", d_idx)}


def _timing(n: int) -> dict:
    return {"compute_cycles": 0, "frame_cycles": n + 3, "in_to_out": 3}
