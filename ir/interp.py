"""Interpreters over the IR: float (for checking against onnxruntime and for
calibration) and integer (the golden model, int64 numpy, which defines every result)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import ops
from .floats import check_patterns, is_float
from .graph import Graph


def _check_input(g: Graph, name: str, x: np.ndarray) -> np.ndarray:
    want = g.shape(name)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise ValueError(
            f"input {name!r}: expected shape (N, {', '.join(map(str, want))}), got {tuple(x.shape)}"
        )
    return x


def run_float(g: Graph, *xs: np.ndarray, keep: bool = False) -> dict[str, np.ndarray] | list[np.ndarray]:
    """Run the float reference of every node on batched inputs.

    Returns the outputs as a list, or every tensor's value when ``keep`` is true.
    """
    env: dict[str, np.ndarray] = {}
    for name, x in zip(g.inputs, xs, strict=True):
        env[name] = _check_input(g, name, np.asarray(x, dtype=np.float32))
    for name, c in g.consts.items():
        env[name] = c.astype(np.float32) if c.dtype.kind == "f" else c
    return _run(g, env, lambda n, ins: ops.float_ref(n, ins), keep)


def run_int(g: Graph, *xs: np.ndarray, keep: bool = False) -> dict[str, np.ndarray] | list[np.ndarray]:
    """The golden model: integer reference of every node, int64, on integer inputs."""
    env: dict[str, np.ndarray] = {}
    for name, x in zip(g.inputs, xs, strict=True):
        x = np.asarray(x)
        if x.dtype.kind not in "iu":
            raise TypeError(f"golden model input {name!r} must be integers, got {x.dtype}")
        t = g.qtype(name)
        x = _check_input(g, name, x.astype(np.int64))
        if x.size and (x.min() < t.lo or x.max() > t.hi):
            raise ValueError(f"input {name!r} has values outside {t}")
        if is_float(t):
            check_patterns(x, t.format, f"input {name!r}")
        env[name] = x
    for name, c in g.consts.items():
        env[name] = c.astype(np.int64)
    return _run(g, env, lambda n, ins: ops.int_ref(n, g, ins), keep)


def _run(g: Graph, env: dict, fn: Callable, keep: bool):
    for node in g.topo():
        outs = fn(node, [env[t] for t in node.inputs])
        for t, v in zip(node.outputs, outs, strict=True):
            env[t] = v
    if keep:
        return env
    return [env[t] for t in g.outputs]
