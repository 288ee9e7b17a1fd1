"""The contract between the MCU driver (:mod:`.mcu_program`) and the kernel lowerings
(:mod:`.mcu_conv`, :mod:`.mcu_pool`): the registry :data:`KERNELS` and what a kernel
lowering reads (:class:`KernelIn`) and returns (:class:`KernelOut`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph
from .mcu import Mcu
from .registry import Lowerings

# op -> fn(k: KernelIn) -> KernelOut | None (None: the node is not eligible, the generic lowering runs)
KERNELS = Lowerings("c-mcu")

CHW, HWC = "chw", "hwc"


def as_chw(shape) -> tuple[int, int, int]:
    """A (C, H, W) or (C, L) shape as (C, H, W) (H = 1 for 1-D)."""
    shape = tuple(int(d) for d in shape)
    return (shape[0], 1, shape[1]) if len(shape) == 2 else shape


def channels_last(rank: int) -> tuple[int, ...]:
    """The perm a channels-last buffer holds a (C, ...) tensor in: (1, ..., rank - 1, 0)."""
    return (*range(1, rank), 0)


@dataclass(frozen=True)
class KernelIn:
    """What a kernel lowering reads: the node, and how each of its inputs is stored."""

    q: Graph
    node: object
    name: str  # the step's C name (prefix of its symbols)
    mcu: Mcu
    layouts: tuple[str, ...]  # per node input: "chw" | "hwc" | "" (a constant)
    order: tuple = ()  # per input: None, or the IR flat index held at each stored position

    def strides(self, i: int = 0) -> dict:
        """Element strides ``sc``, ``sh``, ``sw`` of input ``i`` read as (C, H, W) (H = 1 for
        a 1-D (C, L) tensor) in its layout."""
        c, h, w = as_chw(self.q.shape(self.node.inputs[i]))
        if self.layouts[i] == HWC:
            return {"sc": 1, "sh": w * c, "sw": c}
        return {"sc": h * w, "sh": w, "sw": 1}


@dataclass(frozen=True)
class KernelOut:
    kind: str  # the step's template, hls_templates/c/<kind>.j2
    params: dict
    macs: int
    acts: list
    layout: str  # "hwc", or "same": the output has input 0's layout
    scratch: int = 0  # bytes of kernel scratch
    runtime: tuple[str, ...] = ()  # runtime templates (hls_templates/c/<name>.j2) the step needs


def requant_form(mult, shift: int) -> dict | None:
    """The exact 32-bit form of ``y = floor((acc * mult[m] + 2^(shift-1)) / 2^shift)`` for
    a 31-bit ``acc``: ``{"rq": "shift", "s": shift}`` when every multiplier is 1 and
    ``0 <= shift <= 31``; else ``{"rq": "mult", "s": t, "mult": m'}`` with ``m' = mult * 2^k
    < 2^31`` and ``t = shift + k - 32 >= 0`` (the high word of ``acc * m'``, rounded when
    ``t == 0``, then rounded by ``t`` more bits); None when neither fits."""
    mult = np.asarray(mult, dtype=np.int64).reshape(-1)
    if np.all(mult == 1) and 0 <= shift <= 31:
        return {"rq": "shift", "s": int(shift), "mult": None}
    if mult.min() < 0:
        return None
    k = max(0, 32 - shift)
    scaled = mult << k
    t = shift + k - 32
    if int(scaled.max()) >= 1 << 31 or t > 31:
        return None
    return {"rq": "mult", "s": int(t), "mult": scaled}
