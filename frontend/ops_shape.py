"""Translators of ops that move, copy or pad values: Identity, Dropout, Cast, Flatten,
Reshape, Squeeze, Unsqueeze, Transpose, Concat, Resize / Upsample and Pad. The batch axis
must stay first and untouched."""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..ir.ops.resize import ACC_BITS, accumulator_bound
from . import limits
from .errors import ImportError_, q as qn
from .exact import holds_every_value
from .resize_taps import COORDINATE_MODES, MAX_ROWS, NEAREST_MODES, axis_rows
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
    """Resize / Upsample with constant scales or sizes, on per-sample axes.

    Nearest with integer factors on spatial axes, where output index ``x`` reads input
    index ``floor(x / s)``, keeps the copy form (attribute ``scales``). That is the
    asymmetric / floor coordinate rule (PyTorch's nearest export), and also the
    half-pixel rules with rounding to the nearest (either way at ties): for ``x = k s + r``
    (``0 <= r < s``) the half-pixel source ``(x + 0.5) / s - 0.5 = k + (r + 0.5) / s - 0.5``
    lies strictly within ``(k - 0.5, k + 0.5)``. Every other resize (linear, cubic, other
    nearest rules, non-integer scales) becomes the tap form (:mod:`.resize_taps`)."""
    x = imp.activation_input(onode)
    what = f"node {qn(onode.name)} ({onode.op_type})"
    rule = resize_rule(imp, onode, what)
    full = (1, *imp.g.shape(x))
    scales, sizes = resize_geometry(imp, onode, what, full)
    if scales[0] != 1 or sizes[0] != 1:
        raise ImportError_(f"{what}: resizing the batch axis is not supported")
    if min(sizes) < 1:
        raise ImportError_(f"{what}: an output extent of {min(sizes)}")
    if limits.count(sizes) > imp.max_elements:
        raise ImportError_(f"{what}: its output tensor {qn(onode.output[0])} of {limits.count(sizes)} elements "
                           f"exceeds the limit of {imp.max_elements} ({limits.OPTION})")
    if rule["mode"] != "nearest" and onode.input[0] in imp.exact_types:
        raise ImportError_(f"{what}: {rule['mode']} interpolation of integer values is not supported")
    if rule.get("legacy") and rule["mode"] == "nearest" and np.any(scales < 1):
        raise ImportError_(f"{what}: nearest downsampling by {onode.op_type} before opset 11 is not supported")
    rule.pop("legacy", None)
    if rule["ctm"] == "align_corners" and not np.allclose(scales * np.array(full), sizes, rtol=1e-6, atol=0):
        raise ImportError_(f"{what}: align_corners with scales {scales.tolist()} that give no whole output length "
                           f"is not supported (the ONNX definition and onnxruntime differ there); give sizes instead")
    if copy_form(rule, scales, sizes, full):
        imp.emit(onode, "Resize", [x], {"scales": tuple(int(s) for s in scales[1:])})
    else:
        taps = resize_taps(imp, onode, what, rule, full, scales, sizes)
        if taps is None:
            imp.alias[onode.output[0]] = x
            return
        imp.emit(onode, "Resize", [x], {"mode": rule["mode"], "taps": taps})
    imp.check_inferred(onode)


def resize_taps(imp, onode, what: str, rule: dict, full: tuple, scales: np.ndarray, sizes: np.ndarray):
    """The tap tables of a Resize (None when no axis changes), refused beyond
    :data:`MAX_ROWS` output indices per resized axis, a zero-size no-op ONNX runtimes
    skip, or an accumulator the integer form cannot hold at any activation width."""
    if np.array_equal(sizes, full) and np.any(scales != 1):
        raise ImportError_(f"{what}: scales {scales.tolist()} keep every extent but are not 1: onnxruntime returns "
                           f"the input unchanged there while the ONNX definition interpolates; give sizes instead")
    if max((int(m) for n, m, s in zip(full, sizes, scales) if m != n or s != 1), default=0) > MAX_ROWS:
        raise ImportError_(f"{what}: an axis of more than {MAX_ROWS} output indices is not supported")
    try:
        taps = tuple(axis_rows(int(n), int(m), float(s), **rule) for n, m, s in zip(full[1:], sizes[1:], scales[1:]))
    except ValueError as e:
        raise ImportError_(f"{what}: {e}") from None
    if all(t is None for t in taps):
        return None
    widest = exact_bits(imp.exact_types.get(onode.input[0]))
    if accumulator_bound(taps, 1 << (widest - 1)) >= 1 << ACC_BITS:
        raise ImportError_(f"{what}: its integer accumulator for {widest}-bit inputs exceeds {ACC_BITS} bits "
                           f"(too many resized axes or too large weights)")
    return taps


def exact_bits(elem_type) -> int:
    """The width of an integer input's ONNX type (activations: at most 16 bits)."""
    if elem_type is None:
        return 16
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    return 8 * dtype.itemsize if dtype.kind in "iu" else 16


