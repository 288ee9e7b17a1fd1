"""What the quantization dialects share: integer widths, scale / zero-point parameters
and their broadcasting, and constants dequantized from integers (whose scale the
weights keep: ``imp.dequantized``)."""

from __future__ import annotations

import numpy as np

from .errors import ImportError_, node_label, q as qn

# QuantizeLinear's output_dtype (a TensorProto type) -> numpy dtype; uint8 by default
OUTPUT_DTYPES = {3: np.int8, 5: np.int16, 4: np.uint16}


def int_bits(dtype) -> int:
    """Width of an integer dtype (0 for anything else)."""
    dtype = np.dtype(dtype)
    return dtype.itemsize * 8 if np.issubdtype(dtype, np.integer) else 0


def default_zero_dtype(a: dict):
    """The integer type of a QuantizeLinear without a zero point (its ``output_dtype``)."""
    return OUTPUT_DTYPES.get(a.get("output_dtype", 2), np.uint8)


def broadcast_qparams(onode, shape: tuple, scale, zero, axis: int | None):
    """Scale and zero point of a (de)quantization of a tensor of ``shape``, as arrays of
    its rank that broadcast onto it, and the one axis they vary along (0 when per tensor,
    None when they vary along several axes).

    A size-1 parameter is per tensor. A 1-D one lies along ``axis`` (ONNX
    QuantizeLinear / DequantizeLinear; ``axis=None``: the last axis, numpy's rule, as for
    QONNX Quant). One of higher rank broadcasts numpy-style (aligned on the last axes:
    ``(C, 1, 1)`` on an ``(M, C, kh, kw)`` weight is along axis 1)."""
    rank = len(shape)
    out, varying = [], set()
    for what, p in (("scale", scale), ("zero point", zero)):
        p = np.asarray(p)
        if p.size == 1:
            full = p.reshape((1,) * rank)
        elif p.ndim == 1 and axis is not None:
            ax = axis + rank if axis < 0 else axis
            if not 0 <= ax < rank or shape[ax] != p.size:
                raise ImportError_(f"{node_label(onode) if onode is not None else 'a constant'}: a {what} of "
                                   f"{p.size} values does not fit axis {axis} of a tensor of shape {tuple(shape)}")
            full = p.reshape([p.size if i == ax else 1 for i in range(rank)])
        else:
            lead = p.shape[:max(p.ndim - rank, 0)]
            core = p.reshape(p.shape[len(lead):]) if all(d == 1 for d in lead) else None
            if core is None or any(d not in (1, s) for d, s in zip(reversed(core.shape), reversed(shape))):
                raise ImportError_(f"{node_label(onode) if onode is not None else 'a constant'}: a {what} of shape "
                                   f"{p.shape} does not broadcast onto a tensor of shape {tuple(shape)}")
            full = core.reshape((1,) * (rank - core.ndim) + core.shape)
        varying.update(i for i, d in enumerate(full.shape) if d != 1)
        out.append(full)
    axis_out = None if len(varying) > 1 else next(iter(varying), 0)
    return out[0], out[1].astype(np.int64), axis_out


def dequantized_const(imp, name: str, q: np.ndarray, scale, zero, axis: int | None, bits: int,
                      onode=None) -> str:
    """The constant ``(q - zero) * scale`` (float32; scale and zero per tensor, along
    ``axis`` or broadcast: :func:`broadcast_qparams`) under ``name``, remembering the
    integers' scale, zero point, axis and width (what ``imp.weight_const`` keeps) when
    the scale is per tensor or per channel."""
    s, z, axis = broadcast_qparams(onode, q.shape, scale, zero, axis)
    imp.values[name] = ((q.astype(np.int64) - z).astype(np.float32) * s.astype(np.float32)).astype(np.float32)
    per_channel = axis is not None and all(d == 1 for i, d in enumerate(z.shape) if i != axis)
    imp.dequantized[name] = {"scale": s.astype(np.float64).reshape(-1), "zero": z.reshape(-1),
                             "axis": axis if axis is not None else 0, "bits": bits if per_channel else 0}
    return name


def tensor_qparams(imp, onode, scale_t: str, zero_t: str, a: dict) -> tuple[float, int, int, int]:
    """Scale, zero point and integer range given by constants ``scale_t``, ``zero_t`` (an
    absent zero point: 0 of ``a['output_dtype']``, uint8 by default) for ``onode``."""
    scale = imp.const(scale_t)
    zero = imp.const(zero_t) if zero_t else None
    if scale is None or (zero_t and zero is None):
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs a constant scale and zero point")
    if scale.size != 1 or (zero is not None and zero.size != 1):
        raise ImportError_(f"node {qn(onode.name)}: per-axis quantization of activations is not supported "
                           f"(only of constant weights)")
    dtype = zero.dtype if zero is not None else default_zero_dtype(a)
    bits = int_bits(np.dtype(dtype))
    if not bits:
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} to {np.dtype(dtype)} is not supported")
    signed = np.issubdtype(np.dtype(dtype), np.signedinteger)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if a.get("saturate", 1) == 0:
        raise ImportError_(f"node {qn(onode.name)}: QuantizeLinear without saturation is not supported")
    return float(scale.reshape(-1)[0]), int(0 if zero is None else zero.reshape(-1)[0]), lo, hi


def float_twin(imp, onode, op_type: str, inputs: list[str], attrs=None):
    """A NodeProto ``op_type`` on ``inputs`` writing a fresh tensor (the float op inside
    an integer op), with ``onode``'s attributes or ``attrs``; and that tensor."""
    from onnx import helper

    tmp = imp.g.fresh_name(f"{onode.name or onode.op_type}_float")
    twin = helper.make_node(op_type, inputs, [tmp], name=imp.g.fresh_name(onode.name or op_type))
    for a in onode.attribute if attrs is None else attrs:
        twin.attribute.append(a)
    return twin, tmp
