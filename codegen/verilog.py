"""Verilog-2005 backend: one streaming dense engine per layer, chained by valid/ready.

Python computes every number here (widths, literals, ROM words, timing); the templates in
``hls_templates/verilog/`` only lay the text out.

Engine architecture (``hls_templates/verilog/dense.v.j2``), per layer with ``PE`` output
neurons at once and ``SIMD`` inputs per cycle, ``S = n_in / SIMD`` steps and
``G = n_out / PE`` groups:

* loader: takes one input element per beat, packs ``SIMD`` of them into a word and writes
  it into a ping-pong input memory (two vectors), so loading overlaps computing;
* compute: for each group ``g`` and step ``s`` reads weight word ``g*S + s`` (``PE*SIMD``
  weights) from a synchronous ROM together with input word ``s``, then a pipeline that
  stalls as a whole (one enable): ROM output register, one operand register per
  multiplier, product registers, an adder tree over the ``SIMD`` products of each PE with
  one registered level per stage, and the accumulator (bias added on ``s == 0``), all in
  exactly ``acc_width`` bits;
* requantize + emit: a finished group goes through the per-channel multiply (if any, one
  registered stage) and the registered round/shift, then the clamp of
  ``sat(round_half_up(acc >> shift), lo, hi)`` (``ir/fixed.py``) loads a ``PE``-entry
  output register that is streamed out one element per beat. A finished group that finds
  that register busy waits in a hold register; the compute pipeline stalls only while one
  waits there and another is finished (its enable comes from registers, never from
  ``out_ready``).

Timing (downstream always ready, input back to back), derived in :func:`_layer_timing`,
with ``D`` the pipeline depth of :func:`_pipe_depth` (``6 + ceil(log2 SIMD)``, one more
with per-channel multipliers)::

    per group        T_g = max(S, PE) cycles
    compute / vector C   = G * T_g
    layer II             = max(n_in, C, n_out)
    last input beat -> last output beat of one vector:  D + (G-1)*T_g + S + PE
    whole pipeline II    = max over layers;  latency (first input beat to last output
    beat of vector 0, as a difference of cycle numbers) = (n_in0 - 1) + sum of the above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .engines import EN_LANES, DenseEngine, Timing, dsp_registers, en_copies
from .folding import Option, balanced, fewest, meet_goal
from .lower import BackendError, DenseLayer, HwModel
from .render import render
from .estimate import annotate as annotate_estimate, bram_bank, design_estimate, place_memories, rom_bank
from .rtl import (AXIS_TOP, TOP, axis_wrapper, bits, channel_mult, check_accumulator, fits, hexlit, lut_product,
                  product, repl, shex, type_info, ulit, write_files)

MODES = ("sequential", "balanced", "parallel")
# among foldings with as many lanes, SIMD nearest this one
_SIMD_TARGET = 8


# ----------------------------------------------------------------------------- parallelism

def choose_parallelism(hw: HwModel, mode: str) -> list[tuple[int, int]]:
    """Per layer ``(PE, SIMD)``: PE output neurons computed at once (divides n_out), SIMD
    inputs per cycle and neuron (divides n_in).

    ``sequential``: (1, 1), one multiplier per layer. ``parallel``: (n_out, n_in), every
    product at once. ``balanced``: the engine graph's rule (:func:`.folding.balanced`):
    the shortest period the streams allow (the longest vector, one element per beat), each
    layer folded to the fewest multipliers that meet it (among as many, SIMD nearest 8), or
    a period up to 25% longer whose multipliers are better used.
    """
    if mode == "sequential":
        return [(1, 1) for _ in hw.layers]
    if mode == "parallel":
        return [(ly.n_out, ly.n_in) for ly in hw.layers]
    if mode != "balanced":
        raise ValueError(f"unknown parallelism mode {mode!r}; choose one of {', '.join(MODES)}")
    return balanced_parallelism(hw)[0]


def balanced_parallelism(hw: HwModel) -> tuple[list[tuple[int, int]], dict]:
    """``balanced``'s per layer ``(PE, SIMD)`` and what was decided (the period)."""
    picks, decision = balanced(_units(hw), _floor(hw), hw.macs)
    return [picks[ly.name].fold for ly in hw.layers], decision


def _layer_ii(ly: DenseLayer, pe: int, simd: int) -> int:
    return _layer_timing(ly, pe, simd).ii


