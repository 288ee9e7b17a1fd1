"""Lowering a quantized graph to a :class:`.program.Program` of microcontroller kernels.

:func:`lower_mcu` keeps the generic Program's form (steps, buffers, the same model
template) and changes three things:

- **Kernels.** Each node whose op the kernel registry :data:`.mcu_kernels.KERNELS` holds,
  and whose types the kernel takes (8-bit activations, 8-bit weights, a 31-bit
  accumulator ...), becomes that kernel's step; any other node gets the generic C
  lowering (:data:`.program.LOWERINGS`), correct and slower.
- **Layouts.** A tensor is stored in the IR's order (``chw``) or channels last (``hwc``:
  a (C, H, W) tensor as its (H, W, C) transpose, a (C, L) one as (L, C)). Kernels read
  their input through element strides (either layout; the first convolution reads the
  model input as it is) and write ``hwc``. An elementwise op whose activation operands
  all have the output's shape, and whose constants are one value, works in any layout
  and keeps its input's. Every other op reads ``chw``: the driver inserts a conversion
  step (a transpose) where its input is ``hwc``. A Dense reading a ``hwc`` tensor through
  a Reshape gets the stored order instead and permutes its weight columns. The model's
  input and output are in the IR's order (the API's).
- **Memory.** Every intermediate value has its place in one static arena
  (:mod:`.arena`): the exact live maximum under this step order whenever the placement
  reaches it, plus the largest kernel scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..ir.ops import op_def
from .arena import lifetimes, plan
from .lower import BackendError, c_int_type, interface
from .mcu import Mcu
from . import mcu_conv, mcu_pool
from .mcu_kernels import CHW, HWC, KERNELS, KernelIn, KernelOut, channels_last
from .naming import sanitize
from .program import (CTYPE_BYTES, LOWERINGS, Buffer, Program, Step, lower_program, lower_reshape, step_params,
                      transpose_params)

__all__ = ["KERNELS", "KernelIn", "KernelOut", "lower_mcu"]

KERNEL_MODULES = (mcu_conv, mcu_pool)  # importing them registers their lowerings in KERNELS

def _layout_free(shape) -> bool:
    """Both layouts are the same memory: one channel, or one position."""
    shape = tuple(shape)
    return len(shape) < 2 or shape[0] == 1 or int(np.prod(shape[1:])) == 1


@dataclass
class _Spec:
    """A step before its buffers are placed."""

    kind: str
    name: str
    op: str
    params: dict
    macs: int
    ins: list  # values read
    out: str  # value written
    tensor: str  # IR tensor the output holds ("" for a conversion)
    layout: tuple = ()
    scratch: int = 0
    runtime: tuple = ()


@dataclass
class _Plan:
    q: Graph
    target: Mcu
    root: dict  # IR tensor -> the value holding it (a Reshape aliases its input)
    layout: dict = field(default_factory=dict)  # value -> CHW | HWC
    shape: dict = field(default_factory=dict)  # value -> shape of the IR tensor it holds
    specs: list = field(default_factory=list)
    converted: dict = field(default_factory=dict)  # hwc value -> its chw copy
    used: set = field(default_factory=set)

    def value(self, t: str) -> str:
        return self.root[t]

    def chw(self, t: str) -> str:
        """The value holding tensor ``t`` in the IR's order (a conversion step if needed)."""
        v = self.value(t)
        if self.layout.get(v, CHW) == CHW:
            return v
        if v not in self.converted:
            shape = self.shape[v]
            perm = channels_last(len(shape))
            stored = tuple(shape[k] for k in perm)
            name = sanitize(f"{v}_to_chw", self.used, prefix="layer")
            out = f"{v}#chw"
            self.specs.append(_Spec("transpose", name, "Transpose", transpose_params(stored, tuple(np.argsort(perm))),
                                    0, [v], out, ""))
            self.layout[out], self.shape[out] = CHW, shape
            self.converted[v] = out
        return self.converted[v]


def _agnostic(q: Graph, node) -> bool:
    """An elementwise op whose activation operands have the output's shape and whose
    constants are one value each: it computes the same in any layout."""
    traits = op_def(node.op).traits
    if not traits.elementwise:
        return False
    out = tuple(q.shape(node.outputs[0]))
    for t in node.inputs[:1] if traits.table else node.inputs:  # a table is indexed by value
        if q.is_const(t):
            k = np.asarray(q.consts[t])
            if k.size and not np.all(k == k.reshape(-1)[0]):
                return False
        elif tuple(q.shape(t)) != out:
            return False
    return True


def _read_order(pl: _Plan, t: str):
    """For a rank-1 tensor held by a hwc value through a Reshape: the IR flat index at each
    stored position; None when the value is in the IR's order."""
    v = pl.value(t)
    if pl.layout.get(v, CHW) != HWC or len(pl.q.shape(t)) != 1:
        return None
    shape = pl.shape[v]
    return np.arange(int(np.prod(shape))).reshape(shape).transpose(channels_last(len(shape))).reshape(-1)


