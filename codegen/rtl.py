"""Shared pieces of the Verilog writers: sized literals, operand extensions, the exact
product (a DSP block or shifts and adds), the per-channel requantization multipliers,
the ``sat(round_shift(v, shift))`` numbers, and the top-level files every Verilog design
has (the AXI4-Stream wrapper, ``verilog_info.json``).

Python computes every number; the templates in ``hls_templates/verilog/`` only lay the
text out. Every function here is pure (no file is read), except :func:`write_files`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..ir import FixedType
from ..ir.fixed import signed_width_for
from .lower import BackendError
from .render import render

TOP = "nnforge_top"
AXIS_TOP = "nnforge_axis"
# a product whose narrower operand has at most this many bits is built from LUTs (shift and
# add) instead of a DSP multiplier block
NARROW_BITS = 4


# ----------------------------------------------------------------------------- literals

def bits(n: int) -> int:
    """Width of a counter/address holding 0..n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def counter(p: str, n: int) -> dict:
    """The literals a template prints for a counter ``p`` over ``0 .. n - 1``: its width
    ``{p}b`` (and ``{p}b_m1``), ``{p}_zero``, ``{p}_one`` and ``{p}_last``."""
    b = bits(n)
    return {f"{p}b": b, f"{p}b_m1": b - 1, f"{p}_zero": ulit(b, 0), f"{p}_one": ulit(b, 1), f"{p}_last": ulit(b, n - 1)}


def address_width(ib: int, dims) -> int:
    """The width of a frame memory address summed from counters (``dims``: (extent, stride)
    pairs), with room for the sum, and at least the load counter's ``ib`` bits (plus one)."""
    return max(ib, max([0] + [(d - 1) * s for d, s in dims]).bit_length()) + 1


def ulit(width: int, value: int) -> str:
    """An unsigned sized literal."""
    if not 0 <= value < (1 << width):
        raise BackendError(f"internal: {value} does not fit {width} unsigned bits")
    return f"{width}'d{value}"


def hexlit(width: int, value: int) -> str:
    """The two's-complement bit pattern of ``value`` as an unsigned hex literal."""
    return f"{width}'h{value & ((1 << width) - 1):0{(width + 3) // 4}x}"


def shex(width: int, value: int) -> str:
    """A signed sized literal (two's-complement hex)."""
    if not -(1 << (width - 1)) <= value < (1 << (width - 1)):
        raise BackendError(f"internal: {value} does not fit {width} signed bits")
    return f"{width}'sh{value & ((1 << width) - 1):0{(width + 3) // 4}x}"


def fits(values: np.ndarray, t: FixedType) -> bool:
    return values.size == 0 or (int(values.min()) >= t.lo and int(values.max()) <= t.hi)


def repl(n: int, bit: str | None) -> str:
    """Verilog text of ``n`` copies of ``bit`` (a sign extension), or ``n`` zero bits."""
    if n <= 0:
        return ""
    return f"{{{n}{{{bit}}}}}" if bit else ulit(n, 0)


def ext(n: int, signed: bool, bit: str) -> str:
    """The ``n`` extension bits of a value whose top bit is ``bit``: ``n`` copies of it
    (signed) or ``n`` zeros; "" for ``n <= 0`` (no extension)."""
    if n <= 0:
        return ""
    return f"{{{n}{{{bit}}}}}" if signed else f"{n}'d0"


def sext(expr: str, t: FixedType, to: int) -> str:
    """``expr`` (a ``t.width``-bit vector holding a ``t`` integer) as a ``to``-bit signed value."""
    pad = to - t.width
    if pad < 0:
        raise BackendError("internal: sign extension to a narrower width")
    if pad == 0:
        return f"$signed({expr})" if t.signed else expr  # unsigned never reaches width `to` unpadded
    fill = f"{{{pad}{{{expr}[{t.width - 1}]}}}}" if t.signed else f"{pad}'d0"
    return f"$signed({{{fill}, {expr}}})"


def pack(rows: np.ndarray, width: int) -> list[int]:
    """Each row of integers as one word, element l at bits [l*width, (l+1)*width)."""
    mask = (1 << width) - 1
    return [sum((int(v) & mask) << (i * width) for i, v in enumerate(row)) for row in np.asarray(rows).tolist()]


def type_info(t: FixedType) -> dict:
    """A fixed-point type as ``verilog_info.json`` records it."""
    return {"width": t.width, "frac": t.frac, "signed": t.signed, "type": str(t)}


# ----------------------------------------------------------------------------- arithmetic