def goal_parallelism(hw: HwModel, goal: dict) -> tuple[list[tuple[int, int]], dict]:
    """Per layer ``(PE, SIMD)`` for a folding goal (the search of :func:`.folding.meet_goal`,
    as for the engine graph): ``{"target_cycles": T}`` gives each layer the fewest
    multipliers whose vector time ``max(n_in, compute, n_out)`` fits T;
    a budget (``max_multipliers``, ``max_luts``, ``max_ffs``, ``max_bram``) the shortest
    such period whose layers need at most that many multiplier blocks and whose resource
    estimate fits the rest."""
    def estimate(picks: dict) -> dict:  # the design's estimate from its layers' data, nothing rendered
        ctxs = [_layer_ctx(i, ly, *picks[ly.name].fold) for i, ly in enumerate(hw.layers)]
        return design_estimate([_engine(c) for c in ctxs], n_out=hw.n_out, arch=goal.get("arch", "ecp5"))[1]

    picks, decision = meet_goal(_units(hw), goal, _floor(hw), estimate=estimate)
    return [picks[ly.name].fold for ly in hw.layers], decision


def _floor(hw: HwModel) -> int:
    """No layer beats streaming the longest vector at one element per beat."""
    return max(max(ly.n_in, ly.n_out) for ly in hw.layers)


