"""Lowering a quantized graph to a :class:`Program`: the general form for the C backend.

Where :func:`.lower.lower` accepts only a chain of Dense layers (the HLS and Verilog
engines), a Program is any DAG of the ops the target's lowering table :data:`LOWERINGS`
implements (one function per op, registered with ``@LOWERINGS.lowers(op)``), as a
topologically ordered list of :class:`Step` s. Every step names its kind, its input and
output buffers, shapes, fixed-point types and every integer parameter; Python computes
all of them here and the templates (``hls_templates/c/<kind>.j2``) only lay text out.

Layout: every tensor is stored flat, row-major, exactly as its per-sample IR shape. A 1-D
window op on ``(C, L)`` is the 2-D op on ``(C, 1, L)`` (kernel, stride, dilation 1 and no
pads on the extra axis), which is the same memory, so one loop nest serves both.

Buffers: the model input is ``in`` and the graph output is ``out`` (the entry point's
arguments). Every other value lives in a static buffer; a buffer whose value is dead is
reused by a later step of the same C type (greedy, in step order). A Reshape emits no code:
its output is its input's buffer.

Mul, Max / Min and Transpose read their operands through :func:`_loop_nest`: loops over
the output (row-major), each operand at its own strides (broadcast: stride 0; Transpose:
the input's strides permuted). A reduction (and ArgMax) is loops over the kept axes around
loops over the reduced ones. Concat copies each input into its columns of every output row,
requantized to the output type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..ir import FixedType, Graph
from ..ir.fixed import signed_width_for
from ..ir.ops import op_def, ops_with
from ..ir.ops.window import out_sizes, spatial_attrs
from ..ir.ops.add import add_params
from ..ir.ops.dense import requant_params, ties_to_even
from ..ir.ops.prelu import channel_slopes
from ..ir.ops.reduce import axes_of, count, sum_params, sum_ref
from .lower import BackendError, ModelIO, c_int_type, interface
from .naming import sanitize
from .resize_tables import lower_resize
from .registry import Lowerings


@dataclass(frozen=True)
class Buffer:
    name: str
    ctype: str
    size: int
    offset: int = -1  # bytes into the MCU arena (:mod:`.arena`); -1: a static array of its own


@dataclass(frozen=True)
class Step:
    """One op of the program: ``kind`` picks the template, ``params`` holds its numbers."""

    kind: str
    name: str
    op: str
    inputs: tuple[str, ...]  # buffer names ("in", "out", "nnf_bufK")
    output: str
    in_ctypes: tuple[str, ...]
    out_ctype: str
    params: dict = field(repr=False)
    macs: int = 0
    tensor: str = ""  # the IR tensor the output buffer holds ("" for a copy step)
    size: int = 0  # values in it
    layout: tuple[int, ...] = ()  # the buffer holds the tensor transposed by this perm; () = IR order
    scratch: int = 0  # bytes of kernel scratch the step uses (MCU kernels)


@dataclass(frozen=True)
class Program(ModelIO):
    steps: tuple[Step, ...]
    buffers: tuple[Buffer, ...]
    mcu: str = "generic"  # the kernels' core (:data:`.mcu.MCUS`)
    dsp: bool = False  # MCU kernels of the DSP-extension flavour
    arena: object = None  # the MCU memory plan (:class:`.arena.Arena`), None for static buffers
    runtime: tuple[str, ...] = ()  # MCU runtime templates, included once each before the steps

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)


def _ctype(t: FixedType) -> str:
    return c_int_type(t.width, t.signed)


def _acc_ctype(width: int) -> str:
    return "int32_t" if width <= 32 else "int64_t"


def _values_width(a: np.ndarray) -> int:
    a = np.asarray(a, dtype=np.int64)
    return signed_width_for(int(a.min()), int(a.max())) if a.size else 2


def _geometry2d(in_shape, kernel, strides, pads, dil, outs) -> dict:
    """Window geometry on (C, H, W); a 1-D op gets H = 1 and a trivial first axis."""
    if len(in_shape) == 2:
        in_shape = (in_shape[0], 1, in_shape[1])
        kernel, strides, dil, outs = (1, *kernel), (1, *strides), (1, *dil), (1, *outs)
        pads = (0, pads[0], 0, pads[1])
    c, h, w = in_shape
    return {"c": c, "h": h, "w": w, "kh": kernel[0], "kw": kernel[1], "sh": strides[0], "sw": strides[1],
            "dh": dil[0], "dw": dil[1], "pt": pads[0], "pl": pads[1], "pb": pads[2], "pr": pads[3],
            "oh": outs[0], "ow": outs[1]}


def window(attrs, in_shape, kernel, ceil_mode=False) -> dict:
    """A window op's geometry (:func:`_geometry2d`) from its attributes and input shape."""
    strides, pads, dil = spatial_attrs(attrs, len(in_shape) - 1, kernel)
    outs = out_sizes(in_shape[1:], kernel, strides, pads, dil, ceil_mode)
    return _geometry2d(in_shape, tuple(kernel), strides, pads, dil, outs)