def product(name: str, xe: str, x: str, xk: int, x_signed: bool, we: str, w: str, wk: int, w_signed: bool,
            pw: int, narrow: int = NARROW_BITS) -> tuple[list[str], str | None]:
    """Verilog declarations of ``name``, the exact ``pw``-bit product of an input and a
    weight, and which operand ("x" or "w") is narrow enough for LUTs (None: a multiplier
    block). ``xe`` / ``we`` name the operands extended to the product width, ``x`` / ``w``
    their own ``xk`` / ``wk`` bits.

    When the narrower operand has at most ``narrow`` (:data:`NARROW_BITS`) bits the product is the sum
    over its bits b_i of ``b_i ? other << i : 0`` (the sign bit of a signed operand
    subtracted), added in pairs whose sums are kept (``(* keep *)``): each pair is then one
    carry chain, about a LUT per bit (Yosys otherwise merges the sum into one multi-operand
    adder of full adders, three times the LUTs); an 8 x 4 product is ~35 LUT4s instead of a
    DSP block, which Yosys would give even a 2 x 8 product. Else ``xe * we``. Both are exact
    modulo 2^pw, which holds the product."""
    if min(xk, wk) > narrow:
        return [f"wire signed [{pw - 1}:0] {name} = {xe} * {we};"], None
    terms, which = _partial_products(xe, x, xk, x_signed, we, w, wk, w_signed, pw)
    return _sum_tree(name, terms, pw, None), which


def product_split(name: str, xe: str, x: str, xk: int, x_signed: bool, we: str, w: str, wk: int, w_signed: bool,
                  pw: int) -> dict:
    """A LUT product (:func:`product`, always from LUTs) in two pipeline stages: the pair
    sums of the partial products of the operands ``xe``/``x``, ``we``/``w`` (wires: the
    values an operand register would load) are registers (``regs`` their declarations,
    ``loads`` their assignments for an ``always`` block), the rest of the tree (``wires``)
    sums them into ``name``. So a stage holds one carry chain, the next log2(k) - 1."""
    terms, _ = _partial_products(xe, x, xk, x_signed, we, w, wk, w_signed, pw)
    loads: list[str] = []
    wires = _sum_tree(name, terms, pw, loads)
    regs = [f"reg  [{pw - 1}:0] {ln.split(' <=')[0]};" for ln in loads]
    return {"regs": regs, "loads": loads, "wires": wires}


def _partial_products(xe: str, x: str, xk: int, x_signed: bool, we: str, w: str, wk: int, w_signed: bool,
                      pw: int) -> tuple[list[tuple[str, str]], str]:
    """(sign, partial product) per bit of the narrower operand (the weight on a tie); the
    sign bit of a signed operand weighs -2^(k-1). And which operand it is ("x" or "w")."""
    a, b, k, signed, which = (xe, w, wk, w_signed, "w") if wk <= xk else (we, x, xk, x_signed, "x")
    return [("-" if signed and i == k - 1 else "+", f"({{{pw}{{{b}[{i}]}}}} & ({a} <<< {i}))") for i in range(k)], which


def _sum_tree(name: str, terms: list[tuple[str, str]], pw: int, loads: list[str] | None) -> list[str]:
    """The wires of ``name`` = the signed sum of ``terms``, in pairs level by level (a
    balanced tree of kept sums: log2(k) carry chains deep). With ``loads`` (a list) the
    first level's pair sums are registers: their loads are appended to it, not wired."""
    lines, depth = [], 0
    while len(terms) > 2 or (len(terms) == 2 and depth == 0) or (depth == 0 and loads is not None):
        sums = []
        for j in range(0, len(terms), 2):
            pair = terms[j:j + 2]
            if len(pair) == 1:
                if depth == 0 and loads is not None:  # registered too (its sign applied later)
                    loads.append(f"{name}_s{j // 2} <= {pair[0][1]};")
                    sums.append((pair[0][0], f"{name}_s{j // 2}"))
                else:
                    sums.append(pair[0])
                continue
            (s0, t0), (s1, t1) = pair  # only the last term can be negative
            sname = f"{name}_s{j // 2}" if depth == 0 else f"{name}_l{depth}s{j // 2}"
            if depth == 0 and loads is not None:
                loads.append(f"{sname} <= {t0} {s1} {t1};")
            else:
                lines.append(f"(* keep *) wire [{pw - 1}:0] {sname} = {t0} {s1} {t1};")
            sums.append(("+", sname))
        terms, depth = sums, depth + 1
    text = f"{pw}'d0 - {terms[0][1]}" if terms[0][0] == "-" else terms[0][1]
    for sign, t in terms[1:]:
        text += f" {sign} {t}"
    return lines + [f"wire signed [{pw - 1}:0] {name} = {text};"]


def lut_product(xk: int, x_signed: bool, wk: int, w_signed: bool) -> bool:
    """Whether the product of a ``xk``-bit input and a ``wk``-bit weight is built from
    LUTs (:func:`product`) rather than a multiplier block."""
    return product("p", "x", "x", xk, x_signed, "w", "w", wk, w_signed, 2)[1] is not None


