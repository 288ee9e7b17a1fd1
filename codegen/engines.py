"""The engines of the Verilog engine graph as typed data.

Every engine builder (:mod:`.verilog_window`, :mod:`.verilog_map`, :mod:`.verilog_join`,
:mod:`.verilog_reduce`, :mod:`.verilog_interp`) returns one frozen :class:`Engine`: what the
graph, the folding (:mod:`.folding`) and the resource estimate (:mod:`.estimate`) read as
typed fields and methods (sizes, ports, :meth:`~Engine.timing`, :meth:`~Engine.capacity`,
:meth:`~Engine.memories`, :meth:`~Engine.operators`, :meth:`~Engine.control`), and
``numbers``: the literals its template prints, which only :meth:`~Engine.context` (the dict
a template gets as ``E``, at render time) and those methods read. The planner
(:mod:`.verilog_cnn`) places an engine in the graph with :meth:`~Engine.placed` (name,
module, index, streams), a new value; nothing is changed in place.

Kinds: :class:`WindowEngine` (Conv, Dense, pools: a MAC, maximum or average over a window,
with line buffers), :class:`MapEngine` (elementwise), :class:`JoinEngine` (Add / Mul of two
activations streaming, Concat frame-buffered; :class:`.verilog_join.PickJoinEngine`, its
Max / Min of two activations, adds a comparator and a select), :class:`GatherEngine` (Transpose,
nearest Resize with integer scales, reorders), :class:`.verilog_reduce.ReduceEngine` (the
reductions and ArgMax over a frame memory) and :class:`.verilog_interp.InterpEngine` (Resize
with tap tables: linear, cubic, any nearest); the top adds :class:`Fork` and :class:`Fifo`,
and streams are :class:`Stream`; :class:`DenseEngine` is a layer of the dense chain
(:mod:`.verilog`).

The resource estimate (:func:`.estimate.engine_estimate`) is priced from three methods,
which a new engine kind (a subclass) overrides from the numbers its template prints:
:meth:`~Engine.memories` (every memory, ROM words included: placement and live columns),
:meth:`~Engine.operators` (its data path: multipliers, adders, comparisons, multiplexers and
data registers) and :meth:`~Engine.control` (the counters, handshake, valid and state
registers its template adds), written with :func:`registers`, :func:`flags` and
:func:`counters` so that one register, valid bit or counter is priced the same in every
kind. The base class has no memory and no operator, and as control only the least a
streaming engine has (an input and an output counter and a valid bit), so an engine that
overrides none of them is estimated low.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from .folding import Fold, Geometry


@dataclass(frozen=True)
class Timing:
    """Cycles of one frame at one input element per cycle, downstream always ready:
    ``compute_cycles`` (load end to the last tap issued), ``frame_cycles`` (the II) and
    ``in_to_out`` (last input beat to last output beat, the latency)."""

    compute_cycles: int
    frame_cycles: int
    in_to_out: int

    def as_dict(self) -> dict[str, int]:
        return {"compute_cycles": self.compute_cycles, "frame_cycles": self.frame_cycles,
                "in_to_out": self.in_to_out}


# product lanes whose clock enables (and their stages) one register copy of an engine's
# stall enable drives (the dense chain's and a window MAC engine's enable is also kept as
# such copies, so that no single net reaches every clock enable)
EN_LANES = 8


def en_copies(lanes: int, stage_copies: int) -> int:
    """The register copies of an engine's stall enable: one for every ``EN_LANES`` of its
    ``lanes`` product lanes, and ``stage_copies`` for its other stages."""
    return -(-lanes // EN_LANES) + stage_copies


@dataclass(frozen=True)
class Memory:
    """A memory of ``words`` x ``width`` bits (``copies`` of it); a ROM holds ``values``;
    ``registered``: read into a register (else read as a wire, no read register)."""

    name: str
    words: int
    width: int
    rom: bool
    copies: int = 1
    values: tuple[int, ...] = field(default=(), repr=False)
    registered: bool = True

    @property
    def bits(self) -> int:
        return self.words * self.width * self.copies


@dataclass(frozen=True)
class Operators:
    """The operators of an engine's data path as data: each multiplier by its operand
    widths (blocks and products in LUTs), each adder / subtractor, comparison and
    multiplexer by its width, and its registers as (bits, copies, memory): a register
    loaded from a ROM (``memory`` its name; every copy down a pipeline) holds what
    synthesis keeps of the ROM's word."""

    multipliers: tuple[tuple[int, int], ...] = ()
    lut_multipliers: tuple[tuple[int, int], ...] = ()
    adders: tuple[int, ...] = ()
    comparators: tuple[int, ...] = ()
    muxes: tuple[int, ...] = ()
    registers: tuple[tuple[int, int, str], ...] = ()

    def __add__(self, other: Operators) -> Operators:
        return Operators(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


# The building blocks an engine's operators() and control() are written in (a new engine
# kind's module uses them too, so that one counter or valid bit is priced the same everywhere).

def registers(*widths: int, copies: int = 1) -> Operators:
    """Plain registers of the given widths (a pipeline's ``copies``, a word loaded as it
    is): flip-flops only; a width of 0 is no register."""
    return Operators(registers=tuple((w, copies, "") for w in widths if w > 0))


def flags(n: int, reset: int = 0) -> Operators:
    """``n`` one-bit registers (valid, first / last tags), ``reset`` of them with a reset or
    a second next value (a multiplexer each)."""
    return Operators(muxes=(1,) * reset, registers=((1, n, ""),) if n else ())


def counters(*widths: int) -> Operators:
    """Counters that step and wrap (or load): per counter of ``w`` bits a register, its
    adder, the compare with its last value, the wrap multiplexer and the next-state one
    (reset or hold against the step)."""
    return Operators(adders=widths, comparators=widths, muxes=widths * 2,
                     registers=tuple((w, 1, "") for w in widths))


def read_stages(width: int, bank: dict | None) -> Operators:
    """A frame memory's read and memory output registers (``width`` bits each); a memory in
    DP16KD tiles (``bank``: ``_bram.v.j2``, the ECP5 flow) has them in its blocks and only
    registers the tile index of each (when it has several) and picks the word read."""
    if not bank:
        return registers(width, width)
    return _tile_select(width, bank["tiles"], bank["tb"])  # each tile's write enable tests the tile


def rom_stages(width: int, bank: dict | None) -> Operators:
    """A weight ROM in DP16KD tiles (``bank``: ``_bram.v.j2`` ``rom``, the ECP5 flow): its
    read and output registers are the blocks'; with several rows of tiles, the row of the
    word read and of the word in the output registers, each row's read enable and the pick."""
    return _tile_select(width, bank["rows"], bank["tb"]) if bank else Operators()


def _tile_select(width: int, n: int, tb: int) -> Operators:
    """The pick of a ``width``-bit word out of ``n`` tiles (or rows of tiles) of a memory in
    DP16KD blocks: the ``tb``-bit tile index of the word read and of the word in the output
    registers, a test of the index for each tile's enable and for the pick, the selects."""
    t = n - 1
    return registers(tb, tb) + _ops(comparators=(tb,) * (2 * t + 1 if t else 0), muxes=(width,) * t)


def _ops(adders=(), comparators=(), muxes=()) -> Operators:
    """Combinational operators (address arithmetic, tests, selects) with no register."""
    return Operators(adders=tuple(adders), comparators=tuple(comparators), muxes=tuple(muxes))


# The Verilog templates give a product of operands up to this wide (signed) to a MULT18X18D with
# its own operand and product registers in the ECP5 flow (``NNF_ECP5_DSP``, _dsp.v.j2)
DSP_OPERAND_BITS = 18


def dsp_registers(lut_mul, pw: int) -> bool:
    """Whether a product's operand and product registers are a multiplier block's own in the
    ECP5 flow (not a LUT product; operands of at most 18 bits)."""
    return not lut_mul and pw <= DSP_OPERAND_BITS


def _out_register(w: int) -> Operators:
    """The output register of the valid / ready handshake: ``w`` data bits, the valid bit
    (set, cleared or held: two multiplexers) and the ready test."""
    return registers(w) + flags(1, reset=2) + _ops(muxes=(1,))


@dataclass(frozen=True)
class Stream:
    """A stream of the graph: ``id`` (0 the top input, else its producer's out stream),
    element ``width`` and ``readers`` ((engine index, port); (-1, "out") the top output)."""

    id: int
    width: int
    readers: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class Engine:
    """What every engine has; ``own`` is its :class:`Timing` on its own."""

    template: str
    ports: tuple[str, ...]
    n_in: int
    n_out: int
    own: Timing
    numbers: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    multipliers: int = 0
    lut_multipliers: int = 0
    macs: int = 0
    frame_memory_words: int = 0
    # where the planner put it
    name: str = ""
    op: str = ""
    module: str = ""
    index: int = -1
    in_streams: tuple[int, ...] = ()
    out_stream: int = -1
    tensor: str = ""
    layout: tuple[int, ...] = ()

    kind = ""  # "mac", "max" or "avg" for a window engine
    overlap = False  # loads while it computes (a window engine's line buffer)
    streaming = False  # takes one element of each port at a time (a streaming join)

    def placed(self, **where) -> Engine:
        """This engine with its place in the graph (``name``, ``module``, streams, ...)."""
        return replace(self, **where)

    def timing(self) -> Timing:
        return self.own

    @property
    def load_words(self) -> int:
        """Words one frame loads (a join: its largest port, the ports load in parallel)."""
        return self.n_in

    def port_words(self, k: int) -> int:
        """Elements port ``k`` loads per frame."""
        return self.n_in

    def capacity(self, k: int = 0) -> float:
        """Elements of port ``k`` the engine can hold with no output emitted for them yet:
        its memory words (a window engine's row buffer, a frame join port's or a gather
        engine's frame, none for a map engine) plus its pipeline and output registers (``pipe + PE
        + 2`` outputs, converted to input elements by n_in / n_out). A window engine's hold
        registers are left out: a block waits there only while its output is already offered,
        so counting less only makes a skip FIFO deeper."""
        regs = self.numbers.get("pipe", 2) + self.numbers.get("PE", 1) + 2
        return self.frame_memory_words + regs * self.port_words(k) / max(1, self.n_out)

    def memories(self) -> tuple[Memory, ...]:
        return ()

    def operators(self) -> Operators:
        """The data path (products, sums, tests, data registers); see :class:`Operators`."""
        return Operators()

    def control(self) -> Operators:
        """The control logic its template adds around :meth:`operators`, as data: counters,
        handshake and valid registers, state registers and their multiplexers, sized from
        the numbers the template prints. This default is the least a streaming engine has
        (an input and an output element counter and the output valid bit); an engine whose
        template has more (address counters, a pipeline's valid bits, a state machine)
        overrides it, else its estimate is low by that much."""
        return counters(_bits(self.n_in), _bits(self.n_out)) + flags(1, reset=2)

    def get(self, key: str, default=None):
        """A template number (``numbers[key]``), else ``default``."""
        return self.numbers.get(key, default)

    def context(self) -> dict:
        """The dict the template reads as ``E``."""
        return {**self.numbers, "template": self.template, "ports": list(self.ports), "n_in": self.n_in,
                "n_out": self.n_out, "timing": self.own.as_dict(), "multipliers": self.multipliers,
                "lut_multipliers": self.lut_multipliers, "macs": self.macs,
                "frame_memory_words": self.frame_memory_words, "name": self.name, "op": self.op,
                "module": self.module, "index": self.index, "in_streams": list(self.in_streams),
                "out_stream": self.out_stream, "tensor": self.tensor, "layout": tuple(self.layout)}


def _bits(n: int) -> int:
    """Bits of a counter over ``n`` values."""
    return max(1, (n - 1).bit_length())


def _line_front(n: Mapping[str, Any], kind: str, simd: int) -> Operators:
    """``line.v.j2``'s loader (row, slot, offset and lane counters, the free-slot test), tap
    counters, row bookkeeping (need, oldest) and address stages (a1, rd)."""
    q, rb, ab = n["q"], n["rb"], n["ab"]
    offb, lrw = n["offb_m1"] + 1, n["lrw_m1"] + 1
    lane = [n["lb_m1"] + 1] if simd > 1 else []
    loader = (counters(lrw, rb, offb, *lane) + flags(3, reset=3) + _ops(muxes=(lrw,))  # ahead, slot_free, lwait
              + _ops(adders=(ab,), comparators=(q, q), muxes=(q, q))  # la, free_* (bounds in a1)
              + registers(ab, n["xw"], *lane) + flags(1, reset=1))  # the registered write
    # the tap counters (their last-value compares feed flag registers stepped with them)
    taps = (counters(*(q,) * 8) + flags(7, reset=7)
            + _ops(comparators=(q,) * 3, adders=(q, q, q, q)))  # tap_first; top, iy, ix
    rows = (registers(q, q, q) + _ops(adders=(q,), comparators=(q, q, q, q), muxes=(q, q, q, q, q, q))  # need
            + flags(2, reset=2) + registers(rb) + _ops(adders=(rb,), muxes=(rb,)))  # rows_in, cdone, cbase
    a1 = (flags(3, reset=1) + registers(*((q,) if n.get("flat") else (q, q, q)), rb)  # iy (ix, coff), row slot
          + registers(q, q, q, q, q) + _ops(adders=(q, q, q, q, q), muxes=(q, q)))  # oldest1, room bounds
    if n.get("slot_tab"):  # the slot start tables of the write and read addresses
        a1 += _ops(muxes=(ab, ab))
    # the row slot (in a1), in_win, xa; each bank's word address a register of its own
    rd = flags(4, reset=1) + registers(ab, copies=simd) + _ops(comparators=(q,) * 4, adders=(rb, q, ab))
    out = loader + taps + rows + a1 + rd
    if kind == "mac":
        wb, mb = n["wb_m1"] + 1, n["mb_m1"] + 1
        out += Operators(adders=(wb,), muxes=(wb,)) + registers(wb, wb, mb, wb, mb)  # wcnt, a1_*, rd_*
    if kind == "avg":
        out += flags(1) + _ops(comparators=(q, q) if n.get("cnt_incl") else ())
    return out


def _row_fold(n: Mapping[str, Any]) -> Operators:
    """A row fold's addressing (``line.v.j2``, ``flat``): the word (and bank) of each output
    column's first element stepped with the column, the step's word, and with a rotation
    the next word, the per-bank word select and the lanes' rotation stages
    (``_window_back.v.j2``); it has no column coordinate (two address registers fewer)."""
    ab = n["ab"]
    out = registers(ab, ab) + _ops(adders=(ab, ab), muxes=(ab,))
    if n.get("rot"):
        rr, s, xw = n["rr_m1"] + 1, n["S"], n["xw"]
        # the bank counters, the next word's offset (a1_pw1) and its address
        out += registers(rr, rr, rr, rr, rr, ab) + _ops(adders=(rr, ab, ab, ab), comparators=(rr,) * s, muxes=(rr, ab))
        # the banks' word addresses (xa or xa + 1 each, by a compare with the step's first
        # bank), the lanes' rotation
        out += _ops(muxes=(ab,) * (s - 1) + (xw,) * (s * len(n["barrel"])))
    if n.get("short"):
        out += counters(n["ob_m1"] + 1)
    return out


def _window_back(n: Mapping[str, Any], kind: str) -> Operators:
    """``_window_back.v.j2`` / ``_window_mac.v.j2`` control: the read and buffer stages'
    valid and tag bits, a MAC pipeline's (valid, first, last per stage), the output
    handshake (a MAC engine's count of outputs left to send), an average's divider."""
    out = flags(12, reset=3)  # v, in, first, last: read, memory output and buffer stages
    if kind == "mac":
        stages = n["tk"] + 2
        lc = n["lc_m1"] + 1
        out += flags(3 * stages, reset=stages) + flags(2 + (n["cm"] != "none"), reset=2 + (n["cm"] != "none"))  # v2, vm, vf
        out += Operators(adders=(lc,), comparators=(lc, lc, lc), muxes=(lc, lc), registers=((lc, 1, ""),))
        # the stall enable's register copies
        return out + _ops(muxes=(1, 1)) + _hold(n, n["PE"]) + flags(n["en_copies"])
    out += flags(1, reset=1) + flags(1)  # v2, en_f (en as a register)
    if kind == "max":
        return out + flags(1, reset=2) + _ops(muxes=(1,)) + _hold(n, 1)
    nw, rw, db, yw = n["nw_m1"] + 1, n["rw_m1"] + 1, n["db_m1"] + 1, n["yw_m1"] + 1
    out += flags(2 + 2, reset=4) + _ops(muxes=(1, 1))  # counted tags; busy, ovalid
    out += Operators(adders=(db, rw, yw, n["sw_m1"] + 1), comparators=(db, db, rw, yw, yw),
                     muxes=(db, nw, nw, rw, rw, n["ow_m1"] + 1),
                     registers=((db, 1, ""), (nw, 2, ""), (rw, 1, "")))  # dcnt, dnum, quo, rem
    if not n["cnt_const"]:
        cb = n["cb_m1"] + 1
        out += Operators(adders=(cb,), muxes=(cb,), registers=((cb, 1, ""), (rw, 1, "")))  # cnt, dv
        if n["cnt_zero"]:
            out += flags(1) + _ops(comparators=(cb,), muxes=(yw,))
    return out


def _hold(n: Mapping[str, Any], pe: int) -> Operators:
    """A window engine's hold registers (a finished block waiting for the output
    registers), their valid bit and the output registers' second source."""
    ow = n["ow_m1"] + 1
    return flags(1, reset=1) + registers(ow, copies=pe) + _ops(muxes=(ow,) * pe)


def _requant(r: Mapping[str, Any]) -> Operators:
    """One ``sat(round_shift(v, shift))`` (``_requant.v.j2``): the rounding adder (a right
    shift), the two bound tests and the clamp's two selects."""
    ow = r["ow_m1"] + 1
    return _ops(adders=(r["cw"],) if r["shift"] > 0 else (), comparators=(r["cw"], r["cw"]), muxes=(ow, ow))


def _rom(name: str, words: list[str], width: int, registered: bool = True) -> Memory:
    """A ROM of the printed ``words`` (Verilog literals ``W'hXX``)."""
    return Memory(name, len(words), width, True, values=tuple(int(w.split("'h")[1], 16) for w in words),
                  registered=registered)


@dataclass(frozen=True)
class WindowEngine(Engine):
    """Conv, Dense and pools: ``kind`` "mac", "max" or "avg" over a window of ``geometry``,
    folded as ``fold`` (PE x SIMD lanes), over a circular buffer of input rows that loads
    while it computes (``overlap``)."""

    kind: str = "mac"  # type: ignore[assignment]
    geometry: Geometry = field(default_factory=Geometry)
    fold: Fold = field(default_factory=Fold)
    lut_mul: str | bool = False
    rq_multipliers: int = 0
    pipe: int = 0

    overlap = True

    def control(self) -> Operators:
        out = _line_front(self.numbers, self.kind, self.fold.simd) + _window_back(self.numbers, self.kind)
        return out + _row_fold(self.numbers) if self.fold.flat else out

    def memories(self) -> tuple[Memory, ...]:
        n = self.numbers
        xw = n["xw"]
        mems = [Memory("xmem", self.frame_memory_words // self.fold.simd, xw, False, self.fold.simd)]
        if self.kind == "mac":
            mems.append(_rom("wrom", n["wrom"], n["wrw_m1"] + 1))
            mems.append(_rom("brom", n["brom"], n["brw_m1"] + 1))
            if n["cm"] != "none":
                mems.append(_rom("mrom", n["mrom"], n["mrw_m1"] + 1))
        return tuple(mems)

    def operators(self) -> Operators:
        n, f = self.numbers, self.fold
        xw, aw, ow = n["xw"], n["aw"], n["ow_m1"] + 1
        # the read, memory output and buffer registers of each bank; a bank in block RAM: the
        # first two are its DP16KD's (ECP5: its own output register), plus the tile index of
        # the word read and of the word in the output registers when it spans several blocks
        b = n.get("bram")
        banks = Operators(registers=((xw, f.simd, ""),))  # the buffer registers x_b
        for _ in range(f.simd):
            banks += read_stages(xw, b)
        if self.kind == "max":  # the running maximum, the clamp into the output register
            cw = n["cw_m1"] + 1
            return banks + Operators(comparators=(aw, cw, cw), muxes=(aw, aw, ow, ow),
                                     registers=((aw, 1, ""), (ow, 1, "")))
        if self.kind == "avg":  # the running sum of the counted taps (the divider: control)
            return banks + Operators(adders=(aw, aw), muxes=(aw, aw, aw), registers=((aw, 1, ""), (ow, 1, "")))
        ww, cw, tk = n["ww_m1"] + 1, n["cw_m1"] + 1, n["tk"]
        lanes = [(xw, ww)] * f.multipliers
        groups = [len(g["src"]) - 1 for lv in n["tree"] for g in lv["groups"]]  # adders per group
        final = [aw for o in n["O"] for _ in o["final"]]  # each lane's accumulate
        rq = [(n["qa_m1"] + 1, n["mw_m1"] + 1)] * (f.pe * self.rq_multipliers) if self.rq_multipliers else []
        # per lane: the operands and the product term (a sign-extended product keeps its own
        # bits), none in the fabric when a multiplier block holds them (ECP5: its own registers)
        pw = n["pw_m1"] + 1
        lane_regs = [] if n["dsp"] else [(xw + ww + min(aw, pw), f.multipliers, "")]
        if self.lut_mul:  # the pair sums of the narrow operand's partial products (pair j's low 2j
            # bits are 0, no flip-flops), the product term
            pairs = -(-(xw if self.lut_mul == "x" else ww) // 2)
            lane_regs = [(sum(pw - 2 * j for j in range(pairs)) + min(aw, pw), f.multipliers, "")]
        # the ROM words' registers: w_o (the blocks' own for a ROM in DP16KD tiles) and w_b
        # per lane: the accumulator, the rounded word and the clamp's two tests, the output register
        regs = [*lane_regs, (aw, len(groups), ""), (aw + 2 * ow + 2, f.pe, ""),
                (n["wrw_m1"] + 1, 1 if n.get("wbank") else 2, "wrom"), (n["brw_m1"] + 1, 4 + tk, "brom")]
        banks += rom_stages(n["wrw_m1"] + 1, n.get("wbank"))
        if n["cm"] != "none":
            regs += [(n["qa_m1"] + 1, f.pe, ""), (n["mrw_m1"] + 1, 5 + tk, "mrom")]
        return banks + Operators(multipliers=tuple(rq + ([] if self.lut_mul else lanes)),
                         lut_multipliers=tuple(lanes if self.lut_mul else []),
                         adders=(aw,) * sum(groups) + tuple(final + [cw] * f.pe),  # tree, accumulate, rounding
                         comparators=(cw, cw) * f.pe,
                         muxes=(xw if self.lut_mul else n["pw_m1"] + 1,) * f.multipliers + (ow,) * (3 * f.pe),
                         registers=tuple(regs))


@dataclass(frozen=True)
class MapEngine(Engine):
    """An elementwise op, one element per cycle: a table, or ``sat(round_shift(v))`` with
    per-position constants in ROMs of ``D`` words read every ``R`` elements."""

    def memories(self) -> tuple[Memory, ...]:
        n = self.numbers
        if n.get("mode") == "table":  # read into the output register
            return (_rom("tab", n["tab"], n["ow_m1"] + 1, registered=False),)
        if not n["rom_on"]:
            return ()
        return tuple(_rom(f"{r['name']}_rom", r["words"], r["w"], registered=False) for r in n["roms"])  # read as wires

    def operators(self) -> Operators:
        n = self.numbers
        if n.get("mode") == "table":  # the table address x - lo; the output register holds a table word
            return _ops(adders=(n["xw_m1"] + 1,)) + Operators(registers=((n["ow_m1"] + 1, 1, "tab"),))
        return (registers(n["ow_m1"] + 1) + _requant(n["RQ"])
                + Operators(multipliers=((n["xw_m1"] + 1, n["RQ"]["cw"]),) * self.multipliers))

    def control(self) -> Operators:
        """``map.v.j2``: the input stage and its skid slot (valid bits, words, the select),
        the output register, the ROM word and repeat counters."""
        n = self.numbers
        xw = n["xw_m1"] + 1
        out = flags(2, reset=3) + registers(xw, xw) + _ops(muxes=(xw,)) + _out_register(0)  # res: operators()
        if n.get("rom_on"):
            out += counters(n["db_m1"] + 1, *([n["rb_m1"] + 1] if n.get("r_on") else []))
        return out


@dataclass(frozen=True)
class JoinEngine(Engine):
    """Add / Mul of two activations (``streaming``: one element of each port at a time, a
    two-element buffer per port) or Concat (each port loads its frame into its memory)."""

    streaming: bool = False  # type: ignore[assignment]
    buffered: int = 0  # elements one port of a streaming join holds (buffer and registers)
    port_sizes: tuple[int, ...] = ()

    @property
    def load_words(self) -> int:
        return max(self.port_sizes)

    def port_words(self, k: int) -> int:
        return self.port_sizes[k]

    def capacity(self, k: int = 0) -> float:
        if self.streaming:
            return self.buffered
        regs = self.numbers.get("pipe", 2) + 1 + 2
        return self.port_sizes[k] + regs * self.port_sizes[k] / max(1, self.n_out)

    def memories(self) -> tuple[Memory, ...]:
        if self.streaming:
            return ()
        return tuple(Memory(f"{p['name']}_mem", p["n"], p["w"], False) for p in self.numbers["P"])

    def operators(self) -> Operators:
        n = self.numbers
        rs = [n["R"]] if "R" in n else list(n.get("RS", []))
        cw = [r["cw"] for r in rs]
        out = Operators(multipliers=((cw[0], cw[0]),) * self.multipliers if cw else (),
                        adders=(cw[0],) * (len(self.ports) - 1) if n.get("mode") in ("add", "add_mult") and cw else ())
        for r in rs:
            out += _requant(r)
        return out

    def control(self) -> Operators:
        """``join.v.j2``: a streaming join's two-element buffer per port (head, tail, count),
        a frame join's per-port frame count and full bit, its output count (Concat: block,
        position and per-port read counters); the operand stage and the output register."""
        n = self.numbers
        ws = [p["w_m1"] + 1 for p in n["P"]]
        out = flags(1, reset=1) + registers(*ws) + _out_register(n["ow_m1"] + 1)
        if self.streaming:
            for w in ws:
                out += registers(w, w) + _ops(muxes=(w,)) + Operators(adders=(2, 2), comparators=(2,), muxes=(2, 2),
                                                                  registers=((2, 1, ""),))
            return out
        ibs = [p["ib_m1"] + 1 for p in n["P"]]
        out += counters(*ibs, n["ob_m1"] + 1) + flags(len(ibs), reset=2 * len(ibs))
        if n.get("mode") == "concat":
            kb = n["kb_m1"] + 1
            out += counters(kb, n["bw_m1"] + 1, *ibs) + registers(kb) + flags(1) + _ops(comparators=(kb,) * len(ibs))
        return out


@dataclass(frozen=True)
class GatherEngine(Engine):
    """Transpose, nearest Resize or a reorder: a frame memory read in another order."""

    def memories(self) -> tuple[Memory, ...]:
        return (Memory("xmem", self.n_in, self.numbers["xw_m1"] + 1, False),)

    def operators(self) -> Operators:
        aw, n = self.numbers["aw_m1"] + 1, len(self.numbers["D"])
        return Operators(adders=(aw,) * (2 * n - 1))  # each axis's step, the address sum

    def control(self) -> Operators:
        """``gather.v.j2``: the load count and flag, per axis an index and a repeat counter
        (with the wrap tests) and its address term, the read and memory output stages and the
        output register."""
        n = self.numbers
        xw = n["xw_m1"] + 1
        out = counters(n["ib_m1"] + 1) + flags(1, reset=2) + flags(2, reset=2) + read_stages(xw, n.get("bram")) \
            + _out_register(xw)
        for d in n["D"]:
            out += (counters(d["db_m1"] + 1, d["rb_m1"] + 1) + _ops(comparators=(d["rb_m1"] + 1,))
                    + registers(n["aw_m1"] + 1) + _ops(muxes=(n["aw_m1"] + 1,)))  # p: the axis's address term
        return out


@dataclass(frozen=True)
class Fork:
    """An eager fork of a stream to ``n`` readers (a taken bit per reader)."""

    stream: int
    n: int
    width: int


@dataclass(frozen=True)
class Fifo:
    """A skip FIFO of ``depth`` words of ``width`` bits (``fifo.v.j2``: ``depth - 2`` in
    memory, one in its read register, one in its output register; 3 at least)."""

    depth: int
    width: int

    def capacity(self) -> int:
        return max(self.depth, 3)

    @property
    def words(self) -> int:
        """Words of its memory (``M``)."""
        return max(self.depth - 2, 1)

    @property
    def address_bits(self) -> int:
        """Bits of its memory's pointers (``AW``)."""
        return max(1, (self.words - 1).bit_length())

    def memories(self) -> tuple[Memory, ...]:
        return (Memory("mem", self.words, self.width, False),)


@dataclass(frozen=True)
class DenseEngine(Engine):
    """A layer of the dense chain (:mod:`.verilog`, ``dense.v.j2``): ``PE`` neurons at once,
    ``SIMD`` inputs per cycle, a ping-pong input memory, weight and bias ROMs (constants when
    every product is at once: ``unrolled``), a pipeline that stalls as a whole, the
    requantization and a ``PE``-word output register; ``numbers`` are its template's."""

    def memories(self) -> tuple[Memory, ...]:
        n = self.numbers
        mems = [Memory("xmem", n["xdepth"], n["xword"], False)]
        if not n["unrolled"]:
            mems.append(_rom("wrom", n["wrom"], n["wrom_width"]))
        mems.append(_rom("brom", n["brom"], n["brom_width"]))
        if n["cm"] != "none" and n["groups"] > 1:
            mems.append(_rom("mrom", n["mrom"], n["mrom_width"]))
        return tuple(mems)

    def operators(self) -> Operators:
        n = self.numbers
        pe, simd, aw, ow = n["pe"], n["simd"], n["aw"], n["ow"]
        lanes = n["nnz"] if n["unrolled"] else pe * simd  # a zero constant weight has no product
        pair = (n["xw"], n["ww"])
        ext = (n["xw"] + (not n["x_signed"]), n["ww"] + (not n["w_signed"]))  # a LUT product's signed operands
        out = Operators(multipliers=() if n["lut_mul"] else (pair,) * n["products"],
                        lut_multipliers=(ext,) * n["products"] if n["lut_mul"] else ())
        dsp = n["dsp"]
        if not dsp:  # each product's input operand register, the products (ECP5: in the block)
            out += registers(n["xw"], aw, copies=lanes)
        for lv in n["levels"]:  # one registered level of the adder tree per stage
            out += registers(aw, copies=lv["n"] * pe) + _ops(adders=(aw,) * (lv["pairs"] * pe))
        out += registers(aw, copies=pe) + _ops(adders=(aw,) * pe, muxes=(aw,) * pe)  # accumulators, bias
        if n["cm"] != "none":
            out += registers(n["qa"], copies=pe) + _ops(muxes=(n["qa"],) * pe if n["cm"] == "pow2" else ())
        out += registers(n["qw"], copies=pe) + _ops(adders=(n["rw"],) * pe if n["shift"] > 0 else ())
        out += _ops(comparators=(n["cw"],) * (2 * pe), muxes=(ow,) * (2 * pe))  # the clamp
        out += read_stages(n["xword"], n.get("xbank")) + registers(n["res"]) + _ops(muxes=(n["res"],) if pe > 1 else ())
        # the hold register (a finished group waiting for the output register), its valid bit
        # and the output register's second source; the clamp, which feeds both, is logic of
        # its own then, no longer folded into the output register's set / reset (Yosys: about
        # 4 LUT4s a bit in all)
        out += flags(1, reset=1) + registers(n["res"]) + _ops(muxes=(n["res"],) * 5)
        out += flags(n["en_copies"])  # the stall enable's register copies
        if not n["unrolled"]:  # copies of the ROM word, w_o and w_m (ECP5: the multiplier blocks'
            # weight registers hold w_m, a ROM's DP16KD tiles w_o)
            copies = (1 if dsp else 2) - (1 if n.get("wbank") else 0)
            out += Operators(registers=((n["wrom_width"], copies, "wrom"),)) + rom_stages(n["wrom_width"], n.get("wbank"))
        return out

    def control(self) -> Operators:
        """``dense.v.j2``: the loader (full bits, write select, word and lane counters, the
        shift register packing a word), the step / group / weight address counters, the
        pipeline's valid, first and last bits and group numbers, the output count."""
        n = self.numbers
        sb, rb = n["sb"], n["rb"]
        out = flags(2, reset=4) + flags(2, reset=2) + counters(sb, sb, n["gb"]) + _ops(comparators=(sb,))
        if n["simd"] > 1:
            out += counters(n["jb"]) + registers(n["xsh"])
        if not n["unrolled"]:
            out += counters(n["ab"])
        out += flags(3 * n["t_sum"], reset=n["t_sum"]) + registers(n["gpk"])
        out += flags(2 + (n["cm"] != "none"), reset=2 + (n["cm"] != "none"))
        out += Operators(adders=(rb,), comparators=(rb, rb, rb), muxes=(rb, rb), registers=((rb, 1, ""),))
        if n.get("short_word"):  # the last word's early end
            out += _ops(comparators=(n["jb"],))
        if n.get("short_group"):  # the output's group count
            out += counters(n["gb"]) + _ops(muxes=(rb,))
        return out + _ops(muxes=(2, 2, 2, 2))  # the full bits' set and clear
