"""Map engines for the Verilog backend: elementwise ops, one element per cycle, no frame
memory (``hls_templates/verilog/map.v.j2``).

The engine streams: input register (with a one-word skid slot, so ``in_ready`` is a
register) -> compute -> output register, one element per cycle at full throughput;
``out_ready`` low holds the pipeline, no element is lost or duplicated. Every number
comes from :func:`.program._step_params` (the C backend's parameters, i.e. the golden
``int_ref`` of each op) and is printed by the template:

* ``sat(round_shift(v, shift))`` ops (the ``requant`` macro of ``_requant.v.j2`` with the
  numbers of :func:`.verilog_join.requant_numbers`), ``v`` from the input ``x``:

  - Relu: ``sat(round_shift(max(x, 0), s)) == clamp(round_shift(x, s), max(lo, 0), hi)``
    (``round_shift`` is monotone and maps 0 to 0), so ``v = x`` with the lower bound
    ``max(lo(y), 0)``;
  - Clip: ``sat(min(max(x, lo_q), hi_q)) == clamp(x, sat(min(lo_q, hi_q)), sat(hi_q))``
    (also right when ``lo_q > hi_q``: then both bounds are ``sat(hi_q)``), so ``v = x``,
    shift 0, those bounds;
  - LeakyRelu: ``v = x < 0 ? x * mult : x << mult_frac``;
  - BatchNormalization: ``v = x * mul[c] + add[c]``;
  - Add with one constant operand ``k``: ``v = (x << ux) + (k << uk)`` (``k << uk`` is
    stored shifted);
  - Mul with one constant operand ``k``: ``v = x * k``.

* table ops (Sigmoid, Tanh, HardSigmoid, HardSwish): ``y = table[x - lo(x)]``, a ROM of
  ``2**width(x)`` words read at ``(x - lo(x)) mod 2**width(x)``.

Per-position constants (BN's ``mul``/``add``, the constant of Add/Mul broadcast to the
output shape) are stored as small ROMs read at ``(i // R) % D`` for the flat index ``i``
(CHW order), with a repeat counter ``r`` (0..R-1) and an index counter ``d`` (0..D-1)
that advance with every element leaving the input register. ``(R, D)`` is the smallest
pattern that holds for the values: ``D = 1`` (one number, no ROM), per channel
(``R = H*W, D = C``), per position (``R = 1, D = H*W``), ..., or the whole tensor.

Stream layouts (``layouts = {"in": [perm], "out": perm}``, see :mod:`.verilog_join`):
the input and the output must be in one layout, or in layouts that stream the same order
(differing only in axes of size 1); refused otherwise: an elementwise engine does not
reorder. The constants follow the stream: each is broadcast to the output
shape, transposed by the layout and flattened (BN's ``mul``/``add`` through the channel
index of every element), and ``(R, D)`` is found on that array over the permuted shape;
channels last, a per-channel constant is ``R = 1, D = C``.

Timing: the engine computes while it loads, so ``compute_cycles`` is 0 (the frame time
is the load time + 3, the graph top's rule) and ``in_to_out`` is 3 (last input beat ->
last output beat, counted as the frame engines count theirs).
"""

from __future__ import annotations

import numpy as np

from ..ir import FixedType, Graph
from ..ir.fixed import signed_width_for
from .lower import BackendError
from .program import TABLE_OPS, _step_params
from .verilog import _bits, _hex, _shex, _ulit
from .verilog_join import node_layouts, refuse, requant_numbers, same_order, sext, stream_shape

# Add and Mul are not listed: verilog_cnn.ENGINES sends them to join_engine, which hands
# the ones with a constant operand to map_engine.
MAP_OPS = frozenset({"Relu", "LeakyRelu", "Clip", "BatchNormalization"} | TABLE_OPS)




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
            "words": [_hex(w, int(v)) for v in values], "lo": int(values.min()), "hi": int(values.max()),
            "values": values}


