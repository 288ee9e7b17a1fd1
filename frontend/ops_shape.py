"""Translators of ops that move, copy or pad values: Identity, Dropout, Cast, Flatten,
Reshape, Squeeze, Unsqueeze, Transpose, Concat, Resize / Upsample and Pad. The batch axis
must stay first and untouched."""

from __future__ import annotations

import numpy as np

from . import limits
from .errors import ImportError_, q as qn
from .exact import holds_every_value
from .translate import VALUES, translates


@translates("Identity", exact=VALUES)
def identity(imp, onode) -> None:
    imp.alias[onode.output[0]] = imp.activation_input(onode)


@translates("Dropout", exact=VALUES)
def dropout(imp, onode) -> None:
    """Dropout for inference: the identity (in training mode too when the ratio is 0,
    which drops nothing)."""
    if len(onode.input) > 2 and onode.input[2]:
        mode = imp.const(onode.input[2])
        ratio = imp.const(onode.input[1]) if onode.input[1] else None  # 0.5 when absent
        if mode is None or (bool(mode) and (ratio is None or np.any(ratio != 0))):
            raise ImportError_(f"node {qn(onode.name)}: Dropout in training mode cannot be compiled")
    imp.alias[onode.output[0]] = imp.activation_input(onode)
    if len(onode.output) > 1 and onode.output[1] and imp.is_read(onode.output[1]):
        raise ImportError_(f"node {qn(onode.name)}: the Dropout mask output is not supported")


@translates("Cast")
def cast(imp, onode) -> None:
    """A Cast that changes no value: to float32 or float64 (exact for the float32 values
    nnforge computes), or to a type that holds every value of the input's type (int8 ->
    float16, uint4 -> uint8, ...; :mod:`.exact`)."""
    to = imp.attrs(onode).get("to")
    src = imp.elem_types.get(onode.input[0])
    if to not in (1, 11) and not (src and holds_every_value(src, to)):
        raise ImportError_(
            f"node {qn(onode.name)}: only Cast to float32 or float64, or to a type that holds every value of the "
            f"input's type, is supported (other targets change values)"
        )
    imp.alias[onode.output[0]] = imp.activation_input(onode)


@translates("Flatten", exact=VALUES)
def flatten(imp, onode) -> None:
    x = imp.activation_input(onode)
    full = (1,) + imp.g.shape(x)
    axis = imp.attrs(onode).get("axis", 1)
    axis = axis + len(full) if axis < 0 else axis
    if axis == 0:
        raise ImportError_(f"node {qn(onode.name)}: Flatten with axis 0 would mix the batch axis")
    target = (int(np.prod(full[1:axis], dtype=np.int64)), int(np.prod(full[axis:], dtype=np.int64)))
    imp.emit(onode, "Reshape", [x], {"shape": target[1:] if target[0] == 1 else target})


def reshaped(shape: tuple, target: list) -> tuple | None:
    """``target`` with its one -1 resolved, when it holds as many elements as ``shape``
    (numpy's reshape rule, computed without allocating anything)."""
    n = limits.count(shape)
    free = [i for i, d in enumerate(target) if d == -1]
    if len(free) > 1 or any(d < -1 for d in target):
        return None
    rest = limits.count(d for d in target if d != -1)
    if free:
        if rest == 0 or n % rest:
            return None
        target = [n // rest if d == -1 else d for d in target]
    return tuple(target) if limits.count(target) == n else None


@translates("Reshape", exact=VALUES)
def reshape(imp, onode) -> None:
    x = imp.activation_input(onode)
    shape = imp.const(onode.input[1])
    if shape is None:
        raise ImportError_(f"node {qn(onode.name)}: Reshape needs a constant target shape")
    full = (1,) + imp.g.shape(x)
    target = [int(s) for s in shape]
    if not imp.attrs(onode).get("allowzero", 0):
        target = [full[i] if s == 0 else s for i, s in enumerate(target)]
    out = reshaped(full, target)
    if (out is None or out[0] != 1) and target and target[0] > 1 and -1 not in target:
        # the batch size written as a number (an export at batch N): the batch axis stays
        # first when the rest holds one sample, for then N is the batch the model was made
        # for and any other batch size fails in ONNX too (with a -1 it would not fail, but
        # move values across the batch axis: refused)
        per_sample = reshaped(full[1:], target[1:])
        out = (1, *per_sample) if per_sample is not None else out
        if per_sample is not None:
            imp.full_shapes[onode.output[0]] = out
    if out is None:
        raise ImportError_(f"node {qn(onode.name)}: cannot reshape {full} to {target}")
    if not out or out[0] != 1:
        raise ImportError_(f"node {qn(onode.name)}: Reshape to {tuple(target)} does not keep the batch axis first")
    imp.emit(onode, "Reshape", [x], {"shape": tuple(out[1:])})


def per_sample_axis(onode, axis: int, rank: int) -> int:
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} over the batch axis is not supported")
    return axis - 1