class Rows:
    """Lines of ``per_line`` comma-separated integers, made only while a template iterates
    them: a layer's weights never exist as one list of strings, and a streamed render
    (:func:`.render.render_to`) writes a 100 M-weight array with a few MB of text in memory.
    Iterable any number of times; an empty array gives the one line ``0``."""

    BLOCK = 1 << 16  # values turned into text at once

    def __init__(self, values, per_line: int = 16) -> None:
        self.values = np.asarray(values).reshape(-1)
        if self.values.dtype.kind not in "iub":
            self.values = self.values.astype(np.int64)
        self.per_line = max(1, int(per_line))

    def __len__(self) -> int:
        return max(1, -(-self.values.size // self.per_line))

    def __iter__(self):
        if not self.values.size:
            yield "0"
            return
        per = self.per_line
        block = max(per, self.BLOCK // per * per)  # whole lines per block
        for start in range(0, self.values.size, block):
            flat = list(map(str, self.values[start:start + block].tolist()))  # Python ints: fast str
            for i in range(0, len(flat), per):
                yield ", ".join(flat[i:i + per])


def rows(values, per_line: int = 16) -> Rows:
    return Rows(values, per_line)


def _line(values) -> str:
    """Every value on one line (a bias, a short list)."""
    return ", ".join(map(str, np.asarray(values, dtype=np.int64).reshape(-1).tolist())) or "0"


# a layer's weights go in compressed sparse form when at most this share of them is
# nonzero (where it runs faster than the dense loops, by benchmarks/bench_c_sparse.py:
# gcc vectorizes a dense row, not a gather; a sparse Conv also drops the per-tap bounds
# checks inside the input)
SPARSE_DENSITY = {"Dense": 0.25, "Conv": 0.6}


CTYPE_BYTES = {"int8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8,
          "uint8_t": 1, "uint16_t": 2, "uint32_t": 4, "uint64_t": 8}


def _sparse(weights: np.ndarray, where, w_ctype: str, *taps: np.ndarray) -> dict:
    """The compressed sparse form of a Dense / Conv layer's weights, when at most
    ``SPARSE_DENSITY`` of them are nonzero: per output channel (row) its nonzero weights ``sv``, their
    ``index`` (a Dense: the input; a Conv: the tap's offset from the window corner) and,
    for a Conv, each tap's row and column offsets (``taps``); ``sr[n]`` .. ``sr[n+1]`` the
    row's entries. Zero weights then cost nothing, neither bytes nor multiplies.
    ``where`` is ``index``, or a function giving ``(index, *taps)``, then called only for a
    sparse layer (a dense layer of 100 M weights never makes its 1.6 GB of indices)."""
    nnz = int(np.count_nonzero(weights))
    conv = weights.ndim > 2
    out = {"nnz": nnz, "sparse": weights.size > 0 and nnz <= SPARSE_DENSITY["Conv" if conv else "Dense"] * weights.size}
    wb = CTYPE_BYTES[w_ctype]
    if not out["sparse"]:
        out["weight_bytes"] = weights.size * wb
        return out
    index, *taps = where() if callable(where) else (where, *taps)
    nz = weights.reshape(weights.shape[0], -1) != 0
    ptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))])
    pad = (lambda a: a) if nnz else (lambda a: np.zeros(1, dtype=np.int64))  # no zero-size C arrays
    out.update(sv_rows=rows(pad(weights.reshape(weights.shape[0], -1)[nz])),
               si_rows=rows(pad(index)), si_ctype=c_int_type(max(1, int(index.max(initial=0)).bit_length()), False),
               sr_rows=rows(ptr), sr_ctype=c_int_type(max(1, int(ptr[-1]).bit_length()), False),
               s_size=max(nnz, 1))
    if taps:
        th, tw = taps
        out.update(sh_rows=rows(pad(th)), sw_rows=rows(pad(tw)),
                   st_ctype=c_int_type(max(1, int(max(th.max(initial=0), tw.max(initial=0))).bit_length()), False))
    out["weight_bytes"] = (nnz * (wb + CTYPE_BYTES[out["si_ctype"]] + (2 * CTYPE_BYTES[out["st_ctype"]] if taps else 0))
                           + len(ptr) * CTYPE_BYTES[out["sr_ctype"]])
    return out