def map_engine(q: Graph, node, name: str, layouts: dict | None = None) -> dict:
    op = node.op
    acts = [t for t in node.inputs if not q.is_const(t)]
    if len(acts) != 1:
        refuse(node, "needs exactly one activation input (the map engine)")
    x, y = acts[0], node.outputs[0]
    x_t, o_t = q.qtype(x), q.qtype(y)
    shape = tuple(int(d) for d in q.shape(y))
    if tuple(q.shape(x)) != shape:
        refuse(node, f"reads an activation of shape {tuple(q.shape(x))} for an output of shape {shape}")
    (in_p,), perm = node_layouts(q, node, layouts)
    if not same_order(shape, in_p, perm):
        refuse(node, f"has its input in layout {in_p} and its output in layout {perm}: an elementwise "
                      f"engine keeps the layout")
    identity = perm == tuple(range(len(perm)))
    sshape = stream_shape(shape, perm)  # row-major order of this shape = the stream order

    def stream(a: np.ndarray) -> np.ndarray:
        """A constant broadcast to the output shape, flat in stream order."""
        return np.broadcast_to(a, shape).transpose(perm).reshape(-1)

    n = int(np.prod(shape))
    if op in ("Add", "Mul") and len(node.inputs) != 2:
        refuse(node, "needs two operands")
    _, p, macs, _ = _step_params(q, node, name)
    e: dict = {"template": "map.v.j2", "ports": ["in"], "n_in": n, "n_out": n, "in_type": str(x_t),
               "out_type": str(o_t), "xw_m1": x_t.width - 1, "ow_m1": o_t.width - 1, "frame_memory_words": 0,
               "macs": 0, "multipliers": 0, "roms": [], "R": 1, "D": 1, "rom_on": False}
    consts: list[np.ndarray] = []  # per-position constants, flat over the output (CHW)
    if op in TABLE_OPS:
        table = np.asarray(q.consts[node.inputs[1]], dtype=np.int64)
        if table.shape != (1 << x_t.width,) or int(p["lo"]) != x_t.lo:
            refuse(node, "has no table over its whole input type")
        if table.size and (int(table.min()) < o_t.lo or int(table.max()) > o_t.hi):
            refuse(node, "has table values outside its output type")
        e.update(mode="table", n_tab_m1=table.size - 1, tab=[_hex(o_t.width, int(v)) for v in table],
                 lo_x=_hex(x_t.width, x_t.lo),
                 rule=f"y = table[x - ({x_t.lo})], {table.size} entries")
        e["timing"] = _timing(n)
        return {**e, **_counters(1, 1, n)}
    if op == "Relu":
        shift = int(p["shift"])
        v_lo, v_hi = x_t.lo, x_t.hi
        lo, hi = max(o_t.lo, 0), o_t.hi
        expr = "{x}"
        rule = f"y = sat(round_half_up(max(x, 0) >> {shift})) = clamp(round_half_up(x >> {shift}), {lo}, {hi})"
    elif op == "Clip":
        shift = 0
        lo_q, hi_q = int(p["lo"]), int(p["hi"])
        lo, hi = (int(np.clip(v, o_t.lo, o_t.hi)) for v in (min(lo_q, hi_q), hi_q))
        v_lo, v_hi = x_t.lo, x_t.hi
        expr = "{x}"
        rule = f"y = sat(min(max(x, {lo_q}), {hi_q})) = clamp(x, {lo}, {hi})"
    elif op == "LeakyRelu":
        shift, mult, mf = int(p["shift"]), int(p["mult"]), int(p["mult_frac"])
        lo, hi = o_t.lo, o_t.hi
        cand = [max(x_t.lo, 0) << mf, max(x_t.hi, 0) << mf]
        if x_t.lo < 0:
            cand += [x_t.lo * mult, min(x_t.hi, -1) * mult]
            expr = f"x1[{x_t.width - 1}] ? ({{x}} * {{mult}}) : ({{x}} <<< {mf})"  # a constant product
        else:  # never negative
            expr = f"{{x}} <<< {mf}"
        v_lo, v_hi = min(cand), max(cand)
        rule = f"y = sat(round_half_up((x < 0 ? x * {mult} : x << {mf}) >> {shift}))"
    elif op == "BatchNormalization":
        shift = int(p["shift"])
        lo, hi = o_t.lo, o_t.hi
        mul = np.asarray(q.consts[node.inputs[1]], dtype=np.int64).reshape(-1)
        add = np.asarray(q.consts[node.inputs[2]], dtype=np.int64).reshape(-1)
        chan = n // shape[0]
        if identity:
            consts = [np.repeat(mul, chan), np.repeat(add, chan)]
            where = f"c = i // {chan}"
        else:  # the channel (IR axis 0) of every element, in stream order
            c_idx = stream(np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)))
            consts = [mul[c_idx], add[c_idx]]
            where = f"c = the channel of element i in layout {perm}"
        expr = "{x} * {k0} + {k1}"
        e.update(multipliers=1, macs=macs)
        rule = f"y = sat(round_half_up((x * mul[c] + add[c]) >> {shift})), {where}"
    elif op in ("Add", "Mul"):
        shift = int(p["shift"])
        lo, hi = o_t.lo, o_t.hi
        ki = next(i for i, t in enumerate(node.inputs) if q.is_const(t))
        k = stream(np.asarray(q.consts[node.inputs[ki]], dtype=np.int64))
        if op == "Add":
            ops = (p["a"], p["b"])
            ux, uk = int(ops[1 - ki]["up"]), int(ops[ki]["up"])
            consts = [k << uk]
            expr = f"({{x}} <<< {ux}) + {{k0}}" if ux else "{x} + {k0}"
            rule = f"y = sat(round_half_up(((x << {ux}) + (k << {uk})) >> {shift})), k constant"
        else:
            consts = [k]
            expr = "{x} * {k0}"
            e.update(multipliers=1, macs=macs)
            rule = f"y = sat(round_half_up((x * k) >> {shift})), k constant"
    else:
        refuse(node, f"the map engine implements {', '.join(sorted(MAP_OPS | {'Add', 'Mul'}))}")
    # per-position constants: the smallest (R, D) pattern, ROMs read at the counters
    if not identity:
        rule += f"; streams in layout {perm}"
    if consts:
        r_rep, d_idx, roms = _pattern(consts, sshape)
        e["roms"] = [_rom(f"k{j}", rv, d_idx) for j, rv in enumerate(roms)]
        e.update(R=r_rep, D=d_idx)
        if op == "BatchNormalization":
            m, a = e["roms"]
            vals = [int(xv) * int(mv) + int(av) for mv, av in zip(m["values"], a["values"]) for xv in (x_t.lo, x_t.hi)]
        elif op == "Add":
            vals = [(x_t.lo << ux) + e["roms"][0]["lo"], (x_t.hi << ux) + e["roms"][0]["hi"]]
        else:
            vals = [int(xv) * kv for xv in (x_t.lo, x_t.hi) for kv in (e["roms"][0]["lo"], e["roms"][0]["hi"])]
        v_lo, v_hi = min(vals), max(vals)
    # the working width holds v, x, every constant and every partial result (products)
    ext = [v_lo, v_hi, x_t.lo, x_t.hi]
    for rom in e["roms"]:
        ext += [rom["lo"], rom["hi"]]
    if op == "BatchNormalization":
        m = e["roms"][0]
        ext += [xv * mv for xv in (x_t.lo, x_t.hi) for mv in (m["lo"], m["hi"])]
    if op == "Add":
        ext += [x_t.lo << ux, x_t.hi << ux]
    if op == "LeakyRelu":
        ext += [mult]
    r = requant_numbers(min(ext), max(ext), shift, o_t, lo=lo, hi=hi)
    cw = r["cw"]
    xs = sext("x1", x_t, cw)
    ks = {}
    for rom in e["roms"]:
        if e["D"] == 1:  # one number: a literal, no ROM
            ks[rom["name"]] = _shex(cw, int(rom["values"][0]))
        else:
            ks[rom["name"]] = sext(f"{rom['name']}_q", rom["t"], cw)
    if op == "LeakyRelu":
        ks["mult"] = _shex(cw, mult)
    for rom in e["roms"]:
        del rom["t"], rom["values"]
    if e["D"] == 1:  # a product by one constant (shifts and adds), not a multiplier
        e["multipliers"] = 0
    e.update(mode="requant", RQ=r, v=expr.format(x=xs, **ks), rule=rule, rom_on=e["D"] > 1)
    e["timing"] = _timing(n)
    return {**e, **_counters(e["R"], e["D"], n)}


def _counters(r_rep: int, d_idx: int, n: int) -> dict:
    if n % (r_rep * d_idx):
        raise BackendError("internal: map engine counters do not divide the frame")
    rb, db = _bits(r_rep), _bits(d_idx)
    return {"r_on": r_rep > 1 and d_idx > 1, "rb_m1": rb - 1, "r_zero": _ulit(rb, 0), "r_one": _ulit(rb, 1),
            "r_last": _ulit(rb, r_rep - 1), "db_m1": db - 1, "d_zero": _ulit(db, 0), "d_one": _ulit(db, 1),
            "d_last": _ulit(db, d_idx - 1)}


def _timing(n: int) -> dict:
    return {"compute_cycles": 0, "frame_cycles": n + 3, "in_to_out": 3}
