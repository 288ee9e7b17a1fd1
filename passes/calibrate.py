"""Calibration: observe the range of every activation tensor on a data set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, run_float


@dataclass(frozen=True)
class Range:
    lo: float
    hi: float

    @property
    def max_abs(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def calibrate_minmax(g: Graph, x: np.ndarray, batch: int = 512) -> dict[str, Range]:
    """Min-max ranges of the graph input and of every node output over ``x``."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ValueError("the calibration set is empty")
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for start in range(0, len(x), batch):
        env = run_float(g, x[start:start + batch], keep=True)
        for name, v in env.items():
            if name in g.consts:
                continue
            if not np.all(np.isfinite(v)):
                raise ValueError(f"tensor {name!r} is not finite on the calibration data")
            lo[name] = min(lo.get(name, np.inf), float(v.min()))
            hi[name] = max(hi.get(name, -np.inf), float(v.max()))
    return {name: Range(lo[name], hi[name]) for name in lo}
