"""Convolution (groups 1) and Dense as microcontroller kernels (:mod:`.mcu_kernels`).

One convolution kernel serves every layer (``mcu_rt_conv_cols.j2``, ``_mcu_conv.j2``): any
kernel, stride, dilation and pads. Per group of output positions (two with the DSP
extension, four on the scalar flavour) it copies each window into a column of scratch
(padding written as zeros), widened to 16 bits (DSP) or 32 bits (scalar), then computes
every output channel from the columns: two channels times two positions with ``SMLAD``
(DSP), one channel times four positions with 32-bit multiplies (scalar, the four sums in
high registers). The input is read through its element strides, so the first layer
reads the model's input (``chw``) as it is: channels last, a tap's channels come 4 a word
and a window row inside the input as one run; in the IR's order, each channel's window
rows as runs (taps in (c, kh, kw) order). The output is written channels last.

Dense has its own loop (``mcu_rt_dense.j2``): the input vector widened once, four output
rows a step.

Weights are reordered here, once: the column's order, padded with zero weights to a
multiple of 4 (DSP), and packed four to a 32-bit word so that the two 16-bit pairs
``SXTB16`` and ``SXTB16(ROR 8)`` unpack from it line up with the column's pairs. A
column filled from four channels by one word load and ``SXTB16`` holds them as
(c0, c2, c1, c3), which the natural byte order matches; a column filled value by value
holds (k0, k1, k2, k3), which bytes (k0, k2, k1, k3) match.

The inner loops are GNU inline assembly for Arm (Thumb-2 with the DSP extension, or
Thumb-1 for the scalar flavour), their C form everywhere else. Requantization is exact in
32-bit arithmetic (:func:`requant_form`; on the DSP flavour a shift form becomes the
multiplier 2^(32-s), one ``SMMULR``); a layer it cannot do, or with other than 8-bit
activations and weights or an accumulator over 31 bits, is not eligible: the driver
gives it the generic lowering.
"""

from __future__ import annotations

import numpy as np

from ..ir.ops.dense import requant_params, rounding_of
from .mcu_kernels import HWC, KERNELS, KernelIn, KernelOut, requant_form
from .mcu_pool import lower_depthwise
from .program import rows, window

RUNTIME = ("mcu_rt_common", "mcu_rt_conv")
SAT = {(-128, 127): 1, (0, 255): 2}  # output ranges SSAT 8 / USAT 8 give (DSP convolution)
ACC_BITS = 31  # the widest accumulator the kernels take (acc + 2^(s-1) then fits int32)


