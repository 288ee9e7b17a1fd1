"""The engines of the Verilog engine graph as typed data.

Every engine builder (:mod:`.verilog_window`, :mod:`.verilog_map`, :mod:`.verilog_join`)
returns one frozen :class:`Engine`: what the graph, the folding (:mod:`.folding`) and the
resource estimate (:mod:`.estimate`) read as typed fields and methods (sizes, ports,
:meth:`~Engine.timing`, :meth:`~Engine.capacity`, :meth:`~Engine.memories`,
:meth:`~Engine.operators`), and ``numbers``: the literals its template prints, which only
:meth:`~Engine.context` (the dict a template gets as ``E``, at render time) reads. The
planner (:mod:`.verilog_cnn`) places an engine in the graph with :meth:`~Engine.placed`
(name, module, index, streams), a new value; nothing is changed in place.

Kinds: :class:`WindowEngine` (Conv, Dense, pools: a MAC, maximum or average over a window,
with line buffers or a frame memory), :class:`MapEngine` (elementwise), :class:`JoinEngine`
(Add / Mul of two activations streaming, Concat frame-buffered), :class:`GatherEngine`
(Transpose, Resize, reorders); the top adds :class:`Fork` and :class:`Fifo`, and streams
are :class:`Stream`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class Memory:
    """A memory of ``words`` x ``width`` bits (``copies`` of it); a ROM holds ``values``."""

    name: str
    words: int
    width: int
    rom: bool
    copies: int = 1
    values: tuple[int, ...] = field(default=(), repr=False)

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
    overlap = False  # loads while it computes (a line engine)
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
        its memory words (a line engine's row buffer, a frame engine's or a join port's
        frame, none for a map engine) plus its pipeline and output registers (``pipe + PE
        + 2`` outputs, converted to input elements by n_in / n_out)."""
        regs = self.numbers.get("pipe", 2) + self.numbers.get("PE", 1) + 2
        return self.frame_memory_words + regs * self.port_words(k) / max(1, self.n_out)

    def memories(self) -> tuple[Memory, ...]:
        return ()

    def operators(self) -> Operators:
        return Operators()

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


def _rom(name: str, words: list[str], width: int) -> Memory:
    """A ROM of the printed ``words`` (Verilog literals ``W'hXX``)."""
    return Memory(name, len(words), width, True, values=tuple(int(w.split("'h")[1], 16) for w in words))


