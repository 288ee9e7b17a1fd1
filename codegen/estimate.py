"""Analytic resource estimate of the generated Verilog on a Lattice ECP5 (what Yosys
``synth_ecp5`` maps it to in the flow of ``nnforge synth``: with ``NNF_ECP5_DSP`` defined, a
product's operand and product registers are its MULT18X18D's own, no flip-flops; the
scanner below reads that branch of the text), before any synthesis.

The reported estimate (``verilog_info.json`` ``estimate``, ``README.txt``) and the folding
search's are one: :func:`engine_estimate` of each engine's data (:mod:`.engines`: its
:meth:`~.engines.Engine.memories`, the :meth:`~.engines.Engine.operators` of its data path
and the :meth:`~.engines.Engine.control` its template adds: counters, handshake, valid
and state registers, multiplexers, all sized from the numbers the template prints), plus
the forks, skip FIFOs and top (:func:`design_estimate`); nothing is rendered for it. An
engine prices each memory with :func:`map_memory`, each register by its bits (a register
loaded from a ROM in logic: the ROM's live columns) and its operators at ``LUT_PER_OP``
LUT4s per bit of an adder or multiplexer and per two bits of a comparison
(:func:`operator_luts`).

:func:`module_estimate` counts the same things in a rendered module's text: the writers
use its memory rule to place every memory (:func:`place_memories`), and the tests use it
as an oracle for the data (they agree within the tolerances of ``tests/test_estimate.py``)
and compare both with Yosys. It scans, per module:

* **registers**: every ``reg`` assigned in an ``always @(posedge clk)`` block, its width
  times the trip count of the ``generate`` loops around it. A register loaded from a ROM
  held in logic (and every register that only copies it, a pipeline of the ROM word)
  keeps only the ROM's *live* columns: a bit column that is the same in every word is a
  constant and Yosys removes its flip-flops (a one-word ROM: all of them); identical
  columns are merged into one. A register of a sign- or zero-extended value keeps the
  value's bits (Yosys merges the sign copies and drops the zeros). A register loaded
  from a block RAM is the RAM's output
  register (no flip-flops).
* **memories** (``reg [W-1:0] m [0:D-1]``), mapped as Yosys's ``memory_libmap`` does on
  ECP5, to the cheapest of: DP16KD block RAM (cost 128 per block; ``blocks`` = the
  fewest of ``ceil(W/w) * ceil(D/d)`` over the shapes 16384x1, 8192x2, 4096x4, 2048x9,
  1024x18 and, with one write and one read port, 512x36), TRELLIS_DPR16X4 LUT RAM (RAMs
  only, cost 4 per ``ceil(W/4) * ceil(D/16)``) or soft logic (cost a bit, 1/16 for a ROM).
  So small ROMs (a few hundred bits, or very wide words) become LUTs; a RAM in LUT RAM
  gets its read register as flip-flops; a RAM left in logic is ``W*D`` flip-flops. The
  writers make that choice binding (:func:`place_memories`: a ``rom_style`` /
  ``ram_style`` attribute on every engine memory), and a memory with such an attribute is
  counted where the attribute puts it.
* **multipliers**: the writer's count (each product of two varying operands of up to
  18x18 bits is one MULT18X18D; constant products are shifts and adds, none; a product
  with an operand of at most 4 bits is written as shifts and adds, a LUT multiplier).
* **LUT4 equivalents** (``luts``: LUT4 + 2 per CCU2C carry cell + 4 per DPR16X4, the
  measure ``sim/fpga.py`` and nextpnr's TRELLIS_COMB use), ``LUT_PER_OP`` times the
  operators, per expression (a clocked right-hand side, a ``wire x = ...`` or an
  ``assign``): an adder / subtractor one LUT per result bit (a carry cell per two), a
  ``?:`` one per result bit, a comparison one per two bits of its widest operand, a
  register with several next values a multiplexer of (values - 1) LUTs per bit; a copy,
  slice or concatenation none (the flip-flop's enable and reset are in the slice), a
  product none (a DSP); plus a logic ROM's decoder, ``ROM_LUT_PER_BIT`` per live bit
  (a LUT4 per 16 bits: words x live columns / 16), a logic RAM's decode and read mux
  (``RAM_LUT_PER_BIT`` per bit), 4 per DPR16X4 and the read multiplexer of a LUT RAM
  deeper than 16 words (``W`` LUTs per extra 16 words). ``LUT_PER_OP`` = 0.75 (Yosys
  and ABC share and simplify some of the logic, constants above all) is the one fitted
  number; a kept adder (``(* keep *)``: the pair sums of a LUT multiplier) and a sum of
  kept ones are carry chains nothing simplifies, one LUT per result bit.

Forks and skip FIFOs (parameterised modules) are counted from ``verilog_info.json``'s
``forks`` / ``fifos`` (:func:`fork_estimate`, :func:`fifo_estimate`). Measured against Yosys 0.70 ``synth_ecp5`` on the bundled examples
(see README): multipliers and block RAMs exact, flip-flops and LUTs within the tolerances
of ``tests/test_estimate.py``.
"""

