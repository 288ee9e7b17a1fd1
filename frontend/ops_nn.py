"""Translators of the layers with weights or windows: Gemm, MatMul, Conv,
BatchNormalization, the pools and LRN."""

from __future__ import annotations

import numpy as np

from .errors import ImportError_, q as qn
from .translate import VALUES, translates


@translates("Gemm")
def gemm(imp, onode) -> None:
    a = imp.attrs(onode)
    if a.get("transA", 0):
        raise ImportError_(f"node {qn(onode.name)}: Gemm with transA is not supported")
    x = imp.activation_input(onode)
    if len(imp.g.shape(x)) != 1:
        raise ImportError_(f"node {qn(onode.name)}: Gemm input must be 2-D (batch, features)")
    w = imp.const(onode.input[1])
    if w is None:
        raise ImportError_(f"node {qn(onode.name)}: Gemm needs constant weights (input B)")
    ins = [x, imp.weight_const(f"{onode.name}_B", onode.input[1], w, 0 if a.get("transB", 0) else 1)]
    if len(onode.input) > 2 and onode.input[2]:
        c = imp.const(onode.input[2])
        if c is None:
            raise ImportError_(f"node {qn(onode.name)}: Gemm needs a constant bias (input C)")
        n = w.shape[0] if a.get("transB", 0) else w.shape[1]
        if c.size not in (1, n):
            raise ImportError_(f"node {qn(onode.name)}: Gemm bias of shape {c.shape} is not per output")
        ins.append(imp.add_const(f"{onode.name}_C", np.broadcast_to(c.reshape(-1), (n,))))
    attrs = {"alpha": float(a.get("alpha", 1.0)), "beta": float(a.get("beta", 1.0)), "transB": int(a.get("transB", 0))}
    imp.emit(onode, "Gemm", ins, attrs)


@translates("MatMul")
def matmul(imp, onode) -> None:
    x = imp.activation_input(onode)
    w = imp.const(onode.input[1])
    if w is None or w.ndim != 2:
        raise ImportError_(f"node {qn(onode.name)}: MatMul needs a constant 2-D right operand")
    imp.emit(onode, "MatMul", [x, imp.weight_const(f"{onode.name}_B", onode.input[1], w, 1)])


def spatial_input(imp, onode, what: str) -> tuple[str, int]:
    """The activation input of a windowed op and its number of spatial axes (1 or 2)."""
    x = imp.activation_input(onode)
    nd = len(imp.g.shape(x)) - 1
    if nd not in (1, 2):
        raise ImportError_(
            f"node {qn(onode.name)}: {what} on a {nd}-D input (per-sample shape {imp.g.shape(x)}) "
            f"is not supported; nnforge handles 1-D (N, C, L) and 2-D (N, C, H, W) inputs"
        )
    return x, nd


