"""Convolution (groups 1) and Dense as microcontroller kernels (:mod:`.mcu_kernels`).

One kernel serves every layer (``mcu_rt_conv.j2``): a Conv of any kernel, stride,
dilation and pads, and a Dense (a 1x1 convolution of one position). Per pair of output
positions the kernel copies each window (taps in ``(kh, kw, c)`` order, padding written as
zeros) into a column of scratch, widened to 16 bits (DSP flavour) or 32 bits (scalar
flavour), then computes two output channels times the two columns at once. The input is
read through its element strides, so the first layer reads the model's input (``chw``)
as it is; the output is written channels last.

Weights are reordered here, once: the column's order, padded with zero weights to a
multiple of 4 (DSP), and packed four to a 32-bit word so that the two 16-bit pairs
``SXTB16`` and ``SXTB16(ROR 8)`` unpack from it line up with the column's pairs. A
column filled from four channels by one word load and ``SXTB16`` holds them as
(c0, c2, c1, c3), which the natural byte order matches; a column filled value by value
holds (k0, k1, k2, k3), which bytes (k0, k2, k1, k3) match.

The DSP inner loop (two channels, two positions, 4 taps: 17 instructions for 16
multiply-adds) is written in GNU inline assembly for Arm, its C form everywhere else.
Requantization is exact in 32-bit arithmetic (:func:`requant_form`); a layer it cannot
do, or with other than 8-bit activations and weights or an accumulator over 31 bits, is
not eligible: the driver gives it the generic lowering.
"""

from __future__ import annotations

import numpy as np

from ..ir.ops.dense import requant_params
from .mcu_kernels import HWC, KERNELS, KernelIn, KernelOut, requant_form
from .mcu_pool import lower_depthwise
from .program import rows, window

RUNTIME = ("mcu_rt_common", "mcu_rt_conv")
ACC_BITS = 31  # the widest accumulator the kernels take (acc + 2^(s-1) then fits int32)


