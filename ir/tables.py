"""Compile-time lookup tables for nonlinear activations (the table ops: Sigmoid, Tanh,
HardSwish, ...), shared by the golden model and every backend.

A table maps every integer of the input type ``in_t`` to an integer of the output type
``out_t``::

    table[i - in_t.lo] = quantize_float(f(dequantize(i, in_t)), out_t)     for lo <= i <= hi

that is ``saturate(floor(f(i * 2**-frac_in) * 2**frac_out + 0.5))``: the contract's round
half up and saturation, computed once in float64 when the model is compiled. At run time
the integer model only indexes: ``y = table[x - in_t.lo]``; no float appears. The quantizer
stores the table as a constant input of the node, so the golden model and the generated
sources read the very same numbers.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .fixed import FixedType, dequantize, quantize_float

MAX_TABLE_BITS = 12  # a table has 2**width entries; wider inputs are refused


def build_table(fn: Callable[[np.ndarray], np.ndarray], in_t: FixedType, out_t: FixedType) -> np.ndarray:
    """The table of ``fn`` from ``in_t`` to ``out_t`` (int64, ``2**in_t.width`` entries)."""
    if in_t.width > MAX_TABLE_BITS:
        raise ValueError(f"a lookup table needs an input of at most {MAX_TABLE_BITS} bits, got {in_t}")
    x = dequantize(np.arange(in_t.lo, in_t.hi + 1, dtype=np.int64), in_t)
    return quantize_float(np.asarray(fn(x), dtype=np.float64), out_t)


def lookup(x: np.ndarray, table: np.ndarray, in_t: FixedType) -> np.ndarray:
    """``table[x - in_t.lo]`` for int64 ``x`` within ``in_t``."""
    x = np.asarray(x, dtype=np.int64)
    table = np.asarray(table, dtype=np.int64)
    if table.shape != (in_t.hi - in_t.lo + 1,):
        raise ValueError(f"table of shape {table.shape} does not cover input type {in_t}")
    return table[x - in_t.lo]