@translates("Concat", exact=VALUES)
def concat(imp, onode) -> None:
    xs = [imp.activation_input(onode, i) for i in range(len(onode.input))]
    rank = len(imp.g.shape(xs[0])) + 1
    axis = per_sample_axis(onode, int(imp.attrs(onode)["axis"]), rank)
    imp.emit(onode, "Concat", xs, {"axis": axis})
    imp.check_inferred(onode)


@translates("Transpose", exact=VALUES)
def transpose(imp, onode) -> None:
    x = imp.activation_input(onode)
    rank = len(imp.g.shape(x)) + 1
    perm = imp.attrs(onode).get("perm") or list(reversed(range(rank)))
    if perm[0] != 0:
        raise ImportError_(f"node {qn(onode.name)}: Transpose with perm {list(perm)} moves the batch axis")
    imp.emit(onode, "Transpose", [x], {"perm": tuple(int(p) - 1 for p in perm[1:])})
    imp.check_inferred(onode)


@translates("Squeeze", "Unsqueeze", exact=VALUES)
def squeeze(imp, onode) -> None:
    """Squeeze / Unsqueeze: the per-sample shape from onnx shape inference, or from the
    input's shape and the axes where inference does not know it."""
    x = imp.activation_input(onode)
    want = imp.full_shapes.get(onode.output[0]) or squeezed(imp, onode, (1, *imp.g.shape(x)))
    if want is None or want[0] != 1:
        raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} would change the batch axis")
    imp.emit(onode, "Reshape", [x], {"shape": tuple(want[1:])})


def squeezed(imp, onode, full: tuple) -> tuple | None:
    """The output shape of Squeeze / Unsqueeze ``onode`` on an input of shape ``full``
    (None when its axes are not constant or do not fit)."""
    axes = imp.attrs(onode).get("axes")
    if axes is None and len(onode.input) > 1 and onode.input[1]:
        axes = imp.const(onode.input[1])
        if axes is None:
            return None
    if onode.op_type == "Squeeze":
        rank = len(full)
        axes = [i for i, d in enumerate(full) if d == 1] if axes is None else [int(a) % rank if -rank <= a < rank
                                                                              else -1 for a in axes]
        if any(a < 0 or full[a] != 1 for a in axes):
            return None
        return tuple(d for i, d in enumerate(full) if i not in axes)
    if axes is None:
        return None
    rank = len(full) + len(axes)
    axes = {int(a) % rank for a in axes if -rank <= a < rank}
    if len(axes) != rank - len(full):
        return None
    rest = iter(full)
    return tuple(1 if i in axes else next(rest) for i in range(rank))


# (coordinate_transformation_mode, nearest_mode) pairs that read input floor(x / s) for an
# integer factor s (see :func:`resize`)
FLOOR_RULES = {("asymmetric", "floor")} | {(ctm, nm) for ctm in ("half_pixel", "pytorch_half_pixel")
                                          for nm in ("round_prefer_floor", "round_prefer_ceil")}


def text_attr(a: dict, key: str, default: str) -> str:
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


@translates("Resize", "Upsample", exact=VALUES)
def resize(imp, onode) -> None:
    """Nearest-neighbour Resize with constant integer factors on spatial axes: output
    index ``x`` reads input index ``floor(x / s)``. That is the asymmetric / floor
    coordinate rule (PyTorch's nearest export), and also the half-pixel rules with
    rounding to the nearest (either way at ties): for ``x = k s + r`` (``0 <= r < s``) the
    half-pixel source ``(x + 0.5) / s - 0.5 = k + (r + 0.5) / s - 0.5`` lies strictly
    within ``(k - 0.5, k + 0.5)``. Anything else is refused here."""
    x = imp.activation_input(onode)
    a = imp.attrs(onode)
    what = f"node {qn(onode.name)} ({onode.op_type})"
    mode = text_attr(a, "mode", "nearest")
    if mode != "nearest":
        raise ImportError_(f"{what}: only mode 'nearest' is supported, not {qn(mode)}")
    if onode.op_type == "Resize" and imp.source_opset >= 11:
        ctm = text_attr(a, "coordinate_transformation_mode", "half_pixel")
        nmode = text_attr(a, "nearest_mode", "round_prefer_floor")
        if (ctm, nmode) not in FLOOR_RULES:
            raise ImportError_(
                f"{what}: only coordinate_transformation_mode 'asymmetric' with nearest_mode 'floor' "
                f"(what PyTorch exports for nearest upsampling) or a half-pixel mode with round_prefer_floor / "
                f"round_prefer_ceil is supported, not {qn(ctm)} / {qn(nmode)}")
        if int(a.get("antialias", 0)):
            raise ImportError_(f"{what}: the antialias attribute is not supported")
    full = (1, *imp.g.shape(x))
    scales = resize_scales(imp, onode, what, full)
    if np.any(scales != np.round(scales)) or np.any(scales < 1):
        raise ImportError_(f"{what}: only integer upsampling factors are supported, got {scales.tolist()}")
    if scales[0] != 1 or (len(full) > 2 and scales[1] != 1):
        raise ImportError_(f"{what}: only spatial axes may be resized, got scales {scales.tolist()}")
    imp.emit(onode, "Resize", [x], {"scales": tuple(int(s) for s in scales[1:])})
    imp.check_inferred(onode)


