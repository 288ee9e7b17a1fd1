"""The numeric contract in PyTorch, with straight-through gradients.

Every tensor of the integer path is a float64 tensor holding exact integers: float64
represents every integer of magnitude below 2**53 exactly, and sums and products of such
integers stay exact in any order while their magnitudes do (a layer's accumulator is
checked against that bound, :func:`check_exact`). Rescaling (the contract's
``saturate(round_half_up((acc * mult) >> shift))``, :mod:`nnforge.ir.fixed`) runs in int64,
exactly as the golden model does.

Backward, rounding is the identity and saturation passes the gradient only where the value
was in range (the clipped straight-through estimator): ``d y / d acc = mult * 2**-shift``
inside ``[lo, hi]``, 0 outside. Because the forward pass carries every scale (the rescale
ratios are ``scale(x) * scale(W) / scale(y)``), gradients taken through the integers are the
real-valued gradients of the network they stand for.
"""

from __future__ import annotations

import torch

from . import ExactnessError

EXACT = 2 ** 53  # float64 holds every integer below this magnitude exactly


def check_exact(t: torch.Tensor, what: str) -> None:
    if t.numel() and float(t.detach().abs().max()) >= EXACT:
        raise ExactnessError(f"{what}: an integer of 2^53 or more cannot be carried exactly in float64")


def _shift_round(v: torch.Tensor, shift: int, even: bool = False) -> torch.Tensor:
    """The contract's round half up: ``(v + 2**(shift-1)) >> shift`` (arithmetic), or with
    ``even`` ties to even (``+ 2**(shift-1) - 1 + bit_shift(v)``), or an exact left shift
    for a negative ``shift``; int64."""
    if shift > 0:
        if even:
            return torch.bitwise_right_shift(v + ((1 << (shift - 1)) - 1)
                                             + torch.bitwise_and(torch.bitwise_right_shift(v, shift), 1), shift)
        return torch.bitwise_right_shift(v + (1 << (shift - 1)), shift)
    if shift < 0:
        return v * (1 << -shift)
    return v


class Requantize(torch.autograd.Function):
    """``saturate(round_half_up(acc * mult >> shift))`` to ``[lo, hi]``: ``mult`` an int64
    tensor broadcasting against ``acc`` (one per channel or one), ``shift`` an int;
    ``even``: ties to even."""

    @staticmethod
    def forward(ctx, acc, mult, shift, lo, hi, even=False):  # noqa: D102 (torch's interface)
        r = _shift_round(acc.to(torch.int64) * mult, shift, even)
        ctx.save_for_backward((r >= lo) & (r <= hi), mult)
        ctx.shift = shift
        return r.clamp(lo, hi).to(acc.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        inside, mult = ctx.saved_tensors
        ratio = mult.to(grad.dtype) * 2.0 ** -ctx.shift
        return grad * ratio * inside, None, None, None, None, None


def requantize(acc: torch.Tensor, mult: torch.Tensor, shift: int, lo: int, hi: int, even: bool = False) -> torch.Tensor:
    return Requantize.apply(acc, mult, int(shift), int(lo), int(hi), bool(even))


class RoundClamp(torch.autograd.Function):
    """``clamp(floor(v + 1/2), lo, hi)``: a real value onto the integer grid (weights and
    biases from their real-valued shadows); backward the identity inside ``[lo, hi]``."""

    @staticmethod
    def forward(ctx, v, lo, hi):  # noqa: D102
        r = torch.floor(v + 0.5)
        ctx.save_for_backward((r >= lo) & (r <= hi))
        return r.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def round_clamp(v: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return RoundClamp.apply(v, float(lo), float(hi))


class Lookup(torch.autograd.Function):
    """``table[x - lo]`` (a table op); backward the table's central difference, the slope
    of the function it samples, in integer units."""

    @staticmethod
    def forward(ctx, x, table, lo):  # noqa: D102
        idx = x.to(torch.int64) - lo
        ctx.save_for_backward(idx, table)
        return table[idx].to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        idx, table = ctx.saved_tensors
        t = table.to(grad.dtype)
        n = len(t)
        up, down = (idx + 1).clamp(max=n - 1), (idx - 1).clamp(min=0)
        slope = (t[up] - t[down]) / (up - down).clamp(min=1).to(grad.dtype)
        return grad * slope, None, None


def lookup(x: torch.Tensor, table: torch.Tensor, lo: int) -> torch.Tensor:
    return Lookup.apply(x, table, int(lo))