from __future__ import annotations

import functools
import math
import re

from .engines import Fifo, read_stages
from .estimate_amd import AMD_LUT6_PER_LUT4, AMD_LUT6_PER_LUT4_DENSE, amd_address_products, amd_estimate
from .folding import ARCHS

# LUT4 equivalents (see the module docstring)
LUT_PER_OP = 0.75
ROM_LUT_PER_BIT = 1.0 / 16
RAM_LUT_PER_BIT = 1.0
BRAM_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18))
BRAM_SDP = (512, 36)  # one write port and one read port
BRAM_BITS = 18432
COST_BRAM, COST_DPR, COST_LOGIC_ROM, COST_LOGIC_RAM = 128.0, 4.0, 1.0 / 16, 1.0

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
# the ECP5 flow's branch of a product (``nnforge synth`` defines NNF_ECP5_DSP): the
# multiplier block with its own registers, the portable branch dropped
# (NNF_ECP5_BRAM: a row buffer bank in DP16KD blocks with their own output registers)
_ECP5_BRANCH = re.compile(r"`ifdef\s+NNF_ECP5_(?:DSP|BRAM)\b(.*?)(?:`else\b.*?)?`endif\b", re.S)
_NOT_ECP5_BRANCH = re.compile(r"`ifndef\s+NNF_ECP5_(?:DSP|BRAM)\b.*?(?:`else\b(.*?))?`endif\b", re.S)
_DECL = re.compile(r"^\s*(?:\(\*\s*r[ao]m_style\s*=\s*\"(\w+)\"\s*\*\)\s*)?"
                   r"reg\s+(?:signed\s+)?(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?([^;]*);")
_MEM_DECL = re.compile(r"^([ \t]*)(reg\s+\[\s*\d+\s*:\s*\d+\s*\]\s*(\w+)\s*\[\s*0\s*:\s*\d+\s*\]\s*;)", re.M)
# the memory placements and the synthesis attribute value of each (Yosys reads all three;
# Vivado reads "block" and "distributed" and places a "logic" memory itself)
STYLES = {"bram": "block", "lutram": "distributed", "logic": "logic"}
_FOR = re.compile(r"\bfor\s*\(.*<\s*(\d+)\s*;.*\)\s*begin\b")
_ASSIGN = re.compile(r"(?:^|[\s;:)])(\w+)\s*(?:\[[^\]]*\])?\s*(<?=)(?!=)\s*([^;]*);")
_WIRE = re.compile(r"^\s*(?:\(\*[^*]*\*\)\s*)?wire\s+(?:signed\s+)?(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?(.*=.*);")
_ARITH = re.compile(r"(?<![<>=!])[-+](?!=)")
_CMP = re.compile(r"==|!=|<=|>=|(?<![<>])[<>](?![<>=])")
_INIT = re.compile(r"(\w+)\[(\d+)\]\s*=\s*(\d+)'[sS]?[hH]([0-9a-fA-F_]+)\s*;")