@dataclass(frozen=True)
class WindowEngine(Engine):
    """Conv, Dense and pools: ``kind`` "mac", "max" or "avg" over a window of ``geometry``,
    folded as ``fold`` (PE x SIMD lanes); ``line``: a circular buffer of input rows that
    loads while it computes, else a frame memory."""

    kind: str = "mac"  # type: ignore[assignment]
    geometry: Geometry = field(default_factory=Geometry)
    fold: Fold = field(default_factory=Fold)
    line: bool = False
    lut_mul: str | bool = False
    rq_multipliers: int = 0
    pipe: int = 0

    @property
    def overlap(self) -> bool:  # type: ignore[override]
        return self.line

    def memories(self) -> tuple[Memory, ...]:
        n = self.numbers
        xw = n["xw"]
        mems = [Memory("buf", self.frame_memory_words // self.fold.simd, xw, False, self.fold.simd)]
        if self.kind == "mac":
            mems.append(_rom("wrom", n["wrom"], n["wrw_m1"] + 1))
            mems.append(_rom("brom", n["brom"], n["brw_m1"] + 1))
            if n["cm"] != "none":
                mems.append(_rom("mrom", n["mrom"], n["mrw_m1"] + 1))
        return tuple(mems)

    def operators(self) -> Operators:
        n, f = self.numbers, self.fold
        xw, aw, ow = n["xw"], n["aw"], n["ow_m1"] + 1
        banks = ((xw, 2 * f.simd, ""),)  # the read and buffer registers of each bank
        if self.kind != "mac":
            cw = n["cw_m1"] + 1
            return Operators(adders=(aw,) if self.kind == "avg" else (), comparators=(aw, cw, cw), muxes=(ow,),
                             registers=banks + ((aw, 1, ""), (ow, 1, "")))
        ww, cw, tk = n["ww_m1"] + 1, n["cw_m1"] + 1, n["tk"]
        lanes = [(xw, ww)] * f.multipliers
        groups = [aw for lv in n["tree"] for _ in lv["groups"]]
        rq = [(n["qa_m1"] + 1, n["mw_m1"] + 1)] * (f.pe * self.rq_multipliers) if self.rq_multipliers else []
        regs = [*banks, (xw + ww + aw, f.multipliers, ""), (aw, len(groups), ""), (aw + ow, f.pe, ""),
                (n["wrw_m1"] + 1, 1, "wrom"), (n["brw_m1"] + 1, 3 + tk, "brom")]
        if n["cm"] != "none":
            regs += [(n["qa_m1"] + 1, f.pe, ""), (n["mrw_m1"] + 1, 4 + tk, "mrom")]
        return Operators(multipliers=tuple(rq + ([] if self.lut_mul else lanes)),
                         lut_multipliers=tuple(lanes if self.lut_mul else []),
                         adders=tuple(groups + [aw, cw] * f.pe),  # the tree, each lane's accumulate and rounding
                         comparators=(cw, cw) * f.pe, muxes=(xw,) * f.multipliers + (ow,) * (3 * f.pe),
                         registers=tuple(regs))


@dataclass(frozen=True)
class MapEngine(Engine):
    """An elementwise op, one element per cycle: a table, or ``sat(round_shift(v))`` with
    per-position constants in ROMs of ``D`` words read every ``R`` elements."""

    def memories(self) -> tuple[Memory, ...]:
        n = self.numbers
        if n.get("mode") == "table":
            return (_rom("tab", n["tab"], n["ow_m1"] + 1),)
        if not n["rom_on"]:
            return ()
        return tuple(_rom(r["name"], r["words"], r["w"]) for r in n["roms"])

    def operators(self) -> Operators:
        n = self.numbers
        if n.get("mode") == "table":
            return Operators()
        cw = n["RQ"]["cw"]
        return Operators(multipliers=((n["xw_m1"] + 1, cw),) * self.multipliers, adders=(cw,), comparators=(cw, cw))


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
        return tuple(Memory(f"mem{k}", p["n"], p["w"], False) for k, p in enumerate(self.numbers["P"]))

    def operators(self) -> Operators:
        n = self.numbers
        rs = [n["R"]] if "R" in n else list(n.get("RS", []))
        cw = [r["cw"] for r in rs]
        return Operators(multipliers=((cw[0], cw[0]),) * self.multipliers if cw else (),
                         adders=tuple(cw), comparators=tuple(c for c in cw for _ in (0, 1)))


@dataclass(frozen=True)
class GatherEngine(Engine):
    """Transpose, nearest Resize or a reorder: a frame memory read in another order."""

    def memories(self) -> tuple[Memory, ...]:
        return (Memory("mem", self.n_in, self.numbers["xw_m1"] + 1, False),)

    def operators(self) -> Operators:
        aw = self.numbers["aw_m1"] + 1
        return Operators(adders=(aw,) * len(self.numbers["D"]))


@dataclass(frozen=True)
class Fork:
    """An eager fork of a stream to ``n`` readers (a taken bit per reader)."""

    stream: int
    n: int
    width: int


@dataclass(frozen=True)
class Fifo:
    """A skip FIFO of ``depth`` words of ``width`` bits (``depth - 1`` in memory, one in
    its output register)."""

    depth: int
    width: int

    def capacity(self) -> int:
        return self.depth

    def memories(self) -> tuple[Memory, ...]:
        return (Memory("mem", self.depth - 1, self.width, False),)