def _units(hw: HwModel) -> dict[str, list[Option]]:
    """Each layer's foldings as :class:`.folding.Option` values: any PE and SIMD, the
    fewest lanes for each number of groups and steps (a shorter last group or step)."""
    units = {}
    for ly in hw.layers:
        cm = channel_mult(ly.mult, ly.acc_width, ly.n_out, ly.name)["mode"]
        lut = lut_product(ly.in_t.width, ly.in_t.signed, ly.w_t.width, ly.w_t.signed)
        # among foldings with as many lanes, SIMD nearest the balanced one: a wider adder
        # tree and input word cost more logic than more PE lanes
        units[ly.name] = [Option(_layer_ii(ly, pe, s), (n, abs(s.bit_length() - _SIMD_TARGET.bit_length()), pe, s),
                                 m, (pe, s), n)
                          for pe in fewest(ly.n_out) for s in fewest(ly.n_in)
                          for n in (_products(ly, pe, s),)
                          for m in ((0 if lut else n) + _rq_multipliers(cm, pe, -(-ly.n_out // pe)),)]
    return units


def dense_folding(hw: HwModel, parallelism) -> tuple[list[tuple[int, int]], dict, dict, int]:
    """The Dense chain's folding for ``parallelism`` as :func:`write` makes it: per layer
    ``(PE, SIMD)``, the decision, the design's resource estimate and its initiation
    interval (nothing rendered)."""
    _, par, decision = _resolve(hw, parallelism)
    ctxs = [_layer_ctx(i, ly, pe, simd) for i, (ly, (pe, simd)) in enumerate(zip(hw.layers, par))]
    estimate = design_estimate([_engine(c) for c in ctxs], n_out=hw.n_out, arch=decision.get("arch", "ecp5"))[1]
    return par, decision, estimate, max(_layer_ii(ly, pe, simd) for ly, (pe, simd) in zip(hw.layers, par))


def _resolve(hw: HwModel, parallelism) -> tuple[str, list[tuple[int, int]], dict]:
    if parallelism == "balanced":
        par, decision = balanced_parallelism(hw)
        return parallelism, par, decision
    if isinstance(parallelism, str):
        return parallelism, choose_parallelism(hw, parallelism), {"mode": parallelism}
    if isinstance(parallelism, dict):
        par, decision = goal_parallelism(hw, parallelism)
        return decision["mode"], par, decision
    par = [(int(pe), int(simd)) for pe, simd in parallelism]
    if len(par) != len(hw.layers):
        raise ValueError(f"parallelism has {len(par)} entries for {len(hw.layers)} layers")
    for ly, (pe, simd) in zip(hw.layers, par):
        if not (1 <= pe <= ly.n_out and 1 <= simd <= ly.n_in):
            raise ValueError(f"layer {ly.name}: PE={pe} must be in 1..n_out={ly.n_out} and SIMD={simd} in "
                             f"1..n_in={ly.n_in}")
    return "custom", par, {"mode": "custom"}


@dataclass(frozen=True)
class _Timing:
    steps: int  # S = ceil(n_in / SIMD), the last one of n_in - (S - 1) * SIMD inputs
    groups: int  # G = ceil(n_out / PE), the last one of n_out - (G - 1) * PE neurons
    group_cycles: int  # max(S, PE)
    compute_cycles: int  # (G - 1) * max(S, PE) + max(S, the last group's neurons)
    ii: int  # max(n_in, compute, n_out)
    in_to_out: int  # last input beat -> last output beat of one vector
    latency: int  # first input beat -> last output beat, this layer alone


def _tree_levels(simd: int) -> list[int]:
    """Sizes of the adder tree's levels over ``simd`` products (one registered level per
    pipeline stage, pairs summed, an odd one passed on), the products excluded."""
    levels, n = [], simd
    while n > 1:
        n = (n + 1) // 2
        levels.append(n)
    return levels


def _pipe_depth(simd: int, cm: str) -> int:
    """Pipeline stages from an issued step to the output register load: read, ROM output
    register, multiplier operands, products, the adder tree levels, accumulate, the
    per-channel multiply (if any), round/shift."""
    return 4 + len(_tree_levels(simd)) + 1 + (cm != "none") + 1


def _layer_timing(ly: DenseLayer, pe: int, simd: int, cm: str = "none") -> _Timing:
    s, g = -(-ly.n_in // simd), -(-ly.n_out // pe)
    last = ly.n_out - (g - 1) * pe
    tg = max(s, pe)
    # issue steps for group 0 at t+1..t+S; the step issued last reaches the output
    # register after D pipeline stages (_pipe_depth) and the first element leaves the
    # cycle after: group 0 emits from t+S+D+1, each later group max(S, PE) after the
    # previous one (the output register is busy PE beats; the pipeline runs at most one group
    # ahead, into the hold register), PE beats each
    # (the last group's neurons in the last).
    in_to_out = _pipe_depth(simd, cm) + (g - 1) * tg + s + last
    return _Timing(
        steps=s, groups=g, group_cycles=tg, compute_cycles=(g - 1) * tg + max(s, last),
        ii=max(ly.n_in, g * tg, ly.n_out), in_to_out=in_to_out,
        latency=ly.n_in - 1 + in_to_out,
    )


def _check_layer(ly: DenseLayer) -> None:
    """Refuse a layer whose numbers the engine cannot hold as they are."""
    if ly.weights.shape != (ly.n_out, ly.n_in) or ly.bias.shape != (ly.n_out,):
        raise BackendError(f"layer {ly.name}: weight/bias shapes do not match {ly.n_out}x{ly.n_in}")
    if not fits(ly.weights, ly.w_t):
        raise BackendError(f"layer {ly.name}: a weight does not fit {ly.w_t}")
    aw = ly.acc_width
    check_accumulator(ly.name, aw, ly.bias, ly.weights, ly.in_t)  # the hardware trusts acc_width
    if not (ly.out_t.lo <= ly.lo <= ly.hi <= ly.out_t.hi):
        raise BackendError(f"layer {ly.name}: output range [{ly.lo}, {ly.hi}] outside {ly.out_t}")


def _weight_rom(ly: DenseLayer, t: _Timing, pe: int, simd: int) -> tuple[list[int], np.ndarray]:
    """Weight ROM words (padded to a power of two): word g*S+s holds w[g*PE+p, s*SIMD+j]
    at bit offset (p*SIMD+j)*WW; and the weights as (G, PE, S, SIMD). Past the last neuron,
    0; the last step's r inputs sit in its top r lanes (the loader's word is packed from
    the top), 0 below them."""
    ab = bits(t.groups * t.steps)
    ww = ly.w_t.width
    wmask = (1 << ww) - 1
    r = ly.n_in - (t.steps - 1) * simd
    rows = np.zeros((t.groups * pe, t.steps * simd), np.int64)
    rows[:ly.n_out, :ly.n_in - r] = ly.weights[:, :ly.n_in - r]
    rows[:ly.n_out, t.steps * simd - r:] = ly.weights[:, ly.n_in - r:]
    wq = rows.reshape(t.groups, pe, t.steps, simd)
    wrom = []
    for g in range(t.groups):
        for s in range(t.steps):
            word = 0
            for p in range(pe):
                for j in range(simd):
                    word |= (int(wq[g, p, s, j]) & wmask) << ((p * simd + j) * ww)
            wrom.append(word)
    return wrom + [0] * ((1 << ab) - len(wrom)), wq


def _group_rom(values, groups: int, pe: int, width: int) -> list[int]:
    """A ROM of one word per group (padded to a power of two): channel g*PE+p at bits
    p*width of word g."""
    mask = (1 << width) - 1
    values = list(values) + [0] * (groups * pe - len(values))  # past the last channel: 0
    rom = []
    for g in range(groups):
        word = 0
        for p in range(pe):
            word |= (int(values[g * pe + p]) & mask) << (p * width)
        rom.append(word)
    return rom + [0] * ((1 << bits(groups)) - len(rom))


def _requant_ctx(ly: DenseLayer, cm: dict) -> dict:
    """The round / shift / clamp widths: rounding add needs max(QA, shift) + 1 bits, a left
    shift QA - shift; the registered rounded value drops the shifted-out bits; the clamp
    compares with two bits of headroom over the output width."""
    qa, ow = cm["qa"], ly.out_t.width
    src = "acc" if cm["mode"] == "none" else "accm"
    rw = max(qa, ly.shift) + 1 if ly.shift > 0 else qa - ly.shift
    qw = rw - max(ly.shift, 0)
    cw = max(qw, ow + 2)
    return {"shift": ly.shift, "rw": rw, "cw": cw, "even": ly.even,  # ties to even: 2^(s-1) - 1 + bit s
            "rnd": shex(rw, (1 << (ly.shift - 1)) - ly.even) if ly.shift > 0 else "", "even_pad": ulit(rw - 1, 0),
            "rw_ext": repl(rw - qa, f"{src}[{qa - 1}]"), "rq_src": src, "cm": cm["mode"],
            "lshift_zero": ulit(-ly.shift, 0) if ly.shift < 0 else "",
            "qw": qw, "cw_ext_n": cw - qw, "cw_ext": repl(cw - qw, f"q[{qw - 1}]"),
            "lo_c": shex(cw, ly.lo), "hi_c": shex(cw, ly.hi), "lo_o": hexlit(ow, ly.lo), "hi_o": hexlit(ow, ly.hi),
            "lo": ly.lo, "hi": ly.hi, "relu": ly.relu}


def _pipeline_ctx(simd: int, cm: dict, groups: int) -> dict:
    """Pipeline stages (see dense.v.j2): products at 4, tree levels 5.., the sum at t_sum;
    the group number travels with the steps: the bias is read into stage t_sum, the
    per-channel multipliers (a ROM with more than one group) into t_acc."""
    levels = _tree_levels(simd)
    t_sum = 4 + len(levels)
    t_acc = t_sum + 1
    t_q = t_acc + (cm["mode"] != "none") + 1
    assert t_q == _pipe_depth(simd, cm["mode"])  # the timing model's depth
    need_m = cm["mode"] != "none" and groups > 1
    g_depth = t_sum if need_m else t_sum - 1
    gb = bits(groups)
    prev = [simd] + levels
    return {"levels": [{"n": n, "n_prev": pn, "pairs": pn // 2, "odd": pn % 2, "stage": 5 + i}
                       for i, (pn, n) in enumerate(zip(prev, levels))],
            "t_sum": t_sum, "t_acc": t_acc, "t_q": t_q, "pipe_depth": t_q, "v_zero": ulit(t_sum, 0),
            "g_depth": g_depth, "gpk": g_depth * gb, "g_bias_lo": (t_sum - 2) * gb, "g_mult_lo": (t_sum - 1) * gb}


def _mult_rom_ctx(cm: dict, aw: int, pe: int, groups: int) -> dict:
    """The multiplier (or exponent) ROM: word g holds channel g*PE+p at bits p*MW; with one
    group the PE values are constants."""
    if cm["mode"] == "none":
        return {}
    mw, qa = cm["mw"], cm["qa"]
    mrom = _group_rom(cm["vals"], groups, pe, mw)
    mrom_width = pe * mw
    return {"mw": mw, "qa": qa, "mrom_width": mrom_width, "mrom_depth": len(mrom),
            "mrom": [hexlit(mrom_width, v) for v in mrom],
            "m_const": hexlit(mrom_width, mrom[0]) if groups == 1 else "",
            "acc_ext": repl(qa - aw, f"acc[{aw - 1}]"), "m_ext": ulit(qa - mw, 0),
            "m_rule": ("a power of two 2^e[n], applied as acc << e[n]" if cm["mode"] == "pow2"
                       else f"{mw} bits, a product acc * m[n]")}


def _layer_ctx(index: int, ly: DenseLayer, pe: int, simd: int) -> dict:
    """Every number the dense template needs, computed here."""
    _check_layer(ly)
    aw = ly.acc_width
    # per-channel multipliers: acc * mult (or acc << exponent) in QA bits, then the same
    # requantization on that product
    cm = channel_mult(ly.mult, aw, ly.n_out, ly.name)
    t = _layer_timing(ly, pe, simd, cm["mode"])
    xw, ww, ow = ly.in_t.width, ly.w_t.width, ly.out_t.width
    xe = xw + (0 if ly.in_t.signed else 1)
    we = ww + (0 if ly.w_t.signed else 1)
    pw = xe + we  # exact signed product width
    prod, lut_mul = product("prod", "xe", "x", xw, ly.in_t.signed, "we", "w", ww, ly.w_t.signed, pw)
    wrom, wq = _weight_rom(ly, t, pe, simd)
    wrom_width = pe * simd * ww
    unrolled = t.groups == 1 and t.steps == 1
    brom = _group_rom(ly.bias, t.groups, pe, aw)
    brom_width = pe * aw
    ab, gb = bits(t.groups * t.steps), bits(t.groups)
    sb, jb, rb = bits(t.steps), bits(simd), max(1, pe.bit_length())
    ctx = {
        "index": index, "next": index + 1,
        "name": ly.name,
        "module": f"nnforge_layer_{ly.name}",
        "n_in": ly.n_in, "n_out": ly.n_out, "pe": pe, "simd": simd,
        "steps": t.steps, "groups": t.groups,
        "in_type": str(ly.in_t), "w_type": str(ly.w_t), "out_type": str(ly.out_t),
        "xw": xw, "ww": ww, "ow": ow, "aw": aw, "pw": pw,
        "x_signed": ly.in_t.signed, "w_signed": ly.w_t.signed,
        # operand extensions to the exact product width
        "prod": prod, "lut_mul": lut_mul, "dsp": dsp_registers(lut_mul, pw),
        # every product at once (one group, one step): constant weights, none for a zero
        "unrolled": unrolled, "nnz": int(np.count_nonzero(ly.weights)), "products": _products(ly, pe, simd),
        "w_const": hexlit(wrom_width, wrom[0]) if unrolled else "",
        "w_nz": hexlit(pe * simd, sum(1 << (p * simd + j) for p in range(pe) for j in range(simd)
                                    if wq[0, p, 0, j] != 0)) if unrolled else "",
        "x_ext": repl(pw - xw, f"x[{xw - 1}]" if ly.in_t.signed else None),
        "w_ext": repl(pw - ww, f"w[{ww - 1}]" if ly.w_t.signed else None),
        # product -> accumulator width (the acc_width bound makes truncation exact)
        "prod_mode": "extend" if aw > pw else ("same" if aw == pw else "truncate"),
        "prod_ext": repl(aw - pw, f"prod[{pw - 1}]"),
        # packed widths
        "xword": simd * xw, "xsh": (simd - 1) * xw, "res": pe * ow,
        "pa": simd * aw,
        # counters and literals
        "sb": sb, "jb": jb, "gb": gb, "ab": ab, "rb": rb,
        "xdepth": 1 << (sb + 1),
        # the input memory in DP16KD tiles (ECP5), if in block RAM
        "xbank": bram_bank(simd * xw, 1 << (sb + 1), sb + 1),
        "s_zero": ulit(sb, 0), "s_one": ulit(sb, 1), "s_last": ulit(sb, t.steps - 1),
        "j_zero": ulit(jb, 0), "j_one": ulit(jb, 1), "j_last": ulit(jb, simd - 1),
        "g_zero": ulit(gb, 0), "g_one": ulit(gb, 1), "g_last": ulit(gb, t.groups - 1),
        "a_zero": ulit(ab, 0), "a_one": ulit(ab, 1),
        "r_zero": ulit(rb, 0), "r_one": ulit(rb, 1), "r_pe": ulit(rb, pe),
        # a last step of fewer inputs (its word done early), a last group of fewer neurons
        "short_word": ly.n_in % simd, "j_end": ulit(jb, (ly.n_in - 1) % simd),
        "short_group": ly.n_out % pe, "r_short": ulit(rb, ly.n_out % pe),
        "ow_zero": ulit(ow, 0),
        # ROMs
        "wrom_width": wrom_width, "wrom_depth": len(wrom),
        "wrom": [hexlit(wrom_width, v) for v in wrom],
        # the weight ROM in DP16KD tiles (ECP5), if in block RAM
        "wbank": None if unrolled else rom_bank(wrom_width, wrom, ab),
        "brom_width": brom_width, "brom_depth": len(brom),
        "brom": [hexlit(brom_width, v) for v in brom],
        **_requant_ctx(ly, cm), **_pipeline_ctx(simd, cm, t.groups), **_mult_rom_ctx(cm, aw, pe, t.groups),
        "timing": asdict(t),
        # the stall enable's register copies: one for every EN_LANES product lanes, one for the
        # weight and input word stages
        "en_lanes": EN_LANES, "en_copies": en_copies(pe * simd, 1),
    }
    for k in ("xw", "ww", "ow", "aw", "pw", "xword", "xsh", "res", "pa", "sb", "jb", "gb", "ab",
              "rb", "xdepth", "wrom_width", "wrom_depth", "brom_width", "brom_depth", "rw", "cw", "qw",
              "t_sum", "gpk",
              "mw", "qa", "mrom_width", "mrom_depth"):
        if k in ctx:
            ctx[k + "_m1"] = ctx[k] - 1
    return ctx


def _engine(c: dict) -> DenseEngine:
    """A layer as an engine of :mod:`.engines` (its numbers the template's): what the
    resource estimate reads."""
    t = c["timing"]
    return DenseEngine(template="dense.v.j2", ports=("in",), n_in=c["n_in"], n_out=c["n_out"],
                       own=Timing(t["compute_cycles"], t["ii"], t["in_to_out"]), numbers=c,
                       multipliers=_dsp_multipliers(c), lut_multipliers=c["products"] if c["lut_mul"] else 0,
                       name=c["name"], module=c["module"], index=c["index"])


def _products(ly: DenseLayer, pe: int, simd: int) -> int:
    """The multipliers a layer's products need at folding (PE, SIMD): PE x SIMD, but with
    every product at once (unrolled: constant weights) one per weight that is neither 0
    nor +-2^k (synthesis makes those nothing or a shift)."""
    if pe * simd != ly.n_out * ly.n_in:
        return pe * simd
    a = np.abs(np.asarray(ly.weights, dtype=np.int64))
    return int(np.count_nonzero((a != 0) & ((a & (a - 1)) != 0)))


def _dsp_multipliers(c: dict) -> int:
    """A layer's multiplier blocks: its products unless they are built from LUTs, and its
    per-channel requantization's."""
    return (0 if c["lut_mul"] else c["products"]) + _rq_multipliers(c["cm"], c["pe"], c["groups"])


def _rq_multipliers(cm: str, pe: int, groups: int) -> int:
    """Multipliers of a layer's per-channel requantization (``cm``: its
    :func:`channel_mult` mode) whose operands both vary: one per PE with a multiplier ROM
    (none for powers of two: shifts; none with one group: products by constants)."""
    return pe if cm == "mult" and groups > 1 else 0


# ----------------------------------------------------------------------------- writer

def write(hw: HwModel, outdir: Path, parallelism="balanced") -> dict:
    """Write the Verilog sources, ``verilog_info.json`` and ``README.txt`` into ``outdir``.

    ``parallelism`` is a mode of :func:`choose_parallelism`, a goal of
    :func:`goal_parallelism` or an explicit list of ``(PE, SIMD)`` per layer. Returns the info dict that ``verilog_info.json`` holds.
    """
    if not hw.layers:
        raise BackendError("the model has no layer to implement")
    for a, b in zip(hw.layers, hw.layers[1:]):
        if a.n_out != b.n_in or a.out_t != b.in_t:
            raise BackendError(f"layers {a.name} and {b.name} do not chain ({a.out_t} x{a.n_out} -> {b.in_t} x{b.n_in})")
    first, last = hw.layers[0], hw.layers[-1]
    if first.n_in != hw.n_in or first.in_t != hw.in_t or last.n_out != hw.n_out or last.out_t != hw.out_t:
        raise BackendError("the model's input/output do not match its first/last layer")
    mode, par, decision = _resolve(hw, parallelism)
    files, info = _design_files(hw, par, mode, decision)
    return write_files(Path(outdir), files, info)


def _design_files(hw: HwModel, par: list[tuple[int, int]], mode: str, decision: dict) -> tuple[dict[str, str], dict]:
    """Every source of the design at folding ``par``, ``README.txt`` and the info (with the
    resource estimate); nothing written."""
    ctxs = [_layer_ctx(i, ly, pe, simd) for i, (ly, (pe, simd)) in enumerate(zip(hw.layers, par))]
    engines = [_engine(c) for c in ctxs]
    # render everything before writing anything
    files: dict[str, str] = {}
    for c in ctxs:
        files[f"{c['module']}.v"] = place_memories(render("verilog", "dense.v.j2", L=c))
    ob = bits(hw.n_out)
    top_ctx = {
        "top": TOP, "layers": ctxs, "n_layers": len(ctxs), "xw": hw.in_t.width, "ow": hw.out_t.width,
        "n_in": hw.n_in, "n_out": hw.n_out,
        "xw_m1": hw.in_t.width - 1, "ow_m1": hw.out_t.width - 1, "ob_m1": ob - 1,
        "ob": ob, "o_zero": ulit(ob, 0), "o_one": ulit(ob, 1), "o_last": ulit(ob, hw.n_out - 1),
        "in_type": str(hw.in_t), "out_type": str(hw.out_t),
    }
    files[f"{TOP}.v"] = render("verilog", "top.v.j2", **top_ctx)

    timings = [c["timing"] for c in ctxs]
    latency = (hw.n_in - 1) + sum(t["in_to_out"] for t in timings)
    ii = max(t["ii"] for t in timings)
    layers_info = [
        {
            "name": c["name"], "module": c["module"], "file": f"{c['module']}.v",
            "n_in": c["n_in"], "n_out": c["n_out"],
            "pe": c["pe"], "simd": c["simd"], "multipliers": _dsp_multipliers(c),
            "lut_multipliers": c["products"] if c["lut_mul"] else 0,
            "steps": c["steps"], "groups": c["groups"],
            "acc_width": c["aw"], "shift": c["shift"], "lo": c["lo"], "hi": c["hi"],
            "in_type": c["in_type"], "weight_type": c["w_type"], "out_type": c["out_type"],
            "weight_rom_words": c["steps"] * c["groups"], "weight_rom_width": c["wrom_width"],
            "compute_cycles": c["timing"]["compute_cycles"],
            "pipeline_stages": c["pipe_depth"],
            "latency_cycles": c["timing"]["latency"],
            "ii_cycles": c["timing"]["ii"],
            **({"channel_mult": c["cm"]} if c["cm"] != "none" else {}),
            "output": f"s{i + 1}", "tensor": ly.tensor, "layout": [0],
        }
        for i, (ly, c) in enumerate(zip(hw.layers, ctxs))
    ]
    units = sum(x["multipliers"] + x["lut_multipliers"] for x in layers_info)  # no product at all: an all-zero model
    info = {
        "top": TOP,
        "model": hw.name,
        "parallelism": mode,
        "folding": decision,
        "n_in": hw.n_in, "n_out": hw.n_out,
        "in_type": type_info(hw.in_t), "out_type": type_info(hw.out_t),
        "layers": layers_info,
        "totals": {
            "latency_cycles": latency,
            "ii_cycles": ii,
            "multipliers": sum(x["multipliers"] for x in layers_info),
            "lut_multipliers": sum(x["lut_multipliers"] for x in layers_info),
            "macs": hw.macs,
            # MACs per inference over the multiplier-cycles (blocks and LUT multipliers alike)
            # spent on one (1.0: all busy)
            "efficiency": round(hw.macs / (ii * units), 4) if units else None,
        },
        "timing_notes": (
            "cycles at one clock each; ii_cycles = steady-state cycles per vector with "
            "back-to-back input and out_ready held high; latency_cycles = cycle number of "
            "the last output beat of a vector minus that of its first input beat"
        ),
        "files": sorted(files) + [f"{AXIS_TOP}.v", "verilog_info.json", "README.txt"],
    }
    files[f"{AXIS_TOP}.v"], info["axis"] = axis_wrapper(info, hw.in_t, hw.out_t)
    annotate_estimate(info, engines, decision.get("arch", "ecp5"))  # resource estimate (codegen/estimate.py)
    files["README.txt"] = render("verilog", "readme.txt.j2", info=info, layers=ctxs, top=top_ctx)
    return files, info