def _try_kernel(pl: _Plan, node, name: str) -> KernelOut | None:
    if node.op not in KERNELS:
        return None
    q = pl.q
    layouts, order = [], []
    for t in node.inputs:
        if q.is_const(t):
            layouts.append("")
            order.append(None)
            continue
        v = pl.value(t)
        o = _read_order(pl, t)
        if pl.value(t) != t and o is None and pl.layout.get(v, CHW) == HWC:
            return None  # a reshaped hwc tensor that is not a flat vector: read it in chw
        layouts.append(pl.layout.get(v, CHW) if len(q.shape(t)) >= 2 else CHW)
        order.append(o)
    return KERNELS[node.op](KernelIn(q, node, name, pl.target, tuple(layouts), tuple(order)))


def _lower_node(pl: _Plan, node, name: str) -> None:
    q = pl.q
    out = node.outputs[0]
    shape = tuple(q.shape(out))
    pl.shape[out] = shape
    k = _try_kernel(pl, node, name)
    if k is not None:
        ins = [pl.value(t) for t in k.acts]
        lay = pl.layout.get(ins[0], CHW) if k.layout == "same" else HWC
        lay = CHW if _layout_free(shape) else lay
        pl.layout[out] = lay
        pl.specs.append(_Spec(k.kind, name, node.op, k.params, k.macs, ins, out, out,
                              channels_last(len(shape)) if lay == HWC else (), k.scratch, tuple(k.runtime)))
        return
    kind, params, macs, acts = step_params(q, node, name)
    if _agnostic(q, node):
        lays = {pl.layout.get(pl.value(t), CHW) for t in acts}
        lay = HWC if lays == {HWC} else CHW
        ins = [pl.value(t) if lay == HWC else pl.chw(t) for t in acts]
    else:
        lay, ins = CHW, [pl.chw(t) for t in acts]
    lay = CHW if _layout_free(shape) else lay
    pl.layout[out] = lay
    pl.specs.append(_Spec(kind, name, node.op, params, macs, ins, out, out,
                          channels_last(len(shape)) if lay == HWC else ()))


def lower_mcu(q: Graph, target: Mcu) -> Program:
    """The quantized graph as a Program of ``target``'s kernels (:mod:`.mcu_program`); the
    generic program for the ``generic`` entry."""
    if target.generic:
        return lower_program(q)
    LOWERINGS.check(q)
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    inp, outp = q.inputs[0], q.outputs[0]
    nodes = q.topo()
    root = {inp: inp}
    alias = set()
    for n in nodes:
        is_alias = LOWERINGS[n.op] is lower_reshape
        if is_alias:
            alias.add(n.name)
        for t in n.outputs:
            root[t] = root[n.inputs[0]] if is_alias else t
    if root[outp] == inp:
        raise BackendError("the model has no layer to implement")
    pl = _Plan(q, target, root)
    pl.layout[inp], pl.shape[inp] = CHW, tuple(q.shape(inp))
    for n in nodes:
        if n.name in alias:
            continue
        _lower_node(pl, n, sanitize(n.name, pl.used, prefix="layer"))
    final = pl.chw(outp)  # the API's order
    return _assemble(pl, final)


def _assemble(pl: _Plan, final: str) -> Program:
    """Buffers in the arena for every value but the input and the output, and the steps."""
    q = pl.q
    inp = q.inputs[0]
    specs = pl.specs
    ctype = {}
    for s in specs:
        t = q.qtype(s.tensor or s.out.split("#")[0])
        ctype[s.out] = c_int_type(t.width, t.signed)
    values = lifetimes(((s.ins, s.out, int(np.prod(pl.shape[s.out])) * CTYPE_BYTES[ctype[s.out]]) for s in specs),
                       outside=(inp, final))
    names = {inp: "in", final: "out", **{v.name: f"nnf_buf{k}" for k, v in enumerate(values)}}
    arena = plan(values, scratch=max((s.scratch for s in specs), default=0))
    buffers = tuple(Buffer(names[v.name], ctype[v.name], int(np.prod(pl.shape[v.name])), arena.offsets[v.name])
                    for v in values)
    steps = []
    for s in specs:
        in_ctypes = tuple(c_int_type(q.qtype(inp).width, q.qtype(inp).signed) if v == inp else ctype[v]
                          for v in s.ins)
        steps.append(Step(kind=s.kind, name=s.name, op=s.op, inputs=tuple(names[v] for v in s.ins),
                          output=names[s.out], in_ctypes=in_ctypes, out_ctype=ctype[s.out], params=s.params,
                          macs=s.macs, tensor=s.tensor, size=int(np.prod(pl.shape[s.out])), layout=s.layout,
                          scratch=s.scratch))
    runtime = tuple(dict.fromkeys(r for s in specs for r in s.runtime))
    return Program(**interface(q), steps=tuple(steps), buffers=buffers, mcu=pl.target.name, dsp=pl.target.dsp,
                   arena=arena, runtime=runtime)
