"""Sliding-window helpers shared by Conv and the pooling ops (not an op itself).

Spatial attributes follow ONNX: ``kernel`` and ``strides``/``dilations`` have one entry per
spatial axis, ``pads`` has the begin pads of every axis, then the end pads. Arrays carry
the batch axis and the channel axis first: ``(N, C, *spatial)``.

Output size of one axis (``L`` input, ``k`` kernel, ``s`` stride, ``d`` dilation, ``pb``/``pe``
pads, ``span = L + pb + pe - d*(k-1) - 1``)::

    floor mode:  span // s + 1
    ceil mode:   ceil(span / s) + 1, minus one if that last window would start at or
                 beyond ``L + pb`` (in the end padding), as ONNX and onnxruntime do.
"""

from __future__ import annotations

import itertools

import numpy as np


def spatial_attrs(attrs, nd: int, kernel) -> tuple[tuple, tuple, tuple]:
    """(strides, pads, dilations) with ONNX defaults filled in, checked for length."""
    strides = tuple(attrs.get("strides") or (1,) * nd)
    pads = tuple(attrs.get("pads") or (0,) * (2 * nd))
    dil = tuple(attrs.get("dilations") or (1,) * nd)
    if len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd or len(kernel) != nd:
        raise ValueError(f"window attributes do not fit {nd} spatial axes: kernel {tuple(kernel)}, "
                         f"strides {strides}, pads {pads}, dilations {dil}")
    if min(strides) < 1 or min(dil) < 1 or min(kernel) < 1 or min(pads, default=0) < 0:
        raise ValueError(f"bad window attributes: kernel {tuple(kernel)}, strides {strides}, "
                         f"pads {pads}, dilations {dil}")
    return strides, pads, dil


def out_sizes(in_sp, kernel, strides, pads, dil, ceil_mode: bool = False) -> tuple[int, ...]:
    nd = len(in_sp)
    outs = []
    for i in range(nd):
        span = in_sp[i] + pads[i] + pads[nd + i] - dil[i] * (kernel[i] - 1) - 1
        if span < 0:
            raise ValueError(f"window of extent {dil[i] * (kernel[i] - 1) + 1} does not fit the padded "
                             f"axis of size {in_sp[i] + pads[i] + pads[nd + i]}")
        if ceil_mode:
            o = -(-span // strides[i]) + 1
            if (o - 1) * strides[i] >= in_sp[i] + pads[i]:
                o -= 1
        else:
            o = span // strides[i] + 1
        outs.append(o)
    return tuple(outs)


def patches(x: np.ndarray, kernel, strides, pads, dil, outs, fill=0, end_fill=None) -> np.ndarray:
    """Windows of ``x`` (N, C, *S) as (N, C, prod(kernel), *outs).

    Cells in the explicit pads hold ``fill``; cells beyond the end pads (reachable only in
    ceil mode) hold ``end_fill`` (default: ``fill``). Kernel offsets are in row-major order,
    matching ``W.reshape(M, C, -1)``.
    """
    nd = len(kernel)
    S = x.shape[2:]
    end_fill = fill if end_fill is None else end_fill
    widths, extra = [], []
    for i in range(nd):
        need = (outs[i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1
        widths.append((pads[i], pads[nd + i]))
        extra.append(max(0, need - (S[i] + pads[i] + pads[nd + i])))
    xp = np.pad(x, [(0, 0), (0, 0)] + widths, constant_values=fill)
    if any(extra):
        xp = np.pad(xp, [(0, 0), (0, 0)] + [(0, e) for e in extra], constant_values=end_fill)
    cols = []
    for off in itertools.product(*[range(k) for k in kernel]):
        sl = tuple(slice(off[i] * dil[i], off[i] * dil[i] + strides[i] * (outs[i] - 1) + 1, strides[i])
                   for i in range(nd))
        cols.append(xp[(slice(None), slice(None)) + sl])
    return np.stack(cols, axis=2)


def window_counts(in_sp, kernel, strides, pads, dil, outs, include_pad: bool) -> np.ndarray:
    """How many cells of each window lie in the input (``include_pad`` false) or in the
    input plus its explicit pads (true; the ceil-mode overhang never counts): int64 ``outs``."""
    ones = np.ones((1, 1, *in_sp), dtype=np.int64)
    p = patches(ones, kernel, strides, pads, dil, outs, fill=1 if include_pad else 0, end_fill=0)
    return p.sum(axis=2)[0, 0]


def pool_geometry(attrs, in_sp):
    """Kernel, strides, pads, dilations and output sizes of a windowed pool over ``in_sp``."""
    kernel = tuple(attrs["kernel_shape"])
    strides, pads, dil = spatial_attrs(attrs, len(in_sp), kernel)
    return kernel, strides, pads, dil, out_sizes(in_sp, kernel, strides, pads, dil, bool(attrs.get("ceil_mode")))


def pool_shape(op: str, attrs, in_shapes) -> list[tuple[int, ...]]:
    """Shape rule of a windowed pool on a per-sample ``(C, L)`` or ``(C, H, W)`` input."""
    x = tuple(in_shapes[0])
    if len(x) not in (2, 3):
        raise ValueError(f"{op}: per-sample input {x} is not (C, L) or (C, H, W)")
    return [(x[0], *pool_geometry(attrs, x[1:])[4])]


def global_pool_shape(op: str, in_shapes) -> list[tuple[int, ...]]:
    """Shape rule of a global pool: per-sample ``(C, *S)`` -> ``(C, 1, ...)``."""
    x = tuple(in_shapes[0])
    if len(x) < 2:
        raise ValueError(f"{op}: per-sample input {x} has no spatial axis")
    return [(x[0],) + (1,) * (len(x) - 1)]