def _types_ok(k: KernelIn) -> bool:
    q, node = k.q, k.node
    x_t, w_t, y_t = (q.qtype(t) for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
    return (x_t.width == 8 and y_t.width == 8 and w_t.width <= 8 and w_t.signed
            and int(node.attr("acc_width")) <= ACC_BITS and not (x_t.is_float or w_t.is_float or y_t.is_float))


def pack_weights(wk: np.ndarray, dsp: bool, fast: bool, group: int = 2) -> tuple[np.ndarray, int]:
    """Weights ``(M, K)`` in the column's tap order as the kernel reads them, and the
    column length. Rows padded with zero rows to a multiple of ``group`` (the rows a step
    computes). DSP: K padded with zeros to a multiple of 4, each 4 packed into one
    little-endian int32 (bytes (k0, k1, k2, k3) for a ``fast`` column, (k0, k2, k1, k3)
    otherwise), the rows of each group interleaved word by word; scalar: int8, the rows of
    each group interleaved byte by byte (``group`` 1: the rows as they are)."""
    m, kk = wk.shape
    k4 = -(-kk // 4) * 4 if dsp else kk
    w = np.zeros((-(-m // group) * group, k4), dtype=np.int64)
    w[:m, :kk] = wk
    if not dsp:
        return w.reshape(-1, group, kk).transpose(0, 2, 1).reshape(-1), kk
    w = w.reshape(-1, k4 // 4, 4)
    if not fast:
        w = w[:, :, [0, 2, 1, 3]]
    b = (w & 0xFF).astype(np.uint32)
    words = (b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16) | (b[..., 3] << 24)).view(np.int32).astype(np.int64)
    words = words.reshape(-1, group, k4 // 4).transpose(0, 2, 1)  # group, word, row of the group
    return words.reshape(-1), k4


def _padded(v: np.ndarray, group: int) -> np.ndarray:
    """A per-channel array padded with zeros to a multiple of ``group``."""
    return np.concatenate([v, np.zeros(-v.size % group, dtype=np.int64)])


def _copy_kind(dsp: bool, geo: dict, strides: dict) -> int:
    """How the DSP column copy reads a window (``fast``): 1 a tap's channels 4 a word
    (channels last, c % 4 == 0), 2 also each window row as one run of kw * c bytes, 3 the
    rows of each channel as runs (x[iw + 1] after x[iw], dilation 1; taps in (c, kh, kw)
    order), 0 value by value."""
    if not dsp:
        return 0
    if strides["xc"] == 1 and geo["c"] % 4 == 0:
        return 2 if strides["xw"] == geo["c"] and geo["dw"] == 1 else 1
    return 3 if strides["xw"] == 1 and geo["dw"] == 1 and strides["xc"] != 1 else 0


def _struct(k: KernelIn, geo: dict, wk: np.ndarray, bias: np.ndarray, strides: dict, group: int) -> dict | None:
    """Everything the step template writes: packed weights, bias, requantization, the
    parameter struct's fields; None when the requantization has no exact 32-bit form."""
    q, node = k.q, k.node
    if rounding_of(node) != "half_up":
        return None  # ties to even: the portable step
    form = requant_form(*requant_params(node, q))
    if form is not None and k.mcu.dsp and group == 2 and form["rq"] == "shift" and form["s"] >= 2:
        # the same rounding as one SMMULR: floor((acc * 2^(32-s) + 2^31) / 2^32)
        form = {"rq": "mult", "s": 0, "mult": np.full(wk.shape[0], 1 << (32 - form["s"]), dtype=np.int64)}
    if form is None or np.abs(bias).max(initial=0) >= 1 << 31:
        return None
    y_t = q.qtype(node.outputs[0])
    x_t = q.qtype(node.inputs[0])
    lo = max(y_t.lo, 0) if node.attr("relu") else y_t.lo
    dsp = k.mcu.dsp
    fast = _copy_kind(dsp, geo, strides)
    w, klen = pack_weights(wk, dsp, fast in (1, 2), group)
    wide = [geo[f] for f in ("c", "h", "w", "kh", "kw", "sh", "sw", "dh", "dw", "oh", "ow", "m")]
    if max(*wide, klen) >= 1 << 16 or max(geo["pt"], geo["pl"]) >= 1 << 15:
        return None  # the parameter struct's 16-bit fields
    xt = "s8" if x_t.signed else "u8"
    p = {**geo, **strides, "k": klen, "fast": fast, "lo": lo, "hi": y_t.hi, "xt": xt,
         "sat": SAT.get((lo, y_t.hi), 0) if dsp and form["rq"] == "mult" and form["s"] == 0 else 0,
         "w_rows": rows(w), "w_size": max(1, w.size), "w_ctype": "int32_t" if dsp else "int8_t",
         "b_rows": rows(_padded(bias, group)), "b_size": bias.size - bias.size % -group, "rq": form["rq"],
         "s": form["s"], "mult_rows": None if form["mult"] is None else rows(_padded(form["mult"], group)),
         "x_ctype": "int8_t" if x_t.signed else "uint8_t", "y_ctype": "int8_t" if y_t.signed else "uint8_t",
         "dsp": dsp, "permuted": False, "xr": 0}
    return p


def _scratch(dsp: bool, klen: int, fast: int) -> int:
    """The columns: two of ``klen`` 16-bit values (DSP; a third, staged, when the window is
    read in runs of the IR's order), four of 32-bit values (scalar)."""
    return (6 if fast == 3 else 4) * klen if dsp else 16 * klen


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
    st = k.strides(0)
    strides = {"xc": st["sc"], "xh": st["sh"], "xw": st["sw"]}
    if _copy_kind(k.mcu.dsp, geo, strides) == 3:
        wk = w4.reshape(m, -1)  # (c, kh, kw): the column's order
    else:
        wk = w4.transpose(0, 2, 3, 1).reshape(m, -1)  # (kh, kw, c)
    bias, xr = _bias(k, m), 0
    if q.qtype(node.inputs[0]).signed:  # the kernel reads x ^ 0x80 = x + 128 (padding 128)
        bias, xr = bias - 128 * wk.sum(axis=1), 0x80
        if int((np.abs(bias) + 255 * np.abs(wk).sum(axis=1)).max()) >= 1 << 31:
            return None  # a partial sum could leave int32
    p = _struct(k, {**geo, "m": m}, wk, bias, strides, 2 if k.mcu.dsp else 1)
    if p is None:
        return None
    p["xr"] = xr
    macs = m * geo["oh"] * geo["ow"] * wk.shape[1]
    return KernelOut("mcu_conv", p, macs, [node.inputs[0]], HWC, _scratch(k.mcu.dsp, p["k"], p["fast"]),
                     RUNTIME + ("mcu_rt_conv_cols", "mcu_rt_im2col"))


def _bias(k: KernelIn, m: int) -> np.ndarray:
    node = k.node
    if len(node.inputs) > 2 and node.inputs[2]:
        return np.asarray(k.q.consts[node.inputs[2]], dtype=np.int64).reshape(-1)
    return np.zeros(m, dtype=np.int64)


@KERNELS.lowers("Dense")
def lower_dense(k: KernelIn) -> KernelOut | None:
    """The input vector (in its stored order: the weight columns are permuted to it)
    widened once, then four output rows a step (``mcu_rt_dense.j2``)."""
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
    p = _struct(k, geo, weights, _bias(k, n_out), {"xc": 1, "xh": n_in, "xw": n_in}, 4)
    if p is None:
        return None
    p["permuted"] = order is not None
    scratch = 2 * p["k"] if k.mcu.dsp else 4 * p["k"]  # the widened input vector
    return KernelOut("mcu_dense", p, weights.size, [node.inputs[0]], HWC, scratch,
                     RUNTIME + ("mcu_rt_dense", f"mcu_rt_dense_{p['xt']}"))
