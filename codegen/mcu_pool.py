"""Microcontroller kernels for the depthwise convolution, the pools and the residual Add.

Each lowering reads a node through :class:`.mcu_kernels.KernelIn` and returns a
:class:`.mcu_kernels.KernelOut` (None when the node is not eligible: the generic lowering
then runs). Activations are 8-bit; every number the kernels use is computed here, and
every division is replaced by a multiplication proven exact over its whole range.

Depthwise (channel multiplier 1, :func:`lower_depthwise`, called by the Conv lowering):
the input rows a window needs are copied once each into a ring buffer in the kernel
scratch, with the zero padding built in (pad columns and a shared zero row), so the
multiply-accumulate loop has no bounds checks and no division. DSP flavour: the buffer
holds groups of 4 channels widened to 16 bits, each pixel as two words
``(c0 | c2 << 16, c1 | c3 << 16)`` (what the byte-unpacking instructions give from one
word of 4 channels), and the weights are stored offline in the same order after the
group's 4 biases: one output pixel of 4 channels is ``2 * taps`` double-word loads and
``4 * taps`` 16-bit multiply-accumulates (SMLABB / SMLATT). Scalar flavour (no DSP
extension): the buffer holds bytes (an int8 input plus 128, the bias corrected offline),
the weights are int32 after each channel's bias (and multiplier): a tap is a byte load, a
word load, a multiply and an add. The bias carries the rounding constant of the shift
requantization.

Pools (MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool) read their input through
element strides and write channels last. An average is ``lo + ((2 * S + A) * M) >> s``
(``S`` the window's exact sum, ``A = count * (1 - 2 * lo)`` so the product is never
negative), with ``(M, s)`` the reciprocal of ``2 * count`` of
:func:`nnforge.ir.fixed.reciprocal`, exact over the sums' whole range.

Add of two same-layout activations: ``sat((a * ma + b * mb + 2^(s-1)) >> s)`` in 32
bits; real-scale multipliers are narrowed to fewer bits only when every pair of operand
values gives golden's integer (checked exhaustively: the operands are 8-bit).
"""

from __future__ import annotations

import numpy as np

from ..ir.ops.add import add_params
from ..ir.ops.dense import requant_params, rounding_of
from .lower import c_int_type
from .mcu_kernels import HWC, KERNELS, KernelIn, KernelOut, as_chw, requant_form
from .program import rows, window
from ..ir.fixed import reciprocal

COMMON = "mcu_rt_common"
INT32_LIMIT = 1 << 31


def _act8(t) -> bool:
    """An 8-bit (or narrower) integer activation type."""
    return t is not None and not t.is_float and t.width <= 8


def _sat(lo: int, hi: int) -> dict:
    """How a kernel saturates to ``[lo, hi]`` (compile-time constants of the kernel
    function): ``nnf_ssat`` (SSAT) for a whole signed N-bit range, else a clamp, which gcc
    turns into USAT for a whole unsigned range. ``tag`` names the kernel variant."""
    n = hi.bit_length() + 1
    if lo == -hi - 1 and hi == (1 << (n - 1)) - 1:
        return {"tag": f"ssat{n}", "ssat": n, "lo": lo, "hi": hi}
    return {"tag": f"c{lo}_{hi}".replace("-", "m"), "ssat": 0, "lo": lo, "hi": hi}


def _ctype(t) -> str:
    return c_int_type(t.width, t.signed)


def _tag(ctype: str) -> str:
    """``int8_t`` -> ``s8``, ``uint8_t`` -> ``u8``: a kernel function's name part."""
    return ("u" if ctype.startswith("u") else "s") + ctype.split("int")[1].split("_")[0]


def _x_strides(k: KernelIn, i: int = 0) -> dict:
    st = k.strides(i)
    return {"xc": st["sc"], "xh": st["sh"], "xw": st["sw"]}


# ---- depthwise convolution -------------------------------------------------------------------


