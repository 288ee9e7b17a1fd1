"""Training for the hardware: fine-tune a compiled design through its own integer arithmetic.

:class:`~.module.IntegerModule` is the design's quantized graph as a PyTorch module whose
forward pass computes exactly the golden model's integers (same rounding, saturation,
accumulators, scales and tables), with straight-through gradients; :func:`~.loop.finetune`
trains it (labels, distillation from the float model, or both) and returns the trained
integers as a new design.

PyTorch is an optional extra (``pip install nnforge[train]``): this package imports it only
when used, and :func:`require_torch` says in one line how to get it.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "fine-tuning needs PyTorch: pip install 'nnforge[train]'"


class TrainUnavailable(ImportError):
    """PyTorch is not installed."""


class ExactnessError(ArithmeticError):
    """A value of the integer path left the range float64 holds exactly (2^53)."""


def require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise TrainUnavailable(INSTALL_HINT)
