"""Each op's integer semantics (its ``int_ref`` in :mod:`nnforge.ir.ops`) in PyTorch, with
straight-through gradients (:mod:`.ste`).

A lowering is registered per op name with :func:`lowers`; it takes the node and the graph
and returns the step ``f(inputs) -> outputs`` (float64 tensors of exact integers, batch
first; constant inputs arrive as tensors too, so a weight may be a trained one). What an
op computes is stated once, in its definition; each lowering here reproduces it (the
tests compare every op against the golden model integer for integer), and the table
:data:`LOWERINGS` is what the trainable module supports.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..ir import Graph
from ..ir.ops import op_def
from ..ir.ops.add import add_params
from ..ir.ops.dense import requant_params, rounding_of
from ..ir.ops.window import patches, pool_geometry, spatial_attrs, window_counts
from .ste import check_exact, lookup, requantize

Step = Callable[[list[torch.Tensor]], list[torch.Tensor]]
LOWERINGS: dict[str, Callable[[object, Graph], Step]] = {}


class TrainLoweringError(ValueError):
    """A node the trainable module cannot compute."""


def lowers(*ops: str):
    def register(fn):
        for op in ops:
            LOWERINGS[op] = fn
        return fn
    return register


def lower_node(node, g: Graph) -> Step:
    t = g.qtype(node.outputs[0])
    if t is None or t.is_float:
        raise TrainLoweringError(f"node {node.name!r} ({node.op}) has no integer type: training needs a "
                                 "fixed-point design")
    fn = LOWERINGS.get(node.op) or (_table if op_def(node.op).has(table=True) else None)
    if fn is None:
        raise TrainLoweringError(f"node {node.name!r}: {node.op} cannot be trained yet (trainable ops: "
                                 f"{', '.join(sorted(LOWERINGS))} and the table ops)")
    return fn(node, g)


def _i64(v) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v, dtype=np.int64))


def _channels(v: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    """A per-channel vector shaped to broadcast along ``axis`` of an ``ndim`` tensor."""
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _saturate(node, g: Graph) -> tuple[int, int]:
    t = g.qtype(node.outputs[0])
    return t.lo, t.hi


def _rescale(node, g: Graph, shift: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``saturate(round_half_up(v >> shift))`` to the node's output type."""
    lo, hi = _saturate(node, g)
    one = _i64(1)
    return lambda v: requantize(v, one, shift, lo, hi)


def _clamp(node, g: Graph) -> Callable[[torch.Tensor], torch.Tensor]:
    return _rescale(node, g, 0)


# ---- linear layers ---------------------------------------------------------------------