def _dw_eligible(k: KernelIn):
    """(x type, y type, weights, bias, requantization) of an eligible depthwise Conv, or None."""
    node, q = k.node, k.q
    x, w, b = node.inputs
    x_t, y_t, w_t = q.qtype(x), q.qtype(node.outputs[0]), q.qtype(w)
    if not (_act8(x_t) and _act8(y_t)) or w_t is None or w_t.is_float or w_t.width > 16:
        return None
    c = as_chw(q.shape(x))[0]
    weights = np.asarray(q.consts[w], dtype=np.int64)
    if int(node.attr("groups", 1)) != c or weights.shape[0] != c or weights.shape[1] != 1:
        return None
    if int(node.attr("acc_width")) > 31 or k.layouts[0] not in ("chw", HWC):
        return None
    rq = requant_form(*requant_params(node, q))
    if rq is None or rounding_of(node) != "half_up":  # (ties to even: the portable step)
        return None
    s = rq["s"]
    if rq["rq"] == "shift":  # the rounding constant rides in the bias
        form, rnd = "shift", (1 << (s - 1)) if s else 0
    else:
        form, rnd = ("mult", 1 << (s - 1)) if s else ("multr", 0)
    bias = np.asarray(q.consts[b], dtype=np.int64) + (rnd if form == "shift" else 0)
    if bias.size and np.abs(bias).max() >= INT32_LIMIT // 2:
        return None
    return x_t, y_t, weights, bias, {"form": form, "s": s, "round": rnd, "mult": rq["mult"]}


def _pair_words(a: np.ndarray) -> np.ndarray:
    """``(..., 4)`` 16-bit values of 4 channels as the two words ``(c0 | c2 << 16, c1 | c3 << 16)``."""
    u = np.asarray(a, dtype=np.int64) & 0xFFFF
    return np.stack([u[..., 0] | (u[..., 2] << 16), u[..., 1] | (u[..., 3] << 16)], axis=-1)


def _hex_rows(words: np.ndarray) -> list[str]:
    """uint32 words as C literals, 8 a line."""
    flat = [f"0x{int(v) & 0xFFFFFFFF:08x}u" for v in np.asarray(words).reshape(-1)]
    return [", ".join(flat[i:i + 8]) for i in range(0, len(flat), 8)] or ["0"]


def _padded(values: np.ndarray, n: int, fill: int = 0) -> np.ndarray:
    out = np.full(n, fill, dtype=np.int64)
    out[:len(values)] = values
    return out


