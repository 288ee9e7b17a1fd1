"""Dense: the canonical fully connected layer, with an optional fused Relu.

Inputs: ``x`` (per-sample ``(K,)``), ``W`` (``(N, K)``, constant), ``b`` (``(N,)``, constant).

Float:   ``y = x @ W.T + b``, then ``max(y, 0)`` if ``relu``.

Integer: ``W`` has scale 2**-w_frac (``g.qtype(W)``), ``x`` has ``g.qtype(x)``, and ``b`` is
stored at the accumulator scale ``acc_frac = frac(x) + frac(W)``::

    acc = b + sum_k x[k] * W[n, k]                 (exact; fits acc_width bits)
    y   = saturate(round_half_up(acc >> (acc_frac - frac(y))))

A fused Relu is the saturation itself: its output type is unsigned, so ``lo = 0``.
``acc_width`` is derived by the quantizer from the actual weights and input range.
"""

import numpy as np

from ..fixed import requantize

OP = "Dense"
ATTRS = {"relu": False, "acc_width": 0}


def shape(attrs, in_shapes):
    (k,), w, b = in_shapes
    if len(w) != 2 or w[1] != k or tuple(b) != (w[0],):
        raise ValueError(f"Dense: input {k}, weights {w}, bias {b} do not fit")
    return [(w[0],)]


def float_ref(attrs, inputs):
    x, w, b = inputs
    y = x.astype(np.float32) @ w.T.astype(np.float32) + b.astype(np.float32)
    if attrs.get("relu"):
        y = np.maximum(y, 0)
    return [y.astype(np.float32)]


def int_ref(node, g, inputs):
    x, w, b = (np.asarray(a, dtype=np.int64) for a in inputs)
    return [linear_output(node, g, x @ w.T + b)]


def linear_output(node, g, acc: np.ndarray) -> np.ndarray:
    """The output of a linear layer (Dense, Conv) from its exact accumulator at scale
    ``frac(x) + frac(W)``: the fused Relu, then requantize to the output type."""
    acc_frac = g.qtype(node.inputs[0]).frac + g.qtype(node.inputs[1]).frac
    out_t = g.qtype(node.outputs[0])
    if node.attrs.get("relu") and out_t.signed:
        acc = np.maximum(acc, 0)
    return requantize(acc, acc_frac, out_t)