def resize_rule(imp, onode, what: str) -> dict:
    """The interpolation of a Resize / Upsample: keyword arguments of :func:`axis_rows`."""
    a = imp.attrs(onode)
    mode = text_attr(a, "mode", "nearest")
    mode = "linear" if mode in ("bilinear", "trilinear") and onode.op_type == "Upsample" else mode
    if mode not in ("nearest", "linear", "cubic"):
        raise ImportError_(f"{what}: mode {qn(mode)} is not one of 'nearest', 'linear', 'cubic'")
    if onode.op_type != "Resize" or imp.source_opset < 11:
        # Upsample and Resize-10: asymmetric coordinates, nearest rounds down when enlarging
        return {"mode": mode, "ctm": "asymmetric", "nearest_mode": "floor", "legacy": True}
    ctm = text_attr(a, "coordinate_transformation_mode", "half_pixel")
    nmode = text_attr(a, "nearest_mode", "round_prefer_floor")
    if ctm == "tf_crop_and_resize":
        raise ImportError_(f"{what}: coordinate_transformation_mode 'tf_crop_and_resize' is not supported")
    if ctm not in COORDINATE_MODES or (ctm == "tf_half_pixel_for_nn" and mode != "nearest"):
        raise ImportError_(f"{what}: coordinate_transformation_mode {qn(ctm)} is not supported with mode {qn(mode)}")
    if nmode not in NEAREST_MODES:
        raise ImportError_(f"{what}: nearest_mode {qn(nmode)} is not one of {', '.join(NEAREST_MODES)}")
    if int(a.get("antialias", 0)):
        raise ImportError_(f"{what}: the antialias attribute is not supported")
    cubic_a = float(a.get("cubic_coeff_a", -0.75))
    if not (np.isfinite(cubic_a) and abs(cubic_a) <= 4):
        raise ImportError_(f"{what}: cubic_coeff_a {cubic_a} is not a finite value in [-4, 4]")
    return {"mode": mode, "ctm": ctm, "nearest_mode": nmode, "cubic_a": cubic_a,
            "exclude_outside": bool(int(a.get("exclude_outside", 0)))}


def copy_form(rule: dict, scales: np.ndarray, sizes: np.ndarray, full: tuple) -> bool:
    """True when the resize is nearest by integer factors on spatial axes reading
    ``floor(x / s)`` (the copy form, see :func:`resize`)."""
    return (rule["mode"] == "nearest" and (rule["ctm"], rule["nearest_mode"]) in FLOOR_RULES
            and bool(np.all(scales == np.round(scales))) and bool(np.all(scales >= 1))
            and np.array_equal(sizes, np.array(full) * scales) and not (len(full) > 2 and scales[1] != 1))


def resize_geometry(imp, onode, what: str, full: tuple) -> tuple[np.ndarray, np.ndarray]:
    """A Resize's scale and output extent per axis of an input of shape ``full``, from its
    constant scales (extent ``floor(n * scale)``) or sizes (scale ``size / n``, or one
    scale by ``keep_aspect_ratio_policy``), given for every axis or for its ``axes``."""
    # Resize-11 and newer read X, roi, scales, sizes; Resize-10 / Upsample read X, scales
    scales_in, sizes_in = (2, 3) if onode.op_type == "Resize" and imp.opset >= 11 else (1, None)
    a = imp.attrs(onode)
    axes = a.get("axes") if onode.op_type == "Resize" else None
    if axes is not None:
        axes = [int(i) % len(full) for i in axes]
        if len(set(axes)) != len(axes):
            raise ImportError_(f"{what}: axes {list(axes)} repeat an axis")
    n = np.array(full, dtype=np.int64)
    scales = resize_input(imp, onode, scales_in, what, "scales", np.float64)
    if scales is not None:
        scales = on_axes(scales, axes, np.ones(len(full))) if axes is not None and scales.size == len(axes) else scales
        if scales.size == len(full):
            return scales, (n * scales).astype(np.int64)
    sizes = resize_input(imp, onode, sizes_in, what, "sizes", np.int64) if scales is None else None
    if sizes is None or sizes.size != (len(axes) if axes is not None else len(full)):
        raise ImportError_(f"{what}: needs constant scales or sizes, one per axis of the rank-{len(full)} input")
    chosen = axes if axes is not None else list(range(len(full)))
    sizes = on_axes(sizes, chosen, n)
    scales = sizes / n
    policy = text_attr(a, "keep_aspect_ratio_policy", "stretch")
    if policy in ("not_larger", "not_smaller"):
        s = (min if policy == "not_larger" else max)(scales[chosen])
        scales = np.where(np.isin(np.arange(len(full)), chosen), s, 1.0)
        sizes = np.where(scales != 1.0, (s * n + 0.5).astype(np.int64), n)
    elif policy != "stretch":
        raise ImportError_(f"{what}: keep_aspect_ratio_policy {qn(policy)} is not supported")
    return scales, sizes


def resize_input(imp, onode, index, what: str, name: str, dtype) -> np.ndarray | None:
    """The constant ``scales`` / ``sizes`` input (None when absent or empty)."""
    if index is None or len(onode.input) <= index or not onode.input[index]:
        return None
    v = imp.const(onode.input[index])
    if v is None:
        raise ImportError_(f"{what}: the {name} must be constant")
    v = np.asarray(v).reshape(-1).astype(dtype)
    return v if v.size else None


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