def resize_scales(imp, onode, what: str, full: tuple) -> np.ndarray:
    """A Resize's scale per axis of an input of shape ``full``, from its constant scales or
    (integer multiples) sizes, given for every axis or for its ``axes``."""
    # Resize-11 and newer read X, roi, scales, sizes; Resize-10 / Upsample read X, scales
    scales_in, sizes_in = (2, 3) if onode.op_type == "Resize" and imp.opset >= 11 else (1, None)
    axes = imp.attrs(onode).get("axes") if onode.op_type == "Resize" else None
    if axes is not None:
        axes = [int(i) % len(full) for i in axes]
        if len(set(axes)) != len(axes):
            raise ImportError_(f"{what}: axes {list(axes)} repeat an axis")
    scales = None
    if len(onode.input) > scales_in and onode.input[scales_in]:
        scales = imp.const(onode.input[scales_in])
        if scales is None:
            raise ImportError_(f"{what}: the scales must be constant")
        scales = np.asarray(scales, dtype=np.float64).reshape(-1)
        if scales.size == 0:
            scales = None
        elif axes is not None and scales.size == len(axes):
            scales = on_axes(scales, axes, np.ones(len(full)))
    if scales is None and sizes_in is not None and len(onode.input) > sizes_in and onode.input[sizes_in]:
        sizes = imp.const(onode.input[sizes_in])
        if sizes is None:
            raise ImportError_(f"{what}: the sizes must be constant")
        sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
        if axes is not None and sizes.size == len(axes):
            sizes = on_axes(sizes, axes, np.array(full, dtype=np.int64))
        if sizes.size != len(full) or np.any(sizes % np.array(full)):
            raise ImportError_(f"{what}: sizes {sizes.tolist()} are not integer multiples of {list(full)}")
        scales = (sizes // np.array(full)).astype(np.float64)
    if scales is None or scales.size != len(full):
        raise ImportError_(f"{what}: needs constant scales or sizes, one per axis of the rank-{len(full)} input")
    return scales


def on_axes(values: np.ndarray, axes: list[int], default: np.ndarray) -> np.ndarray:
    """``values`` given for ``axes`` spread over every axis (``default`` elsewhere)."""
    out = default.astype(values.dtype)
    out[axes] = values
    return out


@translates("Pad", exact=VALUES)
def pad(imp, onode) -> None:
    """Constant-mode Pad with non-negative constant pads (folded into a following Conv
    by a pass when its value is 0 and it pads only spatial axes)."""
    x = imp.activation_input(onode)
    a = imp.attrs(onode)
    what = f"node {qn(onode.name)} (Pad)"
    mode = text_attr(a, "mode", "constant")
    if mode != "constant":
        raise ImportError_(f"{what}: only mode 'constant' is supported, not {qn(mode)}")
    rank = len(imp.g.shape(x)) + 1
    if imp.opset < 11:
        pads, value = a.get("pads"), float(a.get("value", 0.0))
    else:
        pads, value = pad_inputs(imp, onode, what, rank)
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    if len(pads) != 2 * rank:
        raise ImportError_(f"{what}: {len(pads)} pads for a rank-{rank} input")
    if min(pads) < 0:
        raise ImportError_(f"{what}: negative pads (cropping) are not supported")
    if pads[0] or pads[rank]:
        raise ImportError_(f"{what}: padding the batch axis is not supported")
    per_sample = tuple(pads[1:rank]) + tuple(pads[rank + 1:])
    imp.emit(onode, "Pad", [x], {"pads": per_sample, "value": value})
    imp.check_inferred(onode)


def pad_inputs(imp, onode, what: str, rank: int) -> tuple:
    """Pad-11 and newer: the constant pads (over every axis, from the optional ``axes``
    input) and the constant value."""
    pads = imp.const(onode.input[1]) if len(onode.input) > 1 and onode.input[1] else None
    if pads is None:
        raise ImportError_(f"{what}: the pads must be constant")
    value = 0.0
    if len(onode.input) > 2 and onode.input[2]:
        v = imp.const(onode.input[2])
        if v is None:
            raise ImportError_(f"{what}: the constant_value must be constant")
        value = float(np.asarray(v).reshape(-1)[0]) if np.asarray(v).size else 0.0
    if len(onode.input) > 3 and onode.input[3]:
        axes = imp.const(onode.input[3])
        if axes is None:
            raise ImportError_(f"{what}: the axes must be constant")
        full = [0] * (2 * rank)
        axes = [int(i) % rank for i in np.asarray(axes).reshape(-1)]
        pv = np.asarray(pads).reshape(-1)
        for k, ax in enumerate(axes):
            full[ax], full[rank + ax] = int(pv[k]), int(pv[len(axes) + k])
        pads = full
    return pads, value
