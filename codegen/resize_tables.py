"""The C and HLS lowering of Resize: the copy form (the ``resize`` step) and the numbers of
a Resize by tap tables (the ``interp`` step).

Every integer comes from :func:`nnforge.ir.ops.resize.int_taps`: per output value, the sum
over the taps of every resized axis of ``prod w * x``, then the contract's rounding by
``n * FRAC`` bits (round half up) and saturation to the output type. Per resized axis:
``starts`` (the first input index read by each output index) and ``weights`` (``T`` per
output index, row-major); an axis not resized is read at the output index.
"""

from __future__ import annotations

import numpy as np

from ..ir import FixedType
from ..ir.fixed import signed_width_for
from ..ir.ops.resize import FRAC, checked_bound, int_taps, resized_axes
from .lower import BackendError, c_int_type
from .naming import sanitize


def _ctype(values) -> str:
    return c_int_type(signed_width_for(min(values), max(values)), True)


def interp_params(taps, mode: str, x_t: FixedType, out_t: FixedType, in_shape, out_shape) -> tuple[dict, int]:
    """(template parameters, multiply-accumulates per sample); ValueError when the
    accumulator does not fit (:func:`~nnforge.ir.ops.resize.checked_bound`)."""
    bound = checked_bound(taps, x_t)
    strides = [int(np.prod(in_shape[k + 1:], dtype=np.int64)) for k in range(len(in_shape))]
    axes, taps_total = [], 1
    for k, (axis, n_out) in enumerate(zip(int_taps(taps), out_shape)):
        a = {"k": k, "n": int(n_out), "stride": strides[k], "resized": axis is not None}
        if axis is not None:
            starts, weights, t = axis
            flat = [w for row in weights for w in row]
            a.update(t=t, starts=list(starts), weights=flat, w_ctype=_ctype(flat), s_ctype=_ctype(starts))
            taps_total *= t
        axes.append(a)
    shift = resized_axes(taps) * FRAC
    p = {"mode": mode, "in_shape": tuple(in_shape), "out_shape": tuple(out_shape), "axes": axes,
         "acc_ctype": "int32_t" if bound + (1 << shift) < 1 << 31 else "int64_t", "shift": shift,
         "lo": out_t.lo, "hi": out_t.hi}
    return p, int(np.prod(out_shape, dtype=np.int64)) * taps_total


def _refuse(node, why: str) -> BackendError:
    return BackendError(f"target 'c': node {sanitize(node.name)!r} (Resize) {why}")


def lower_resize(q, node, name: str):
    """(kind, params, macs, activation inputs) of a Resize: ``interp`` with tap tables, else
    ``resize`` (nearest by integer factors on a (C, L) or (C, H, W) input)."""
    x, y = node.inputs[0], node.outputs[0]
    in_shape, out_shape = q.shape(x), q.shape(y)
    if node.attr("taps"):
        try:
            p, macs = interp_params(node.attr("taps"), node.attr("mode", "nearest"), q.qtype(x), q.qtype(y),
                                    in_shape, out_shape)
        except ValueError as e:
            raise _refuse(node, str(e)) from None
        return "interp", p, macs, [x]
    scales = tuple(int(v) for v in node.attr("scales"))
    if len(in_shape) not in (2, 3) or scales[0] != 1:
        raise _refuse(node, "needs a (C, L) or (C, H, W) input resized on its spatial axes")
    shp, sc = (in_shape, scales) if len(in_shape) == 3 else ((in_shape[0], 1, in_shape[1]), (1, 1, scales[1]))
    return "resize", {"c": shp[0], "h": shp[1], "w": shp[2], "fh": sc[1], "fw": sc[2],
                      "oh": shp[1] * sc[1], "ow": shp[2] * sc[2]}, 0, [x]