def _shared(weights: np.ndarray, p: dict) -> dict:
    """Indices and a table for a dense-form layer with few distinct weights (weight
    sharing): when 2, 4 or 16 values cover them all and the packed 1-, 2- or 4-bit
    indices plus the table are smaller than the weights, the C file holds those, decoded
    once into the weight array at the first run (flash holds the packed form, RAM the
    weights)."""
    if p.get("sparse") or not weights.size:
        return {"shared": False}
    vals = _few_values(weights, 16)
    bits = None if vals is None else next((b for b in (1, 2, 4) if len(vals) <= 1 << b), None)
    wb = CTYPE_BYTES[p["w_ctype"]]
    per = 8 // bits if bits else 0
    if bits is None or -(-weights.size // per) + len(vals) * wb >= weights.size * wb:
        return {"shared": False}
    flat = weights.reshape(-1)
    packed = np.zeros(-(-weights.size // per), dtype=np.uint8)
    step = Rows.BLOCK * per  # whole bytes per block
    for start in range(0, flat.size, step):
        idx = np.searchsorted(vals, flat[start:start + step]).astype(np.uint8)
        idx = np.pad(idx, (0, -idx.size % per)).reshape(-1, per)
        byte = packed[start // per:start // per + len(idx)]
        for j in range(per):
            byte |= idx[:, j] << np.uint8(j * bits)
    return {"shared": True, "tab_rows": rows(vals), "tab_size": len(vals), "idx_bits": bits, "idx_per": per,
            "idx_mask": (1 << bits) - 1, "idx_rows": rows(packed), "idx_size": len(packed),
            "weight_bytes": len(packed) + len(vals) * wb}


def _few_values(a: np.ndarray, most: int) -> np.ndarray | None:
    """The sorted distinct values of ``a`` if there are at most ``most``, else None; read
    in blocks, so a layer with many distinct weights costs one block, not a sorted copy."""
    seen = np.zeros(0, dtype=a.dtype)
    flat = a.reshape(-1)
    for start in range(0, flat.size, Rows.BLOCK * 16):
        seen = np.union1d(seen, flat[start:start + Rows.BLOCK * 16])
        if seen.size > most:
            return None
    return seen


def _requant(acc_frac: int, out_t: FixedType, relu: bool = False) -> dict:
    return {"shift": acc_frac - out_t.frac, "lo": max(out_t.lo, 0) if relu else out_t.lo, "hi": out_t.hi}


def _channel_requant(node, q: Graph, acc_width: int) -> dict:
    """A linear layer's per-channel rescale (:func:`nnforge.ir.ops.dense.requant_params`):
    ``shift``, and ``mult_rows`` (None when every multiplier is 1) with the C types of the
    multipliers and of the product ``acc * mult``."""
    mult, shift = requant_params(node, q)
    # ties to even (ir.fixed.round_shift): v - 1 + bit_shift(v) rounded half up
    p = {"shift": shift, "mult_rows": None, "mult_size": int(mult.size),
         "even": ties_to_even(node, shift)}
    if np.any(mult != 1):
        prod_width = acc_width + int(mult.max()).bit_length()
        p.update(mult_rows=rows(mult), mult_ctype=c_int_type(int(mult.max()).bit_length() + 1, True),
                 prod_width=prod_width, prod_ctype=_acc_ctype(prod_width))
    return p


def _row_major(shape) -> list[int]:
    strides, acc = [], 1
    for d in reversed(tuple(shape)):
        strides.append(acc)
        acc *= int(d)
    return strides[::-1]


def _broadcast_strides(shape, out_shape) -> list[int]:
    """Element strides of a row-major ``shape`` read over ``out_shape`` (numpy broadcasting:
    right-aligned, a size-1 axis is read with stride 0)."""
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(int(d) for d in shape)
    return [0 if d == 1 else st for d, st in zip(padded, _row_major(padded))]


def _loop_nest(out_shape, operand_strides) -> tuple[list[int], list[list[tuple[int, int]]]]:
    """The loops over ``out_shape`` (row-major) that read every operand by its strides, with
    size-1 axes dropped and neighbouring axes merged wherever every operand allows it
    (outer stride == inner stride * inner extent). Returns the loop extents and, per
    operand, its index terms ``(loop number, stride)`` (stride-0 terms left out)."""
    dims: list[int] = []
    strides: list[list[int]] = [[] for _ in operand_strides]
    for k, d in enumerate(int(v) for v in out_shape):
        if d == 1:
            continue
        if dims and all(ms[-1] == s[k] * d for ms, s in zip(strides, operand_strides)):
            dims[-1] *= d
            for ms, s in zip(strides, operand_strides):
                ms[-1] = s[k]
        else:
            dims.append(d)
            for ms, s in zip(strides, operand_strides):
                ms.append(s[k])
    if not dims:
        dims, strides = [1], [[0] for _ in operand_strides]
    return dims, [[(k, st) for k, st in enumerate(ms) if st] for ms in strides]


class NodeIO(NamedTuple):
    """What most lowerings read of a node: its first input, the types and shapes around it."""

    x: str
    x_t: FixedType
    out_t: FixedType
    in_shape: tuple
    out_shape: tuple
    size: int


def node_io(q: Graph, node) -> NodeIO:
    x, y = node.inputs[0], node.outputs[0]
    out_shape = q.shape(y)
    return NodeIO(x, q.qtype(x), q.qtype(y), q.shape(x), out_shape, int(np.prod(out_shape)))


def _refuse(node, why: str) -> BackendError:
    return BackendError(f"target 'c': node {sanitize(node.name)!r} {why}")


# The C target's lowering of each IR op: (kind, params, macs, activation inputs) of one node,
# ``kind`` naming the template. The HLS target registers the same functions
# (codegen.hls_program); the ops either supports are its table's keys.
LOWERINGS = Lowerings("c")
ALIAS = "alias"  # the kind of a step that emits no code: its output is its input's buffer


def step_params(q: Graph, node, name: str) -> tuple[str, dict, int, list[str]]:
    """(kind, params, macs, activation inputs) of one node: the C lowering of its op."""
    return LOWERINGS[node.op](q, node, name)


@LOWERINGS.lowers("Reshape")
def lower_reshape(q: Graph, node, name: str):
    """No code: a tensor is stored flat, row-major, so the output is the input's buffer."""
    return ALIAS, {}, 0, [node.inputs[0]]


def _linear_params(q: Graph, node, io: NodeIO, weights: np.ndarray, bias: np.ndarray) -> dict:
    w = node.inputs[1]
    acc_width = int(node.attr("acc_width"))
    return {"w_t": str(q.qtype(w)), "acc_width": acc_width, "acc_ctype": _acc_ctype(acc_width),
            "w_ctype": c_int_type(q.qtype(w).width, True),
            "b_ctype": c_int_type(_values_width(bias), True),
            "w_rows": rows(weights), "w_size": weights.size, "b_rows": rows(bias), "b_size": bias.size,
            **_requant(io.x_t.frac + q.qtype(w).frac, io.out_t, bool(node.attr("relu"))),
            **_channel_requant(node, q, acc_width)}


def _weights_bias(q: Graph, node) -> tuple[np.ndarray, np.ndarray]:
    _, w, b = node.inputs
    return np.asarray(q.consts[w], dtype=np.int64), np.asarray(q.consts[b], dtype=np.int64)


@LOWERINGS.lowers("Dense")
def lower_dense(q: Graph, node, name: str):
    io = node_io(q, node)
    weights, bias = _weights_bias(q, node)
    p = _linear_params(q, node, io, weights, bias)
    # one row of weights per output, as the (n_out, n_in) array
    p.update(n_in=weights.shape[1], n_out=weights.shape[0], w_rows=rows(weights, weights.shape[1]),
             b_list=_line(bias))
    p.update(_sparse(weights, lambda: (weights.reshape(weights.shape[0], -1).nonzero()[1],), p["w_ctype"]))
    p.update(_shared(weights, p))
    return "dense", p, weights.size, [io.x]


@LOWERINGS.lowers("Conv")
def lower_conv(q: Graph, node, name: str):
    io = node_io(q, node)
    weights, bias = _weights_bias(q, node)
    p = _linear_params(q, node, io, weights, bias)
    groups = int(node.attr("groups", 1))
    p.update(window(node.attrs, io.in_shape, weights.shape[2:]))
    p.update(m=weights.shape[0], groups=groups, cg=weights.shape[1], mg=weights.shape[0] // groups)

    def taps():  # a nonzero tap's offset from the window's corner: (c * H + kh * dh) * W + kw * dw
        _, c_i, kh_i, kw_i = np.nonzero(weights.reshape(weights.shape[0], weights.shape[1], p["kh"], p["kw"]))
        return (c_i * p["h"] + kh_i * p["dh"]) * p["w"] + kw_i * p["dw"], kh_i * p["dh"], kw_i * p["dw"]

    p.update(_sparse(weights, taps, p["w_ctype"]))
    p.update(kh_span=(p["kh"] - 1) * p["dh"] + 1, kw_span=(p["kw"] - 1) * p["dw"] + 1)
    p.update(_shared(weights, p))
    return "conv", p, io.size * int(np.prod(weights.shape[1:])), [io.x]


def _pool_window(node, io: NodeIO) -> dict:
    geo = window(node.attrs, io.in_shape, tuple(node.attr("kernel_shape")), bool(node.attr("ceil_mode")))
    return {**geo, "lo": io.out_t.lo, "hi": io.out_t.hi}


@LOWERINGS.lowers("MaxPool")
def lower_maxpool(q: Graph, node, name: str):
    io = node_io(q, node)
    p = _pool_window(node, io)
    p["init"] = io.x_t.lo  # padding never wins: start from the smallest input value
    return "maxpool", p, 0, [io.x]


@LOWERINGS.lowers("AveragePool")
def lower_avgpool(q: Graph, node, name: str):
    io = node_io(q, node)
    p = _pool_window(node, io)
    if node.attr("count_include_pad"):  # cells counted: input plus explicit pads
        p.update(cnt_h0=-p["pt"], cnt_h1=p["h"] + p["pb"], cnt_w0=-p["pl"], cnt_w1=p["w"] + p["pr"])
    else:  # cells counted: the input only
        p.update(cnt_h0=0, cnt_h1=p["h"], cnt_w0=0, cnt_w1=p["w"])
    return "avgpool", p, 0, [io.x]


@LOWERINGS.lowers("GlobalAveragePool", "GlobalMaxPool")
def lower_global_pool(q: Graph, node, name: str):
    io = node_io(q, node)
    p = {"c": io.in_shape[0], "n": int(np.prod(io.in_shape[1:])), "lo": io.out_t.lo, "hi": io.out_t.hi}
    return ("gap" if node.op == "GlobalAveragePool" else "gmp"), p, 0, [io.x]


@LOWERINGS.lowers("Relu")
def lower_relu(q: Graph, node, name: str):
    io = node_io(q, node)
    return "relu", {"size": io.size, **_requant(io.x_t.frac, io.out_t)}, 0, [io.x]


@LOWERINGS.lowers("LeakyRelu")
def lower_leakyrelu(q: Graph, node, name: str):
    io = node_io(q, node)
    mf = int(node.attr("mult_frac"))
    return "leakyrelu", {"size": io.size, "mult": int(node.attr("mult")), "mult_frac": mf,
                         **_requant(io.x_t.frac + mf, io.out_t)}, 0, [io.x]


@LOWERINGS.lowers("PRelu")
def lower_prelu(q: Graph, node, name: str):
    """LeakyRelu's step with a multiplier per channel (``mult_rows``; the template's
    per-channel form): ``c`` channels of ``n`` values each."""
    io = node_io(q, node)
    s = node.inputs[1]
    mult = channel_slopes(np.asarray(q.consts[s], dtype=np.int64), io.in_shape)
    mf = q.qtype(s).frac
    return "leakyrelu", {"size": io.size, "mult_frac": mf, "c": int(mult.size), "n": io.size // int(mult.size),
                         "mult_rows": rows(mult), "m_ctype": c_int_type(q.qtype(s).width, True),
                         **_requant(io.x_t.frac + mf, io.out_t)}, 0, [io.x]


@LOWERINGS.lowers("Clip")
def lower_clip(q: Graph, node, name: str):
    # y = min(max(x, lo_q), hi_q), then the output type's range (as the golden model)
    io = node_io(q, node)
    return "clip", {"size": io.size, "lo": int(node.attr("lo_q")), "hi": int(node.attr("hi_q")),
                    "out_lo": io.out_t.lo, "out_hi": io.out_t.hi}, 0, [io.x]


def lower_table(q: Graph, node, name: str):
    """Every table op: ``y = table[x - lo]`` over the input type's whole range."""
    io = node_io(q, node)
    table = np.asarray(q.consts[node.inputs[1]], dtype=np.int64)
    if table.shape != (io.x_t.hi - io.x_t.lo + 1,):
        raise _refuse(node, "has no table for its input type")
    return "table", {"size": io.size, "n": table.size, "lo": io.x_t.lo, "rows": rows(table)}, 0, [io.x]


LOWERINGS.lowers_all(ops_with(table=True), lower_table)


LOWERINGS.lowers("Resize")(lower_resize)


@LOWERINGS.lowers("BatchNormalization")
def lower_batchnorm(q: Graph, node, name: str):
    io = node_io(q, node)
    _, m, a = node.inputs
    mul = np.asarray(q.consts[m], dtype=np.int64)
    add = np.asarray(q.consts[a], dtype=np.int64)
    acc_width = int(node.attr("acc_width"))
    p = {"c": io.in_shape[0], "n": int(np.prod(io.in_shape[1:])), "acc_ctype": _acc_ctype(acc_width),
         "acc_width": acc_width, "m_ctype": c_int_type(q.qtype(m).width, True),
         "a_ctype": c_int_type(_values_width(add), True), "m_rows": rows(mul), "a_rows": rows(add),
         **_requant(io.x_t.frac + q.qtype(m).frac, io.out_t)}
    return "batchnorm", p, io.size, [io.x]


@LOWERINGS.lowers("Add")
def lower_add(q: Graph, node, name: str):
    io = node_io(q, node)
    f = max(q.qtype(t).frac for t in node.inputs)
    operands, acts = [], []
    for i, t in enumerate(node.inputs):
        tt = q.qtype(t)
        o = {"up": f - tt.frac, "const": q.is_const(t)}
        if q.is_const(t):  # a constant operand: broadcast here, stored whole
            full = np.broadcast_to(np.asarray(q.consts[t], dtype=np.int64), io.out_shape)
            o.update(rows=rows(full), ctype=c_int_type(_values_width(full), True), var=f"{name}_k{i}")
        else:
            o.update(ctype=_ctype(tt), var="ab"[i])
            if tuple(q.shape(t)) != tuple(io.out_shape):
                raise _refuse(node, f"(op Add) broadcasts an activation {q.shape(t)} to {io.out_shape}; "
                                    f"not supported")
            acts.append(t)
        operands.append(o)
    params = {"size": io.size, "frac": f, "a": operands[0], "b": operands[1], **_requant(f, io.out_t), "rq": False}
    if node.attrs.get("rq_mult") is not None:
        # real scales: each operand times its own integer, one rescale of the sum
        ma, mb, shift = add_params(node, q)
        operands[0]["mult"], operands[1]["mult"] = ma, mb
        params.update(rq=True, shift=shift)
    return "add", params, 0, acts


def _strided_operands(q: Graph, node, name: str, out_shape) -> tuple[list[dict], list[str], dict]:
    """The operands of a two-operand op read in a loop nest over the output, each at its
    broadcast strides (a constant stored in its own shape): the operands, the activation
    inputs, and the nest (``dims`` and the output's index ``y_terms``)."""
    if all(q.is_const(t) for t in node.inputs):
        raise _refuse(node, f"(op {node.op}) has no activation input")
    operands, acts = [], []
    for i, t in enumerate(node.inputs):
        o = {"const": q.is_const(t), "shape": tuple(q.shape(t))}
        if q.is_const(t):
            k = np.asarray(q.consts[t], dtype=np.int64)
            o.update(rows=rows(k), size=max(k.size, 1), ctype=c_int_type(_values_width(k), True),
                     var=f"{name}_k{i}", shape=k.shape)
        else:
            o.update(ctype=_ctype(q.qtype(t)), var="ab"[i])
            acts.append(t)
        operands.append(o)
    dims, terms = _loop_nest(out_shape, [_row_major(out_shape)] + [
        _broadcast_strides(o["shape"], out_shape) for o in operands])
    for o, tm in zip(operands, terms[1:]):
        o["terms"] = tm
    return operands, acts, {"dims": dims, "y_terms": terms[0]}


@LOWERINGS.lowers("Mul")
def lower_mul(q: Graph, node, name: str):
    # y = requant(a * b, frac(a) + frac(b) -> out): every operand read with its
    # broadcast strides over the output (a constant is stored in its own shape)
    io = node_io(q, node)
    operands, acts, nest = _strided_operands(q, node, name, io.out_shape)
    frac = sum(q.qtype(t).frac for t in node.inputs)
    return "mul", {"size": io.size, "frac": frac, **nest, "a": operands[0],
                   "b": operands[1], **_requant(frac, io.out_t)}, io.size, acts


@LOWERINGS.lowers("Max", "Min")
def lower_minmax(q: Graph, node, name: str):
    """``y = requant(max(a * m_a, b * m_b), shift)`` (min for Min; :mod:`nnforge.ir.ops.minmax`),
    each operand read at its broadcast strides as Mul reads them."""
    io = node_io(q, node)
    operands, acts, nest = _strided_operands(q, node, name, io.out_shape)
    ma, mb, shift = add_params(node, q)
    operands[0]["mult"], operands[1]["mult"] = ma, mb
    return "minmax", {"size": io.size, **nest, "a": operands[0], "b": operands[1], "pick": ">" if node.op == "Max"
                      else "<", **_requant(0, io.out_t), "shift": shift}, 0, acts


def _reduce_loops(in_shape, axes) -> dict:
    """Loops over the kept axes (the output, row-major) around loops over the reduced ones,
    each with the input's index terms (:func:`_loop_nest`)."""
    st = _row_major(in_shape)
    kept = [i for i in range(len(in_shape)) if i not in axes]
    shape = [in_shape[i] for i in kept]
    dims, (y_terms, x_terms) = _loop_nest(shape, [_row_major(shape), [st[i] for i in kept]])
    rdims, (r_terms,) = _loop_nest([in_shape[i] for i in axes], [[st[i] for i in axes]])
    return {"dims": dims, "y_terms": y_terms, "x_terms": x_terms, "rdims": rdims, "r_terms": r_terms}


@LOWERINGS.lowers("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin")
def lower_reduce(q: Graph, node, name: str):
    """A maximum / minimum from the input type's end; a sum exact in int64, then
    ``floor((2 * S * 2**up + div) / (2 * div))`` (:mod:`nnforge.ir.ops.reduce`)."""
    io = node_io(q, node)
    p = {**_reduce_loops(io.in_shape, axes_of(node.attrs, len(io.in_shape))), "mode": node.op[6:].lower(),
         "lo": io.out_t.lo, "hi": io.out_t.hi, "count": count(node, io.in_shape)}
    if op_def(node.op).int_ref is sum_ref:  # ReduceSum, ReduceMean
        p["up"], p["div"] = sum_params(node, q)
    else:
        p["init"] = io.x_t.lo if node.op == "ReduceMax" else io.x_t.hi
    return "reduce", p, 0, [io.x]


@LOWERINGS.lowers("ArgMax")
def lower_argmax(q: Graph, node, name: str):
    """The index of the first (or with ``select_last_index`` the last) largest value."""
    io = node_io(q, node)
    last = bool(node.attr("select_last_index"))
    return "argmax", {**_reduce_loops(io.in_shape, (int(node.attr("axis")),)), "last": last,
                      "init": io.x_t.lo if last else io.x_t.lo - 1}, 0, [io.x]


@LOWERINGS.lowers("Transpose")
def lower_transpose(q: Graph, node, name: str):
    io = node_io(q, node)
    perm = tuple(int(v) for v in node.attr("perm"))
    if io.out_t != io.x_t:
        raise _refuse(node, "(op Transpose) changes the type")
    return "transpose", transpose_params(io.in_shape, perm), 0, [io.x]


def transpose_params(in_shape, perm) -> dict:
    """The transpose template's numbers: ``y = x.transpose(perm)``, both row-major."""
    in_shape = tuple(int(d) for d in in_shape)
    out_shape = tuple(in_shape[k] for k in perm)
    x_strides = _row_major(in_shape)
    dims, terms = _loop_nest(out_shape, [_row_major(out_shape), [x_strides[k] for k in perm]])
    return {"size": int(np.prod(out_shape)), "perm": tuple(perm), "in_shape": in_shape, "out_shape": out_shape,
            "dims": dims, "y_terms": terms[0], "x_terms": terms[1]}


@LOWERINGS.lowers("Concat")
def lower_concat(q: Graph, node, name: str):
    # y[outer, off_k + j] = requant(x_k[outer, j], frac(x_k) -> out) per input k, where
    # a row of x_k holds its axis extent times the inner size
    io = node_io(q, node)
    axis = int(node.attr("axis"))
    outer = int(np.prod(io.out_shape[:axis]))
    inner = int(np.prod(io.out_shape[axis + 1:]))
    parts, off = [], 0
    for t in node.inputs:
        if q.is_const(t):
            raise _refuse(node, "(op Concat) has a constant input")
        block = int(q.shape(t)[axis]) * inner
        parts.append({"ctype": _ctype(q.qtype(t)), "block": block, "off": off, "size": outer * block,
                      "shift": q.qtype(t).frac - io.out_t.frac})
        off += block
    return "concat", {"size": io.size, "axis": axis, "outer": outer, "row": off, "parts": parts,
                      "lo": io.out_t.lo, "hi": io.out_t.hi}, 0, list(node.inputs)


C_OPS = LOWERINGS.ops()  # derived, kept for existing importers


def lower_program(q: Graph, lowerings: Lowerings = LOWERINGS, reuse: bool = True) -> Program:
    """The quantized graph as a Program (topological steps plus static buffers), every node
    lowered by its op's function in ``lowerings`` (the C target's table by default); a
    graph with an op outside the table is refused, naming the node, before anything else.

    ``reuse=False`` gives every step its own buffer (one producer per buffer, as an HLS
    DATAFLOW region wants) instead of reusing dead ones."""
    lowerings.check(q)
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    inp, outp = q.inputs[0], q.outputs[0]
    nodes = q.topo()
    # an alias (Reshape) emits no step: every tensor resolves to the root tensor whose buffer holds it
    alias = {n.name for n in nodes if lowerings[n.op] is lower_reshape}
    root: dict[str, str] = {inp: inp}
    for n in nodes:
        for t in n.outputs:
            root[t] = root[n.inputs[0]] if n.name in alias else t
    if root[outp] == inp:
        raise BackendError("the model has no layer to implement")
    compute = [n for n in nodes if n.name not in alias]
    used: set[str] = set()
    names = {n.name: sanitize(n.name, used, prefix="layer") for n in compute}
    acts = {n.name: lowerings[n.op](q, n, names[n.name]) for n in compute}
    last_use: dict[str, int] = {}
    for i, n in enumerate(compute):
        for t in acts[n.name][3]:
            last_use[root[t]] = i
    # static buffers, reused once dead (pools per C type)
    buf_of: dict[str, str] = {inp: "in", root[outp]: "out"}
    buffers: list[list] = []  # [name, ctype, size]
    free: list[int] = []
    holder: dict[int, str] = {}
    steps = []
    for i, n in enumerate(compute):
        kind, params, macs, ins = acts[n.name]
        out = n.outputs[0]
        ctype = _ctype(q.qtype(out))
        size = int(np.prod(q.shape(out)))
        if out not in buf_of:
            pick = next((k for k in free if buffers[k][1] == ctype), None) if reuse else None
            if pick is None:
                buffers.append([f"nnf_buf{len(buffers)}", ctype, size])
                pick = len(buffers) - 1
            else:
                free.remove(pick)
                buffers[pick][2] = max(buffers[pick][2], size)
            holder[pick] = out
            buf_of[out] = buffers[pick][0]
        steps.append(Step(kind=kind, name=names[n.name], op=n.op,
                          inputs=tuple(buf_of[root[t]] for t in ins), output=buf_of[out],
                          in_ctypes=tuple(_ctype(q.qtype(t)) for t in ins), out_ctype=ctype,
                          params=params, macs=macs, tensor=out, size=size))
        # release buffers whose value no later step reads (never the one just written
        # if it is still needed; a value nobody reads is dead at once)
        for k, t in list(holder.items()):
            if last_use.get(t, -1) <= i:
                del holder[k]
                free.append(k)
    return Program(**interface(q), steps=tuple(steps), buffers=tuple(Buffer(*b) for b in buffers))