def window_attrs(onode, a: dict, in_sp, kernel) -> dict:
    """strides, pads, dilations with ``auto_pad`` resolved to explicit pads."""
    nd = len(in_sp)
    strides = tuple(int(s) for s in a.get("strides", (1,) * nd))
    dil = tuple(int(d) for d in a.get("dilations", (1,) * nd))
    pads = tuple(int(p) for p in a.get("pads", (0,) * (2 * nd)))
    if len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd or len(kernel) != nd:
        raise ImportError_(f"node {qn(onode.name)}: window attributes do not fit {nd} spatial axes")
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad == "VALID":
        pads = (0,) * (2 * nd)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(nd):
            out = -(-in_sp[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - in_sp[i])
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        pads = tuple(begin + end)
    elif auto_pad != "NOTSET":
        raise ImportError_(f"node {qn(onode.name)}: unknown auto_pad {auto_pad!r}")
    return {"strides": strides, "pads": pads, "dilations": dil}


def emit_checked(imp, onode, op: str, inputs: list[str], attrs: dict | None = None) -> None:
    """``imp.emit`` with the IR op's own attribute / shape check as an import error."""
    try:
        imp.emit(onode, op, inputs, attrs)
    except ValueError as e:
        raise ImportError_(f"node {qn(onode.name)}: {e}") from e


@translates("Conv")
def conv(imp, onode) -> None:
    x, nd = spatial_input(imp, onode, "Conv")
    w = imp.const(onode.input[1])
    if w is None:
        raise ImportError_(f"node {qn(onode.name)}: Conv needs constant weights (input W)")
    a = imp.attrs(onode)
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(w.shape[2:]):
        raise ImportError_(f"node {qn(onode.name)}: kernel_shape {a['kernel_shape']} != weights {w.shape}")
    if w.ndim != nd + 2:
        raise ImportError_(f"node {qn(onode.name)}: Conv weights {w.shape} do not fit a {nd}-D input")
    m = w.shape[0]
    b = np.zeros(m, dtype=np.float32)
    if len(onode.input) > 2 and onode.input[2]:
        b = imp.const(onode.input[2])
        if b is None:
            raise ImportError_(f"node {qn(onode.name)}: Conv needs a constant bias (input B)")
    attrs = window_attrs(onode, a, imp.g.shape(x)[1:], w.shape[2:])
    attrs["groups"] = int(a.get("group", 1))
    ins = [x, imp.weight_const(f"{onode.name}_W", onode.input[1], w, 0),
           imp.add_const(f"{onode.name}_B", np.reshape(b, (m,)))]
    emit_checked(imp, onode, "Conv", ins, attrs)
    imp.check_inferred(onode)


@translates("BatchNormalization")
def batch_normalization(imp, onode) -> None:
    x = imp.activation_input(onode)
    a = imp.attrs(onode)
    if a.get("training_mode", 0) or any(o for o in onode.output[1:]):
        raise ImportError_(f"node {qn(onode.name)}: BatchNormalization in training mode cannot be compiled")
    params = [imp.const(t) for t in onode.input[1:5]]
    if len(params) != 4 or any(p is None for p in params):
        raise ImportError_(f"node {qn(onode.name)}: BatchNormalization needs constant scale, bias, mean and var")
    scale, bias, mean, var = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
    mul = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    add = bias - mean * mul
    ins = [x, imp.add_const(f"{onode.name}_mul", mul), imp.add_const(f"{onode.name}_add", add)]
    emit_checked(imp, onode, "BatchNormalization", ins)
    imp.check_inferred(onode)


def pool(imp, onode, op: str) -> None:
    x, nd = spatial_input(imp, onode, op)
    a = imp.attrs(onode)
    kernel = tuple(int(k) for k in a.get("kernel_shape", ()))
    attrs = window_attrs(onode, a, imp.g.shape(x)[1:], kernel)
    attrs.update(kernel_shape=kernel, ceil_mode=bool(a.get("ceil_mode", 0)))
    if op == "AveragePool":
        attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
    emit_checked(imp, onode, op, [x], attrs)
    also_ok = None
    if attrs["ceil_mode"]:
        # onnx shape inference keeps a last ceil-mode window that starts in the end
        # padding; onnxruntime (and the ONNX operator spec) drop it, as the IR does
        in_sp = imp.g.shape(x)[1:]
        pads = attrs["pads"]
        keep = [(in_sp[i] + pads[i] + pads[nd + i] - attrs["dilations"][i] * (kernel[i] - 1) - 1
                 + attrs["strides"][i] - 1) // attrs["strides"][i] + 1 for i in range(nd)]
        full = imp.g.shape(imp.resolve(onode.output[0]))[1:]  # what the IR op computes
        also_ok = (imp.g.shape(x)[0], *keep) if tuple(keep) != tuple(full) else None
    imp.check_inferred(onode, also_ok)


@translates("MaxPool", exact=VALUES)
def max_pool(imp, onode) -> None:
    if len(onode.output) > 1 and onode.output[1]:
        raise ImportError_(f"node {qn(onode.name)}: the MaxPool Indices output is not supported")
    if imp.attrs(onode).get("storage_order", 0):
        raise ImportError_(f"node {qn(onode.name)}: MaxPool with storage_order=1 (column-major indices) is not supported")
    pool(imp, onode, "MaxPool")


@translates("AveragePool")
def average_pool(imp, onode) -> None:
    pool(imp, onode, "AveragePool")


@translates("GlobalMaxPool", exact=VALUES)
@translates("GlobalAveragePool")
def global_pool(imp, onode) -> None:
    op = onode.op_type
    x = imp.activation_input(onode)
    if len(imp.g.shape(x)) < 2:
        raise ImportError_(f"node {qn(onode.name)}: {op} needs an input with a channel and a spatial axis")
    imp.emit(onode, op, [x])
    imp.check_inferred(onode)


@translates("LRN")
def lrn(imp, onode) -> None:
    x = imp.activation_input(onode)
    a = imp.attrs(onode)
    attrs = {"size": int(a["size"]), "alpha": float(a.get("alpha", 1e-4)),
             "beta": float(a.get("beta", 0.75)), "bias": float(a.get("bias", 1.0))}
    imp.emit(onode, "LRN", [x], attrs)