def _dw_weights(k: KernelIn, weights: np.ndarray, bias: np.ndarray, mult, signed_in: bool):
    """(weight rows, groups, zero) in the flavour's order: DSP, per group of 4 channels its
    4 biases then the taps' 16-bit pair words ``[tap][2]`` (pad channels zero); scalar, int32
    per channel its bias (corrected for an int8 input stored plus 128), its multiplier
    (multiplier forms) and its taps. None when a scalar sum could leave int32."""
    c = weights.shape[0]
    wk = weights.reshape(c, -1)
    taps = wk.shape[1]
    if not k.mcu.dsp:
        bias = bias - 128 * wk.sum(axis=1) if signed_in else bias
        reach = np.abs(bias) + 256 * np.abs(wk).sum(axis=1)
        if int(reach.max()) >= INT32_LIMIT:
            return None
        head = [bias[:, None]] + ([np.asarray(mult, dtype=np.int64).reshape(c, 1)] if mult is not None else [])
        return rows(np.concatenate([*head, wk], axis=1)), c, 128 if signed_in else 0
    groups = -(-c // 4)
    wpad = np.zeros((groups * 4, taps), dtype=np.int64)
    wpad[:c] = wk
    w_words = _pair_words(wpad.reshape(groups, 4, taps).transpose(0, 2, 1)).reshape(groups, 2 * taps)
    b_words = _padded(bias, groups * 4).reshape(groups, 4)
    return _hex_rows(np.concatenate([b_words, w_words], axis=1)), groups, 0


def lower_depthwise(k: KernelIn) -> KernelOut | None:
    """A Conv with ``groups == C_in == C_out`` (channel multiplier 1) on 8-bit activations:
    the ring-buffer kernel of ``mcu_rt_dw.j2``; None when not eligible."""
    found = _dw_eligible(k)
    if found is None:
        return None
    x_t, y_t, weights, bias, rq = found
    node, q = k.node, k.q
    geo = window(node.attrs, q.shape(node.inputs[0]), weights.shape[2:])
    c, kh, kw = geo["c"], geo["kh"], geo["kw"]
    taps = kh * kw
    packed = _dw_weights(k, weights, bias, rq["mult"] if rq["form"] != "shift" else None, x_t.signed)
    if packed is None:
        return None
    w_rows, groups, zero = packed
    ring = (kh - 1) * geo["dh"] + 1  # input rows a window spans
    wp = max(geo["pl"] + geo["w"], (geo["ow"] - 1) * geo["sw"] + (kw - 1) * geo["dw"] + 1)
    # buffer units of one row: DSP, words [group][pixel][2]; scalar, bytes [channel][pixel] (whole words)
    slot = groups * wp * 2 if k.mcu.dsp else -(-c * wp // 4) * 4
    lo = max(y_t.lo, 0) if node.attr("relu") else y_t.lo
    in_ct, out_ct = _ctype(x_t), _ctype(y_t)
    sat = _sat(lo, y_t.hi)
    fn = f"nnf_dw_{_tag(in_ct)}_{_tag(out_ct)}_{rq['form']}_{sat['tag']}"
    p = {**geo, **_x_strides(k), "groups": groups, "taps": taps, "ring": ring, "wp": wp, "slot": slot,
         "fast": int(kh == 3 and kw == 3 and geo["dw"] == 1), "zero": zero, "partial": int(c % 4 != 0),
         "word_in": int(k.mcu.dsp and k.layouts[0] == HWC and c % 4 == 0),
         "s": rq["s"], "round": rq["round"], "form": rq["form"], "sat": sat, "fn": fn, "in_ctype": in_ct,
         "out_ctype": out_ct, "in_tag": _tag(in_ct), "w_rows": w_rows, "w_size": sum(len(r.split(",")) for r in w_rows), "w_type": "uint32_t" if k.mcu.dsp else "int32_t",
         "m_rows": None}
    if rq["form"] != "shift" and k.mcu.dsp:
        p["m_rows"], p["m_size"] = rows(_padded(rq["mult"], groups * 4, 1)), groups * 4
    unit = 4 if k.mcu.dsp else 1
    scratch = -(-(ring + 1) * slot * unit // 4) * 4 + (2 + kh) * 4
    macs = c * geo["oh"] * geo["ow"] * taps
    return KernelOut("mcu_dw", p, macs, [node.inputs[0]], HWC, scratch, (COMMON, "mcu_rt_dw"))


# ---- pools -------------------------------------------------------------------------------------


def _pool_io(k: KernelIn):
    """(x type, y type) of an eligible pool (8-bit, the output's range holding the input's)."""
    q, node = k.q, k.node
    x_t, y_t = q.qtype(node.inputs[0]), q.qtype(node.outputs[0])
    if not (_act8(x_t) and _act8(y_t)) or k.layouts[0] not in ("chw", HWC):
        return None
    return x_t, y_t


def _taps(n_out: int, stride: int, pad: int, dil: int, k: int, size: int, lo: int, hi: int) -> np.ndarray:
    """Per output position along one axis: the first and past-the-last tap whose input
    index lies in ``[0, size)``, and how many taps lie in ``[lo, hi)`` (the counted cells)."""
    out = np.zeros((n_out, 3), dtype=np.int64)
    for o in range(n_out):
        idx = o * stride - pad + np.arange(k) * dil
        inside = np.flatnonzero((idx >= 0) & (idx < size))
        out[o] = (inside[0], inside[-1] + 1, 0) if inside.size else (0, 0, 0)
        out[o, 2] = int(np.count_nonzero((idx >= lo) & (idx < hi)))
    return out


def average_reciprocal(count: int, x_lo: int, x_hi: int) -> dict:
    """The exact average of ``count`` values in ``[x_lo, x_hi]`` with sum ``S``:
    ``floor((2 * S + count) / (2 * count)) == x_lo + ((((2 * S + add) >> e) * m) >> s)`` with
    ``add = count * (1 - 2 * x_lo)`` (the numerator then lies in ``[count, top]``), ``2 * count =
    2^e * d`` (d odd) and ``(m, s)`` the reciprocal of ``d`` proven exact up to ``top >> e``.
    ``wide``: the product needs more than 32 bits (then it is formed in 64)."""
    top = count * (2 * (x_hi - x_lo) + 1)
    div = 2 * count
    e = (div & -div).bit_length() - 1
    m, s = reciprocal(top >> e, div >> e)
    return {"add": count * (1 - 2 * x_lo), "e": e, "m": m, "s": s, "wide": int((top >> e) * m >= 1 << 32)}


def _window_tables(geo: dict, count_pad: bool) -> tuple[np.ndarray, np.ndarray]:
    if count_pad:
        rh, rw = (-geo["pt"], geo["h"] + geo["pb"]), (-geo["pl"], geo["w"] + geo["pr"])
    else:
        rh, rw = (0, geo["h"]), (0, geo["w"])
    th = _taps(geo["oh"], geo["sh"], geo["pt"], geo["dh"], geo["kh"], geo["h"], *rh)
    tw = _taps(geo["ow"], geo["sw"], geo["pl"], geo["dw"], geo["kw"], geo["w"], *rw)
    return th, tw


def _window_pool(k: KernelIn, avg: bool) -> KernelOut | None:
    io = _pool_io(k)
    if io is None:
        return None
    x_t, y_t = io
    node, q = k.node, k.q
    geo = window(node.attrs, q.shape(node.inputs[0]), tuple(node.attr("kernel_shape")), bool(node.attr("ceil_mode")))
    th, tw = _window_tables(geo, bool(node.attr("count_include_pad")))
    in_ct, out_ct = _ctype(x_t), _ctype(y_t)
    p = {**geo, **_x_strides(k), "in_ctype": in_ct, "out_ctype": out_ct, "lo": y_t.lo, "hi": y_t.hi,
         "x_lo": x_t.lo, "th_rows": rows(th[:, :2]), "tw_rows": rows(tw[:, :2]), "avg": avg, "tn": 2,
         "th_size": th[:, :2].size, "tw_size": tw[:, :2].size, "r_rows": None, "wide": 0}
    kind = "maxpool"
    if avg:
        kind = "avgpool"
        hcls, hidx = np.unique(th[:, 2], return_inverse=True)
        wcls, widx = np.unique(tw[:, 2], return_inverse=True)
        if hcls.min() == 0 or wcls.min() == 0:
            return None  # a window with no counted cell
        recs = [average_reciprocal(int(a * b), x_t.lo, x_t.hi) for a in hcls for b in wcls]
        p.update(th_rows=rows(np.c_[th[:, :2], hidx * len(wcls)]), tw_rows=rows(np.c_[tw[:, :2], widx]),
                 r_rows=[f"{{{r['add']}, {r['e']}, {r['m']}u, {r['s']}}}" for r in recs], r_size=len(recs),
                 wide=int(any(r["wide"] for r in recs)), tn=3, th_size=th.size, tw_size=tw.size)
    p["fn"] = f"nnf_{kind}_{_tag(in_ct)}_{_tag(out_ct)}" + ("_wide" if p.get("wide") else "")
    return KernelOut("mcu_pool", p, 0, [node.inputs[0]], HWC, 0, (COMMON, "mcu_rt_pool"))


@KERNELS.lowers("MaxPool")
def lower_maxpool(k: KernelIn) -> KernelOut | None:
    return _window_pool(k, avg=False)


@KERNELS.lowers("AveragePool")
def lower_avgpool(k: KernelIn) -> KernelOut | None:
    return _window_pool(k, avg=True)


@KERNELS.lowers("GlobalAveragePool", "GlobalMaxPool")
def lower_global_pool(k: KernelIn) -> KernelOut | None:
    """Per channel, the average or maximum of its ``n`` positions (read at the stride
    ``xp``: channels-last and IR order both step evenly through them)."""
    io = _pool_io(k)
    if io is None:
        return None
    x_t, y_t = io
    c, h, w = as_chw(k.q.shape(k.node.inputs[0]))
    st = _x_strides(k)
    if st["xh"] != w * st["xw"]:
        return None
    in_ct, out_ct = _ctype(x_t), _ctype(y_t)
    avg = k.node.op == "GlobalAveragePool"
    p = {"c": c, "n": h * w, "xc": st["xc"], "xp": st["xw"], "in_ctype": in_ct, "out_ctype": out_ct,
         "lo": y_t.lo, "hi": y_t.hi, "avg": avg, "x_lo": x_t.lo, "rec": None}
    if avg:
        p["rec"] = average_reciprocal(h * w, x_t.lo, x_t.hi)
    p["wide"] = int(avg and p["rec"]["wide"])
    p["fn"] = f"nnf_{'gap' if avg else 'gmp'}_{_tag(in_ct)}_{_tag(out_ct)}" + ("_wide" if p["wide"] else "")
    return KernelOut("mcu_gpool", p, 0, [k.node.inputs[0]], HWC, 0, (COMMON, "mcu_rt_pool"))


# ---- residual Add ------------------------------------------------------------------------------


def add32(ma: int, mb: int, shift: int, a_t, b_t, y_t) -> tuple[int, int, int] | None:
    """``(ma, mb, s)`` with ``sat((a * ma + b * mb + 2^(s-1)) >> s)`` equal to golden's Add
    (``ma``, ``mb``, ``shift`` of :func:`nnforge.ir.ops.add.add_params`) for every pair of
    operand values, and every intermediate inside int32; None when there is none. Large
    real-scale multipliers are narrowed (``s`` lowered, each multiplier rounded down or up)
    and each candidate checked on all pairs of values (the operands are 8-bit)."""
    if shift < 0:
        ma, mb, shift = ma << -shift, mb << -shift, 0
    a = np.arange(a_t.lo, a_t.hi + 1, dtype=np.int64)[:, None]
    b = np.arange(b_t.lo, b_t.hi + 1, dtype=np.int64)[None, :]
    amax, bmax = max(-a_t.lo, a_t.hi), max(-b_t.lo, b_t.hi)

    def fits(xa, xb, s):
        return xa >= 0 and xb >= 0 and amax * xa + bmax * xb + (1 << s >> 1) < INT32_LIMIT

    def result(xa, xb, s):
        return np.clip((a * xa + b * xb + (1 << s >> 1)) >> s, y_t.lo, y_t.hi)

    if fits(ma, mb, shift):
        return ma, mb, shift
    want = result(ma, mb, shift)
    for s in range(shift - 1, -1, -1):
        d = shift - s
        for xa in (ma >> d, (ma >> d) + 1):
            for xb in (mb >> d, (mb >> d) + 1):
                if fits(xa, xb, s) and np.array_equal(result(xa, xb, s), want):
                    return xa, xb, s
    return None


@KERNELS.lowers("Add")
def lower_add(k: KernelIn) -> KernelOut | None:
    """Two activations of one shape and one layout, elementwise in 32 bits."""
    q, node = k.q, k.node
    if any(q.is_const(t) for t in node.inputs) or len(set(k.layouts)) != 1:
        return None
    a_t, b_t, y_t = (q.qtype(t) for t in (*node.inputs, node.outputs[0]))
    if not all(_act8(t) for t in (a_t, b_t, y_t)) or q.shape(node.inputs[0]) != q.shape(node.inputs[1]):
        return None
    found = add32(*add_params(node, q), a_t, b_t, y_t)
    if found is None:
        return None
    ma, mb, s = found
    cts = [_ctype(t) for t in (a_t, b_t, y_t)]
    size = int(np.prod(q.shape(node.outputs[0])))
    sat = _sat(y_t.lo, y_t.hi)
    p = {"ma": ma, "mb": mb, "s": s, "round": 1 << s >> 1, "size": size, "a_ctype": cts[0], "b_ctype": cts[1],
         "out_ctype": cts[2], "sat": sat, "fn": "nnf_add_" + "_".join(_tag(c) for c in cts) + "_" + sat["tag"]}
    return KernelOut("mcu_add", p, 0, list(node.inputs), "same", 0, (COMMON, "mcu_rt_add"))