def _types_ok(k: KernelIn) -> bool:
    q, node = k.q, k.node
    x_t, w_t, y_t = (q.qtype(t) for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return (x_t.width == 8 and y_t.width == 8 and w_t.width <= 8 and w_t.signed
            and int(node.attr("acc_width")) <= ACC_BITS and not (x_t.is_float or w_t.is_float or y_t.is_float))


def pack_weights(wk: np.ndarray, dsp: bool, fast: bool) -> tuple[np.ndarray, int]:
    """Weights ``(M, K)`` in the column's tap order as the kernel reads them, and the
    column length. Rows padded with a zero row to an even count. DSP: K padded with zeros
    to a multiple of 4, each 4 packed into one little-endian int32 (bytes (k0, k1, k2, k3)
    for a ``fast`` column, (k0, k2, k1, k3) otherwise), the two rows of each pair
    interleaved word by word; scalar: the int8 rows as they are."""
    m, kk = wk.shape
    k4 = -(-kk // 4) * 4 if dsp else kk
    w = np.zeros((m + m % 2, k4), dtype=np.int64)
    w[:m, :kk] = wk
    if not dsp:
        return w.reshape(-1), kk
    w = w.reshape(-1, k4 // 4, 4)
    if not fast:
        w = w[:, :, [0, 2, 1, 3]]
    b = (w & 0xFF).astype(np.uint32)
    words = (b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)).view(np.int32).astype(np.int64)
    words = words.reshape(-1, 2, k4 // 4).transpose(0, 2, 1)  # pair, word, row of the pair
    return words.reshape(-1), k4


def _even(v: np.ndarray) -> np.ndarray:
    """A per-channel array padded with a 0 to an even length."""
    return np.concatenate([v, np.zeros(v.size % 2, dtype=np.int64)])


def _struct(k: KernelIn, geo: dict, wk: np.ndarray, bias: np.ndarray, strides: dict) -> dict | None:
    """Everything the step template writes: packed weights, bias, requantization, the
    parameter struct's fields; None when the requantization has no exact 32-bit form."""
    q, node = k.q, k.node
    form = requant_form(*requant_params(node, q))
    if form is None or np.abs(bias).max(initial=0) >= 1 << 31:
        return None
    y_t = q.qtype(node.outputs[0])
    x_t = q.qtype(node.inputs[0])
    lo = max(y_t.lo, 0) if node.attr("relu") else y_t.lo
    dsp = k.mcu.dsp
    fast = dsp and strides["xc"] == 1 and geo["c"] % 4 == 0
    w, klen = pack_weights(wk, dsp, fast)
    wide = [geo[f] for f in ("c", "h", "w", "kh", "kw", "sh", "sw", "dh", "dw", "oh", "ow", "m")]
    if max(*wide, klen) >= 1 << 16 or max(geo["pt"], geo["pl"]) >= 1 << 15:
        return None  # the parameter struct's 16-bit fields
    xt = "s8" if x_t.signed else "u8"
    p = {**geo, **strides, "k": klen, "fast": int(fast), "lo": lo, "hi": y_t.hi, "xt": xt,
         "w_rows": rows(w), "w_size": max(1, w.size), "w_ctype": "int32_t" if dsp else "int8_t",
         "b_rows": rows(_even(bias)), "b_size": bias.size + bias.size % 2, "rq": form["rq"], "s": form["s"],
         "mult_rows": None if form["mult"] is None else rows(_even(form["mult"])),
         "x_ctype": "int8_t" if x_t.signed else "uint8_t", "y_ctype": "int8_t" if y_t.signed else "uint8_t",
         "dsp": dsp, "permuted": False}
    return p


def _scratch(dsp: bool, klen: int, m: int) -> int:
    """Two positions' accumulators (``m`` channels rounded up to even), then their two
    columns of ``klen`` values: 16-bit (DSP) or 32-bit (scalar)."""
    return 8 * (m + m % 2) + 2 * klen * (2 if dsp else 4)


@KERNELS.lowers("Conv")
def lower_conv(k: KernelIn) -> KernelOut | None:
    node, q = k.node, k.q
    weights = np.asarray(q.consts[node.inputs[1]], dtype=np.int64)
    groups = int(node.attr("groups", 1))
    if groups != 1:
        if groups == weights.shape[0] == q.shape(node.inputs[0])[0] and weights.shape[1] == 1:
            return lower_depthwise(k)
        return None
    if not _types_ok(k) or k.layouts[0] not in ("chw", HWC):
        return None
    in_shape = tuple(q.shape(node.inputs[0]))
    geo = window(node.attrs, in_shape, weights.shape[2:])
    m = weights.shape[0]
    w4 = weights.reshape(m, geo["c"], geo["kh"], geo["kw"])
    wk = w4.transpose(0, 2, 3, 1).reshape(m, -1)  # (kh, kw, c): the column's order
    bias = _bias(k, m)
    st = k.strides(0)
    p = _struct(k, {**geo, "m": m}, wk, bias, {"xc": st["sc"], "xh": st["sh"], "xw": st["sw"]})
    if p is None:
        return None
    macs = m * geo["oh"] * geo["ow"] * wk.shape[1]
    return KernelOut("mcu_conv", p, macs, [node.inputs[0]], HWC, _scratch(k.mcu.dsp, p["k"], p["m"]),
                     RUNTIME + (f"mcu_rt_conv_{p['xt']}",))


def _bias(k: KernelIn, m: int) -> np.ndarray:
    node = k.node
    if len(node.inputs) > 2 and node.inputs[2]:
        return np.asarray(k.q.consts[node.inputs[2]], dtype=np.int64).reshape(-1)
    return np.zeros(m, dtype=np.int64)


@KERNELS.lowers("Dense")
def lower_dense(k: KernelIn) -> KernelOut | None:
    """A 1x1 convolution of one position: the input vector (in its stored order: the
    weight columns are permuted to it) widened once, two outputs at a time."""
    node, q = k.node, k.q
    if not _types_ok(k) or len(q.shape(node.inputs[0])) != 1:
        return None
    weights = np.asarray(q.consts[node.inputs[1]], dtype=np.int64)
    n_out, n_in = weights.shape
    order = k.order[0] if k.order else None
    if order is not None:
        weights = weights[:, np.asarray(order, dtype=np.int64)]
    geo = {"c": n_in, "h": 1, "w": 1, "kh": 1, "kw": 1, "sh": 1, "sw": 1, "dh": 1, "dw": 1,
           "pt": 0, "pl": 0, "pb": 0, "pr": 0, "oh": 1, "ow": 1, "m": n_out}
    p = _struct(k, geo, weights, _bias(k, n_out), {"xc": 1, "xh": n_in, "xw": n_in})
    if p is None:
        return None
    p["permuted"] = order is not None
    return KernelOut("mcu_dense", p, weights.size, [node.inputs[0]], HWC, _scratch(k.mcu.dsp, p["k"], p["m"]),
                     RUNTIME + (f"mcu_rt_conv_{p['xt']}",))