def channel_mult(mult, aw: int, n: int, name: str) -> dict:
    """How an engine applies the per-output-channel multipliers ``mult`` (None or all 1:
    ``mode`` "none", nothing changes) to its ``aw``-bit signed accumulator before the
    round/shift/saturate: "pow2" (every multiplier a power of two) stores the exponents
    and shifts left, "mult" stores the multipliers (``mw`` bits, a leading 0 makes them
    signed) and multiplies. ``vals``: what the ROM stores per channel; ``qa``: the exact
    width of the product (``acc * mult`` fits it for any ``aw``-bit ``acc``)."""
    if mult is None:
        return {"mode": "none", "qa": aw}
    m = np.asarray(mult, dtype=np.int64).reshape(-1)
    if m.size != n:
        raise BackendError(f"layer {name}: {m.size} requantization multipliers for {n} output channels")
    if np.all(m == 1):
        return {"mode": "none", "qa": aw}
    if np.any(m < 0):
        raise BackendError(f"layer {name}: a requantization multiplier is negative")
    if np.all(m > 0) and np.all((m & (m - 1)) == 0):
        e = [int(v).bit_length() - 1 for v in m]
        return {"mode": "pow2", "vals": e, "mw": max(1, max(e).bit_length()), "qa": aw + max(e)}
    mw = max(1, int(m.max()).bit_length())
    return {"mode": "mult", "vals": [int(v) for v in m], "mw": mw, "qa": aw + mw}


def check_accumulator(name: str, aw: int, bias: np.ndarray, weights: np.ndarray, x_t: FixedType) -> None:
    """Refuse a MAC layer whose ``aw``-bit accumulator could wrap: the hardware trusts the
    quantizer's width, so its bound ``max_n |b[n]| + sum_k |w[n, k]| * max|x|`` (any
    partial sum, in any order) is checked again before an accumulator is laid out."""
    x_mag = max(abs(x_t.lo), abs(x_t.hi))
    w = np.abs(np.asarray(weights, np.int64)).reshape(len(bias), -1)
    bound = int(np.max(np.abs(np.asarray(bias, np.int64)) + w.sum(axis=1) * x_mag))
    if bound > (1 << (aw - 1)) - 1:
        raise BackendError(f"layer {name}: acc_width {aw} cannot hold the bound {bound} of its partial sums")


def requant_numbers(v_lo: int, v_hi: int, shift: int, out_t: FixedType, lo: int | None = None,
                    hi: int | None = None) -> dict:
    """Numbers of one ``sat(round_shift(v, shift))`` for ``v`` in [v_lo, v_hi]: the working
    width ``cw`` (holds ``v``, the rounding add, a left shift and the clamp bounds), the
    rounding constant and the bounds as ``cw``-bit literals (templates: ``requant`` macro)."""
    lo = out_t.lo if lo is None else lo
    hi = out_t.hi if hi is None else hi
    up = max(0, -shift)
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    cw = max(signed_width_for(v_lo << up, (v_hi + rnd) << up), signed_width_for(lo, hi)) + 1
    return {"cw": cw, "cw_m1": cw - 1, "shift": shift, "rnd_c": shex(cw, rnd), "lo_c": shex(cw, lo),
            "hi_c": shex(cw, hi), "lo_o": hexlit(out_t.width, lo), "hi_o": hexlit(out_t.width, hi),
            "ow_m1": out_t.width - 1}


# ----------------------------------------------------------------------------- top-level files

def tdata_bits(width: int) -> int:
    """An AXI4-Stream TDATA holding a ``width``-bit element: whole bytes."""
    return -(-width // 8) * 8


def axis_wrapper(info: dict, in_t, out_t) -> tuple[str, dict]:
    """The AXI4-Stream wrapper of the top (``hls_templates/verilog/axis.v.j2``): TDATA
    widths rounded up to whole bytes, the output sign- or zero-extended. Returns the text
    and its ``verilog_info.json`` entry."""
    in_bits, out_bits = tdata_bits(in_t.width), tdata_bits(out_t.width)
    text = render("verilog", "axis.v.j2", module=AXIS_TOP, top=info["top"], xw=in_t.width, ow=out_t.width,
                  in_bits=in_bits, out_bits=out_bits, out_signed=out_t.signed, in_type=str(in_t),
                  out_type=str(out_t), n_in=info["n_in"], n_out=info["n_out"])
    return text, {"module": AXIS_TOP, "file": f"{AXIS_TOP}.v", "s_axis_tdata_bits": in_bits,
                  "m_axis_tdata_bits": out_bits}


def write_files(outdir: Path, files: dict[str, str], info: dict) -> dict:
    """Write the rendered sources and ``verilog_info.json`` into ``outdir``; return ``info``."""
    outdir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (outdir / name).write_text(text)
    (outdir / "verilog_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
