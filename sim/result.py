"""What running a generated design on vectors gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SimRun:
    """Outputs of one backend for N input vectors, plus what it measured."""

    y: np.ndarray  # (N, n_out) int64
    cycles_per_inference: float | None = None  # steady-state, back-to-back inputs
    latency_cycles: int | None = None  # first input in -> last output out
    extra: dict = field(default_factory=dict)