def _linear_out(node, g: Graph, axis: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`nnforge.ir.ops.dense.linear_output`: the fused Relu, then the per-channel rescale."""
    lo, hi = _saturate(node, g)
    relu = bool(node.attrs.get("relu")) and lo < 0
    mult, shift = requant_params(node, g)
    m = _i64(mult)
    even = rounding_of(node) == "half_even"

    def out(acc: torch.Tensor, rq=None) -> torch.Tensor:
        check_exact(acc, f"node {node.name!r}: accumulator")
        if relu:
            acc = acc.clamp(min=0)
        # learned scales (module._Linear.rescale): this pass's multipliers, and the factor
        # (exactly 1) whose gradient is the scale's: d y / d log(scale) = y, inside the range
        mult, sh = (m, shift) if rq is None else (_i64(rq[0]), rq[1])
        y = requantize(acc, _channels(mult, acc.ndim, axis), sh, lo, hi, even)
        if rq is None:
            return y
        ratio = _channels(mult.to(acc.dtype) * 2.0 ** -sh, acc.ndim, axis)
        inside = ((y > lo) & (y < hi)).to(acc.dtype)
        return y + (_channels(rq[2], acc.ndim, axis) - 1) * (acc.detach() * ratio * inside)
    return out


@lowers("Dense")
def _dense(node, g: Graph) -> Step:
    out = _linear_out(node, g, -1)
    return lambda ins, rq=None: [out(ins[0] @ ins[1].T + ins[2], rq)]


@lowers("Conv")
def _conv(node, g: Graph) -> Step:
    kernel = g.shape(node.inputs[1])[2:]
    nd = len(kernel)
    strides, pads, dil = spatial_attrs(node.attrs, nd, kernel)
    groups = int(node.attrs.get("groups", 1))
    conv = F.conv1d if nd == 1 else F.conv2d
    # F.pad takes (last axis begin, end, the axis before: begin, end)
    pad = [p for i in reversed(range(nd)) for p in (pads[i], pads[nd + i])]
    out = _linear_out(node, g, 1)

    def step(ins, rq=None):
        x, w, b = ins
        acc = conv(F.pad(x, pad), w, None, stride=strides, dilation=dil, groups=groups)
        return [out(acc + _channels(b, acc.ndim, 1), rq)]
    return step


# ---- windows and pools -----------------------------------------------------------------

def _windows(node, g: Graph) -> tuple[torch.Tensor, tuple, np.ndarray]:
    """Per-sample gather indices of every window of a pool, (C, K, *outs), into the flat
    sample plus one extra cell (the padding), the geometry and the output sizes."""
    shape = g.shape(node.inputs[0])
    geo = pool_geometry(node.attrs, shape[1:])
    size = int(np.prod(shape))
    idx = np.arange(size, dtype=np.int64).reshape(1, *shape)
    return _i64(patches(idx, *geo, fill=size)[0]), geo, size


def _gather(x: torch.Tensor, idx: torch.Tensor, fill: float) -> torch.Tensor:
    flat = torch.cat([x.reshape(len(x), -1), x.new_full((len(x), 1), fill)], dim=1)
    return flat[:, idx]


class DivRoundHalfUp(torch.autograd.Function):
    """``(2 * total + count) // (2 * count)`` (:func:`nnforge.ir.ops.avgpool.div_round_half_up`),
    exact in int64; backward ``1 / count``."""

    @staticmethod
    def forward(ctx, total, count):  # noqa: D102
        c = count.to(torch.int64)
        ctx.save_for_backward(count)
        q = torch.div(2 * total.to(torch.int64) + c, 2 * c, rounding_mode="floor")
        return q.to(total.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (count,) = ctx.saved_tensors
        return grad / count.to(grad.dtype), None


@lowers("MaxPool")
def _maxpool(node, g: Graph) -> Step:
    idx, _, _ = _windows(node, g)
    sat = _clamp(node, g)
    return lambda ins: [sat(_gather(ins[0], idx, -np.inf).amax(dim=2))]


@lowers("AveragePool")
def _avgpool(node, g: Graph) -> Step:
    idx, geo, _ = _windows(node, g)
    count = _i64(window_counts(g.shape(node.inputs[0])[1:], *geo,
                               include_pad=bool(node.attrs.get("count_include_pad"))))
    sat = _clamp(node, g)
    return lambda ins: [sat(DivRoundHalfUp.apply(_gather(ins[0], idx, 0.0).sum(dim=2), count))]


@lowers("GlobalAveragePool")
def _global_avg(node, g: Graph) -> Step:
    sp = g.shape(node.inputs[0])[1:]
    count = _i64(int(np.prod(sp)))
    axes = tuple(range(2, len(sp) + 2))
    sat = _clamp(node, g)
    return lambda ins: [sat(DivRoundHalfUp.apply(ins[0].sum(dim=axes, keepdim=True), count))]


@lowers("GlobalMaxPool")
def _global_max(node, g: Graph) -> Step:
    axes = tuple(range(2, len(g.shape(node.inputs[0])) + 1))
    return lambda ins: [ins[0].amax(dim=axes, keepdim=True)]


# ---- elementwise -----------------------------------------------------------------------

def _frac(g: Graph, tensor: str) -> int:
    return g.qtype(tensor).frac


@lowers("Relu")
def _relu(node, g: Graph) -> Step:
    out = _rescale(node, g, _frac(g, node.inputs[0]) - _frac(g, node.outputs[0]))
    return lambda ins: [out(ins[0].clamp(min=0))]


def _exact_then(node, what: str, value: Callable, out: Callable) -> Step:
    """The step ``out(value(inputs))``, ``value``'s integers checked for exactness first."""
    def step(ins):
        v = value(ins)
        check_exact(v, f"node {node.name!r}: {what}")
        return [out(v)]
    return step


@lowers("Add")
def _add(node, g: Graph) -> Step:
    ma, mb, shift = add_params(node, g)
    return _exact_then(node, "sum", lambda ins: ins[0] * ma + ins[1] * mb, _rescale(node, g, shift))


@lowers("Mul")
def _mul(node, g: Graph) -> Step:
    shift = _frac(g, node.inputs[0]) + _frac(g, node.inputs[1]) - _frac(g, node.outputs[0])
    return _exact_then(node, "product", lambda ins: ins[0] * ins[1], _rescale(node, g, shift))


@lowers("BatchNormalization")
def _scale_shift(node, g: Graph) -> Step:
    out = _rescale(node, g, _frac(g, node.inputs[0]) + _frac(g, node.inputs[1]) - _frac(g, node.outputs[0]))

    def step(ins):
        x, m, a = ins
        return [out(x * _channels(m, x.ndim, 1) + _channels(a, x.ndim, 1))]
    return step


@lowers("LeakyRelu")
def _leaky(node, g: Graph) -> Step:
    mult, mf = int(node.attrs["mult"]), int(node.attrs["mult_frac"])
    out = _rescale(node, g, _frac(g, node.inputs[0]) + mf - _frac(g, node.outputs[0]))
    return lambda ins: [out(torch.where(ins[0] >= 0, ins[0] * (1 << mf), ins[0] * mult))]


@lowers("PRelu")
def _prelu(node, g: Graph) -> Step:
    sf = _frac(g, node.inputs[1])
    out = _rescale(node, g, _frac(g, node.inputs[0]) + sf - _frac(g, node.outputs[0]))
    return lambda ins: [out(torch.where(ins[0] >= 0, ins[0] * (1 << sf), ins[0] * ins[1]))]


@lowers("Clip")
def _clip(node, g: Graph) -> Step:
    lo, hi = int(node.attrs["lo_q"]), int(node.attrs["hi_q"])
    sat = _clamp(node, g)
    return lambda ins: [sat(requantize(ins[0], _i64(1), 0, lo, hi))]


def _table(node, g: Graph) -> Step:
    lo = g.qtype(node.inputs[0]).lo
    return lambda ins: [lookup(ins[0], ins[1].to(torch.int64), lo)]


# ---- moving data -----------------------------------------------------------------------

@lowers("Reshape")
def _reshape(node, g: Graph) -> Step:
    shape = tuple(g.shape(node.outputs[0]))
    return lambda ins: [ins[0].reshape(len(ins[0]), *shape)]


@lowers("Transpose")
def _transpose(node, g: Graph) -> Step:
    perm = (0,) + tuple(int(p) + 1 for p in node.attrs["perm"])
    return lambda ins: [ins[0].permute(perm)]


@lowers("Concat")
def _concat(node, g: Graph) -> Step:
    f_out = _frac(g, node.outputs[0])
    parts = [_rescale(node, g, _frac(g, t) - f_out) for t in node.inputs]
    axis = int(node.attrs["axis"]) + 1
    return lambda ins: [torch.cat([p(x) for p, x in zip(parts, ins)], dim=axis)]