def _scan(text: str) -> dict:
    """Registers, memories and clocked assignments of one module's text (its ECP5 flow; a
    memory the ECP5 flow builds of block RAM primitives is the portable code's)."""
    full = _COMMENT.sub("", text)
    text = _NOT_ECP5_BRANCH.sub(lambda m: m.group(1) or "", _ECP5_BRANCH.sub(r"\1", text))
    regs: dict[str, dict] = {}
    comb: set[str] = set()
    srcs: dict[str, list[str]] = {}  # clocked register -> right-hand sides
    init: dict[str, dict[int, int]] = {}
    extend: dict[str, int] = {}  # wire -> extension bits
    exprs: list[tuple[int, str, bool, str]] = []  # (result bits, expression, kept, name) of the wires and assigns
    mult, depth, in_always = [1], 0, None
    for line in _COMMENT.sub("", text).splitlines():
        s = line.strip()
        loop = _FOR.search(s)
        bare = re.sub(r"^\(\*[^*]*\*\)\s*", "", s)  # an attribute such as (* keep *) before it
        if bare.startswith("always"):
            in_always = ("comb" if "*" in bare.split("begin")[0] else "clk", depth)
        d = _DECL.match(line)
        if d:
            w = abs(int(d.group(2)) - int(d.group(3))) + 1 if d.group(2) else 1
            for part in d.group(4).split(","):
                a = re.match(r"\s*(\w+)\s*\[\s*(\d+)\s*:\s*(\d+)\s*\]", part)
                n = re.match(r"\s*(\w+)", part)
                if a:
                    regs[a.group(1)] = {"w": w, "n": mult[-1], "depth": abs(int(a.group(3)) - int(a.group(2))) + 1,
                                        "style": d.group(1)}
                elif n:
                    regs[n.group(1)] = {"w": w, "n": mult[-1], "depth": 0}
        wa = _WIRE.match(line)
        if wa and wa.group(3):
            wire_w = abs(int(wa.group(1)) - int(wa.group(2))) + 1 if wa.group(1) else 1
            for nm, ex in re.findall(r"(\w+)\s*=\s*([^;]*)", wa.group(3) + ";"):
                exprs.append((wire_w * mult[-1], ex, "(* keep *)" in s, nm))
                ext = re.match(r"(?:\$signed\()?\{\s*(?:\{(\d+)\{\w+\[\d+\]\}\}|(\d+)'d0)\s*,\s*\w+\s*\}", ex.strip())
                if ext:  # a sign or zero extension: its upper bits are copies or constants
                    extend[nm] = int(ext.group(1) or ext.group(2))
                regs.setdefault(nm, {"w": wire_w, "n": mult[-1], "depth": 0, "wire": True})
        elif s.startswith("assign"):
            am = re.match(r"assign\s+(\w+)[^=]*=\s*([^;]*);", s)
            if am:
                exprs.append((-1, am.group(2), False, am.group(1)))
        inits = list(_INIT.finditer(line)) if "<=" not in line else []
        for i in inits:
            init.setdefault(i.group(1), {})[int(i.group(2))] = int(i.group(4).replace("_", ""), 16)
        if in_always and not inits:
            for lhs, op, rhs in _ASSIGN.findall(s):
                if in_always[0] == "comb":
                    comb.add(lhs)
                else:
                    srcs.setdefault(lhs, []).append(rhs.strip())
        toks = re.findall(r"\bbegin\b|\bend\b", s)
        for k, t in enumerate(toks):
            if t == "begin":
                depth += 1
                mult.append(mult[-1] * (int(loop.group(1)) if loop and k == 0 else 1))
            else:
                depth -= 1
                mult.pop()
                if in_always and depth <= in_always[1]:
                    in_always = None
        if in_always and not toks and depth <= in_always[1] and s.endswith(";"):
            in_always = None  # a one-statement always
    for line in full.splitlines():  # a bank in DP16KD blocks (NNF_ECP5_BRAM): its memory
        d = _DECL.match(line)
        a = re.match(r"\s*(\w+)\s*\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*$", d.group(4)) if d and d.group(2) else None
        if a and a.group(1) not in regs:
            regs[a.group(1)] = {"w": abs(int(d.group(2)) - int(d.group(3))) + 1, "n": 1,
                                "depth": abs(int(a.group(3)) - int(a.group(2))) + 1, "style": d.group(1)}
    writes = {k for k, r in regs.items() if r["depth"] and re.search(rf"\b{k}\s*\[[^\]]*\]\s*<=", full)}
    return {"regs": regs, "comb": comb, "srcs": srcs, "writes": writes, "init": init, "exprs": exprs, "extend": extend}


def bram_blocks(width: int, depth: int, sdp: bool = True) -> int:
    """DP16KD blocks for a ``width`` x ``depth`` memory (the fewest over the shapes)."""
    shapes = BRAM_SHAPES + ((BRAM_SDP,) if sdp else ())
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in shapes)


def map_memory(width: int, depth: int, rom: bool, live_bits: int | None = None) -> tuple[str, int]:
    """Where Yosys puts a memory: ("bram", blocks), ("lutram", DPR16X4 cells) or ("logic", 0)."""
    bits = width * depth if live_bits is None else live_bits
    options = [("bram", bram_blocks(width, depth), COST_BRAM * bram_blocks(width, depth))]
    if not rom:
        n = math.ceil(width / 4) * math.ceil(depth / 16)
        options.append(("lutram", n, COST_DPR * n))
    options.append(("logic", 0, bits * (COST_LOGIC_ROM if rom else COST_LOGIC_RAM)))
    # on a tie Yosys keeps the memory in logic, else takes block RAM before LUT RAM
    kind, n, cost = min(options[:-1], key=lambda o: o[2])
    if options[-1][2] <= cost:
        return "logic", 0
    return kind, n


# the DP16KD shapes a RAM bank is built of in the ECP5 flow (``_bram.v.j2``): data width,
# words per tile, word address bits, address pins below the word address
DP16KD_SHAPES = ((9, 2048, 11, 3), (18, 1024, 10, 4))


def bram_bank(width: int, depth: int, ab: int) -> dict | None:
    """A RAM of ``width`` x ``depth`` (``ab`` address bits) the writers place in block RAM
    (:func:`map_memory`, as :func:`place_memories` does), built in the ECP5 flow
    (``NNF_ECP5_BRAM``) of DP16KD tiles with their own output registers: the numbers
    ``_bram.v.j2`` prints for the narrowest shape its words fit (``w``, ``d``, ``tl``,
    ``lo``, ``tiles`` and ``tb``: the tile index bits, 0 for one tile), when it takes the
    blocks the inferred RAM would; else None (the inferred RAM)."""
    kind, blocks = map_memory(width, depth, rom=False)
    shape = next((s for s in DP16KD_SHAPES if width <= s[0]), None)
    if kind != "bram" or shape is None or -(-depth // shape[1]) != blocks:
        return None
    w, d, tl, lo = shape
    tiles = -(-depth // d)
    return {"w": w, "d": d, "tl": tl, "lo": lo, "tiles": tiles, "tb": ab - tl if tiles > 1 else 0}


# the DP16KD shapes a ROM is built of in the ECP5 flow (``_bram.v.j2`` ``rom``): those of a
# bank and the 36-bit words of the block's pseudo-dual-port mode (both ports' data pins)
DP16KD_ROM_SHAPES = DP16KD_SHAPES + ((36, 512, 9, 5),)


class RomBank(dict):
    """The DP16KD tiles of a ROM (:func:`rom_bank`): a dict of the shape (``w``, ``d``,
    ``tl``, ``lo``, ``rows``, ``cols``, ``tiles``, ``tb``) and ``init``, each tile's
    INITVAL parameters, made when first read: the template reads them, while the folding
    search builds many engines it then drops."""

    def __init__(self, words: tuple[int, ...], **shape) -> None:
        super().__init__(**shape)
        self.words = words

    @functools.cached_property
    def init(self) -> list[list[dict[str, str]]]:
        """``init[r][c]``: the nonzero INITVAL parameters of tile (r, c)."""
        w, d = self["w"], self["d"]
        return [[dp16kd_initvals(self.words[r * d:(r + 1) * d], c * w, w) for c in range(self["cols"])]
                for r in range(self["rows"])]


def rom_bank(width: int, words, ab: int) -> RomBank | None:
    """A ROM of ``words`` (``width`` bits each, read at ``ab`` address bits) the writers
    place in block RAM (:func:`map_memory` by its live columns, as :func:`place_memories`),
    built in the ECP5 flow (``NNF_ECP5_BRAM``) of DP16KD tiles with their own output
    registers, when that takes the blocks the inferred ROM would (else None): ``rows`` x
    ``cols`` tiles of ``d`` words of ``w`` bits (tile (r, c) holds bits c*w.. of words
    r*d..), ``tl`` / ``lo`` / ``tb`` as :func:`bram_bank`, and ``init`` (:class:`RomBank`)."""
    words = tuple(int(v) for v in words)
    depth = len(words)
    live = _live_columns(dict(enumerate(words)), width, depth)
    kind, blocks = map_memory(width, depth, True, live * depth)
    if kind != "bram":
        return None
    tiles, _, (w, d, tl, lo) = min((math.ceil(width / s[0]) * math.ceil(depth / s[1]), -s[0], s)
                                   for s in DP16KD_ROM_SHAPES)
    if tiles != blocks:
        return None
    rows = math.ceil(depth / d)
    return RomBank(words, w=w, d=d, tl=tl, lo=lo, rows=rows, cols=math.ceil(width / w), tiles=tiles,
                   tb=ab - tl if rows > 1 else 0)


def dp16kd_initvals(words, lo: int, w: int) -> dict[str, str]:
    """The ``INITVAL_xx`` parameters of a DP16KD holding bits ``lo`` .. ``lo + w - 1`` of
    ``words`` as ``w``-bit words (9, 18 or 36): the block's 18 kbit as one vector, word k at
    bit k * w, cut in 1024 slots of 18 bits, 16 slots a parameter, slot i of one at bit
    i * 20 (the block's layout, as Yosys's ECP5 mapping writes it); zero ones left out."""
    flat = 0
    for k, v in enumerate(words):
        flat |= ((v >> lo) & ((1 << w) - 1)) << (k * w)
    out = {}
    for idx in range(64):
        val = 0
        for i in range(16):
            val |= ((flat >> ((idx * 16 + i) * 18)) & 0x3FFFF) << (i * 20)
        if val:
            out[f"{idx:02X}"] = f"320'h{val:080x}"
    return out


def _memory_kind(sc: dict, name: str) -> tuple[str, int, bool, int]:
    """Where a scanned memory goes: (kind, blocks or cells, is a ROM, live bits per word);
    its ``rom_style`` / ``ram_style`` attribute when it has one, else the cost rule."""
    m = sc["regs"][name]
    rom = name not in sc["writes"]
    w, d = m["w"], m["depth"]
    live = _live_columns(sc["init"].get(name, {}), w, d) if rom else w
    style = m.get("style")
    if style is None:
        kind, n = map_memory(w, d, rom, live * d if rom else None)
    else:
        kind = {v: k for k, v in STYLES.items()}[style]
        n = {"bram": bram_blocks(w, d), "lutram": math.ceil(w / 4) * math.ceil(d / 16), "logic": 0}[kind]
    return kind, n, rom, live


def place_memories(text: str) -> str:
    """A rendered module with every memory's placement made explicit: each declaration
    ``reg [W-1:0] m [0:D-1];`` gets the ``rom_style`` (never written) or ``ram_style``
    attribute of the kind :func:`map_memory` chooses (block RAM, LUT RAM or logic), so
    synthesis builds what the estimate counts."""
    sc = _scan(text)

    def attr(m: re.Match) -> str:
        name = m.group(3)
        if name not in sc["regs"] or not sc["regs"][name]["depth"]:
            return m.group(0)
        kind, _, rom, _ = _memory_kind(sc, name)
        return f'{m.group(1)}(* {"rom" if rom else "ram"}_style = "{STYLES[kind]}" *) {m.group(2)}'

    return _MEM_DECL.sub(attr, text)


def _place_memory(out: dict, kind: str, n: int, width: int, depth: int, copies: int = 1) -> float:
    """Add a RAM (or a ROM in block / LUT RAM) mapped as ``kind`` with ``n`` blocks or cells
    to ``out``; returns the LUTs it costs (LUT RAM read multiplexers, logic RAM)."""
    if kind == "bram":
        out["bram"] += n * copies
        out["bram_bits"] += width * depth * copies
        return 0.0
    if kind == "lutram":
        out["lutram"] += n * copies
        return (4 * n + width * max(0, math.ceil(depth / 16) - 1)) * copies
    out["ffs"] += width * depth * copies
    return RAM_LUT_PER_BIT * width * depth * copies


def _live_columns(words: dict[int, int], width: int, depth: int) -> int:
    """Distinct non-constant bit columns of a ROM (the rest are constants or duplicates)."""
    vals = [words.get(a, 0) for a in range(depth)]
    cols = set()
    for b in range(width):
        col = tuple((v >> b) & 1 for v in vals)
        if any(col) and not all(col):
            cols.add(col)
    return len(cols)


def _ident(rhs: str) -> str | None:
    m = re.fullmatch(r"(\w+)", rhs)
    return m.group(1) if m else None


def _expr_luts(expr: str, width: int, regs: dict) -> float:
    """LUT4 equivalents of one expression with a ``width``-bit result: an adder or
    subtractor a carry cell per two bits (one LUT per bit), a multiplexer (``?:``) one
    LUT per bit, a comparison one LUT per two operand bits (the widest operand); a plain
    copy, slice or concatenation nothing; a product none (a DSP)."""
    if re.search(r"\w\s*\[[^\]]*\]\s*$", expr) and "?" not in expr and not _ARITH.search(expr.split("[")[0]):
        return 0.0
    expr = re.sub(r"\d+'[sS]?[bBdDhH][0-9a-fA-F_]+", "K", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # drop slices and indices
    ids = [regs[t]["w"] for t in re.findall(r"[A-Za-z_]\w*", expr) if t in regs]
    opw = max(ids) if ids else width
    n_arith = len(_ARITH.findall(expr.replace("'", "")))
    return (n_arith * width + expr.count("?") * width + len(_CMP.findall(expr)) * opw / 2.0)


def module_estimate(text: str, multipliers: int = 0) -> dict:
    """The estimate of one module (see the module docstring)."""
    sc = _scan(text)
    regs, srcs = sc["regs"], sc["srcs"]
    ff_regs = {k: r for k, r in regs.items() if not r["depth"] and k in srcs and k not in sc["comb"]}
    mems = {k: r for k, r in regs.items() if r["depth"]}
    out = {"multipliers": int(multipliers), "dsp": int(multipliers), "bram_bits": 0, "bram": 0,
           "lutram": 0, "ffs": 0, "luts": 0.0, "memories": {}}
    fed: dict[str, tuple[str, int]] = {}  # register -> (memory, flip-flop bits per copy)
    luts = 0.0
    for name, m in mems.items():
        w, d = m["w"], m["depth"]
        kind, n, rom, live = _memory_kind(sc, name)
        out["memories"][name] = {"width": w, "depth": d, "copies": m["n"], "rom": rom, "placement": kind}
        readers = [k for k in ff_regs if any(re.fullmatch(rf"{name}\s*\[.*\]", r) for r in srcs[k])]
        if kind == "logic" and rom:
            luts += ROM_LUT_PER_BIT * live * d * m["n"]
        else:
            luts += _place_memory(out, kind, n, w, d, m["n"])
        if kind == "bram" or (kind == "logic" and rom):
            for k in readers:
                fed[k] = (name, live if kind == "logic" else None)
    # registers that only copy a ROM-fed register hold the same live bits
    changed = True
    while changed:
        changed = False
        for k in ff_regs:
            if k in fed:
                continue
            src = [_ident(r) for r in srcs[k]]
            if src and all(s in fed for s in src) and len({fed[s][0] for s in src}) == 1:
                live = fed[src[0]][1]
                # a copy out of a block RAM's output register is a full-width register
                fed[k] = (fed[src[0]][0], ff_regs[k]["w"] if live is None else live)
                changed = True
    def bits(k: str) -> int:
        if k not in fed:
            # a register of a sign- or zero-extended value (or a constant) holds the
            # value's own bits: Yosys merges the copies of the sign bit, drops the zeros
            ops = [re.sub(r"^\w+\s*\?\s*(\w+)\s*:\s*\d+'[sS]?[hHdDbB][0-9a-fA-F_]+$", r"\1", x) for x in srcs[k]]
            if ops and all(o in sc["extend"] for o in ops):
                return ff_regs[k]["w"] - min(sc["extend"][o] for o in ops)
            return ff_regs[k]["w"]
        live = fed[k][1]
        return 0 if live is None else live  # a block RAM's output register: in the RAM

    logic = 0.0
    for k, r in ff_regs.items():
        out["ffs"] += bits(k) * r["n"]
        if k in fed and any("[" in x for x in srcs[k]):
            continue  # a memory's read register: counted with the memory
        rhs = set(srcs[k])
        logic += (len(rhs) - 1) * bits(k) * r["n"]  # the next-state multiplexer
        logic += sum(_expr_luts(x, bits(k), regs) for x in rhs) * r["n"]
    # kept adders (the pair sums of a LUT multiplier, and the sum of them) are carry chains
    # that synthesis does not share or simplify: a LUT per bit
    kept = {nm for _, _, k, nm in sc["exprs"] if k}
    for w, ex, k, _ in sc["exprs"]:
        n = _expr_luts(ex, w if w > 0 else 1, regs)
        if k or any(t in kept for t in re.findall(r"[A-Za-z_]\w*", ex)):
            luts += n
        else:
            logic += n
    luts += LUT_PER_OP * logic
    out["luts"] = int(round(luts))
    return out


def fork_estimate(n: int, w: int) -> dict:
    """``nnf_fork``: N taken bits, their next-state logic and the ready AND."""
    return {"multipliers": 0, "dsp": 0, "bram_bits": 0, "bram": 0, "lutram": 0, "ffs": n, "luts": 2 * n}


def fifo_estimate(depth: int, w: int) -> dict:
    """``nnf_fifo``: DEPTH - 2 words of memory (mapped as any memory), its read register
    (a block RAM's own) and the output register (in DP16KD tiles, the ECP5 flow: the
    block's own, with the tile selects of :func:`~.engines.read_stages`), two pointers and
    a count (each with an adder and a compare) and two flags."""
    f = Fifo(depth, w)
    m, aw = f.words, f.address_bits
    cw = max(1, math.ceil(math.log2(m + 1)))
    kind, n = map_memory(w, m, rom=False)
    est = {"multipliers": 0, "dsp": 0, "bram_bits": 0, "bram": 0, "lutram": 0,
           "ffs": 2 * w + 2 * aw + cw + 3, "luts": 0}
    luts = LUT_PER_OP * (3 * aw + 2 * cw + 3)  # pointer and count adders, the compares, the moves
    luts += _place_memory(est, kind, n, w, m)
    # (the module is parameterised and its memory carries no placement attribute: on another
    # architecture, synthesis places it by its own costs)
    est["memories"] = {"mem": {"width": w, "depth": m, "copies": 1, "rom": False, "placement": kind, "free": True}}
    if kind == "bram":
        est["ffs"] -= w  # the read register is the block RAM's
        bank = bram_bank(w, m, aw)
        if bank:  # and the output register; the tiles' selects
            st = read_stages(w, bank)
            est["ffs"] += sum(b * c for b, c, _ in st.registers) - w
            luts += operator_luts(st)
    est["luts"] = int(round(luts))
    return est


_KEYS = ("multipliers", "dsp", "bram", "bram_bits", "lutram", "ffs", "luts")


def memory_estimate(mems, out: dict) -> tuple[float, dict[str, int | None]]:
    """Place the memories ``mems`` (:class:`~.engines.Memory`) as the writers do
    (:func:`map_memory`; a ROM by its live bit columns) into ``out`` (and its
    ``memories``, when it has that key); returns their LUTs and, per ROM, the flip-flop bits
    of a register loaded from it (its live columns in logic; the full width out of a block
    RAM, whose own read register is in the RAM: None)."""
    luts, fed = 0.0, {}
    for m in mems:
        live = _live_columns(dict(enumerate(m.values)), m.width, m.words) if m.rom else m.width
        kind, n = map_memory(m.width, m.words, m.rom, live * m.words if m.rom else None)
        if "memories" in out:
            out["memories"][m.name] = {"width": m.width, "depth": m.words, "copies": m.copies, "rom": m.rom,
                                       "placement": kind}
        if kind == "logic" and m.rom:
            luts += ROM_LUT_PER_BIT * live * m.words * m.copies
            out["ffs"] += live * m.copies if m.registered else 0  # its read register
            fed[m.name] = live
            if "memories" in out:  # (its decoder's LUTs, each copy's)
                out["memories"][m.name]["logic_luts"] = ROM_LUT_PER_BIT * live * m.words
        else:
            luts += _place_memory(out, kind, n, m.width, m.words, m.copies)
            fed[m.name] = None
    return luts, fed


def operator_luts(ops) -> float:
    """LUT4 equivalents of :class:`~.engines.Operators`: ``LUT_PER_OP`` per bit of each
    adder and multiplexer and per two bits of each comparison, plus a LUT per bit of each
    partial sum of a LUT multiplier (kept carry chains)."""
    luts = LUT_PER_OP * (sum(ops.adders) + sum(ops.comparators) / 2.0 + sum(ops.muxes))
    return luts + sum((min(a, b) - 1) * (a + b) for a, b in ops.lut_multipliers)


def engine_estimate(e) -> dict:
    """The estimate of one engine (:class:`~.engines.Engine`) from its data alone: DSPs its
    multiplier blocks, block / LUT RAM and ROM logic from :meth:`~.engines.Engine.memories`
    (placed by :func:`map_memory`), flip-flops the registers and LUT4s the operators
    (:func:`operator_luts`) of its data path (:meth:`~.engines.Engine.operators`) and of its
    control logic (:meth:`~.engines.Engine.control`: counters, handshakes, valid and state
    registers). The reported estimate and the folding search's."""
    out = {"multipliers": e.multipliers, "dsp": e.multipliers, "bram_bits": 0, "bram": 0, "lutram": 0,
           "ffs": 0, "luts": 0, "memories": {}}
    luts, fed = memory_estimate(e.memories(), out)
    ops = e.operators() + e.control()
    luts += operator_luts(ops)
    for width, copies, rom in ops.registers:
        out["ffs"] += (fed[rom] if rom and fed.get(rom) is not None else width) * copies
    out["luts"] = int(round(luts))
    return out


def top_estimate(n_out: int) -> dict:
    """The top (``graph_top.v.j2`` / ``top.v.j2``): wires, and with more than one output
    element the count of output beats that gives ``out_last`` (a counter and two compares)."""
    ob = max(1, (n_out - 1).bit_length()) if n_out > 1 else 0
    return {"multipliers": 0, "dsp": 0, "bram_bits": 0, "bram": 0, "lutram": 0, "ffs": ob,
            "luts": int(round(LUT_PER_OP * (3 * ob + ob)))}


# ----------------------------------------------------------------------------- AMD parts

ARCH_TARGET = {
    "ecp5": "ECP5 (Yosys synth_ecp5): dsp = MULT18X18D, bram = DP16KD, lutram = TRELLIS_DPR16X4, "
            "ffs = TRELLIS_FF, luts = LUT4 + 2 CCU2C + 4 DPR16X4",
    "amd": "AMD 7 series / UltraScale+ (Yosys synth_xilinx): dsp = DSP48, bram = 36 kbit tiles (RAMB36 + "
           "RAMB18 / 2), lutram = LUTs in RAM32M / RAM64M cells, ffs = FDRE / FDSE, luts = LUT1-6 + LUT RAM + SRL",
}


def design_estimate(engines, forks=(), fifos=(), n_out: int = 1, arch: str = "ecp5") -> tuple[list[dict], dict]:
    """Each engine's estimate and the design's total: the engines, the forks (``readers``
    each) and skip FIFOs (``depth``, ``width``) of ``verilog_info.json`` and the top, for
    an architecture of :data:`ARCHS` (an ECP5, or an AMD part: :func:`amd_estimate`)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown estimate architecture {arch!r}; choose from {', '.join(ARCHS)}")
    layers = [engine_estimate(e) for e in engines]
    extra = [fork_estimate(f["readers"], 0) for f in forks]
    extra += [fifo_estimate(f["depth"], f["width"]) for f in fifos]
    extra.append(top_estimate(n_out))
    keys = _KEYS
    if arch == "amd":
        layers = [amd_estimate(est, AMD_LUT6_PER_LUT4_DENSE if e.template == "dense.v.j2" else AMD_LUT6_PER_LUT4)
                  for est, e in zip(layers, engines)]
        for est, e in zip(layers, engines):
            est["dsp"] += amd_address_products(e)
        extra = [amd_estimate(e) for e in extra]
        keys = _KEYS + ("ramb18", "ramb36")
    total = {k: 0 for k in keys}
    for est in layers + extra:
        for k in keys:
            total[k] += est.get(k, 0)
    return layers, total


def annotate(info: dict, engines, arch: str = "ecp5") -> dict:
    """Add ``estimate`` to every layer of ``info`` (a writer's ``verilog_info.json``; its
    layers are ``engines``, in order) and ``totals.estimate``, from the engines' data
    (:func:`design_estimate` for ``arch``); returns ``info``."""
    layers, total = design_estimate(engines, info.get("forks", []), info.get("fifos", []), info["n_out"], arch)
    for ly, est in zip(info["layers"], layers):
        ly["estimate"] = est
    total["arch"] = arch
    total["target"] = ARCH_TARGET[arch]
    info.setdefault("totals", {})["estimate"] = total
    return info
