"""An exact evaluation of integer ONNX graphs (QDQ, QOperator, dynamic quantization) in
numpy, written from the ONNX operator definitions and independent of nnforge's golden
model: the reference the quantized-model tests compare with.

It gives the same integers on every CPU:

- Integer products are summed in int64 (the result of an ONNX integer op is its exact
  sum; no 16-bit intermediate can saturate).
- QuantizeLinear divides in float32 and rounds half to even, then adds the zero point
  and saturates to the output type (``y = saturate(round(x / y_scale) + y_zero_point)``).
- A linear op on dequantized inputs (DequantizeLinear -> Conv / Gemm / MatMul ->
  QuantizeLinear, or QLinearConv / QGemm / QLinearMatMul) is requantized as QLinearConv
  specifies it: ``acc * (x_scale * w_scale / y_scale)``, the multiplier and the product
  in float32, rounded half to even. The bias is the int32 integer on the scale
  ``x_scale * w_scale`` (it is refused otherwise).
- Where the float definition leaves the summation order open (the mean of ReduceMean, the
  two scaled terms of Add / QLinearAdd), the real value is computed exactly (rational
  arithmetic on int64) and rounded once, half to even, by the QuantizeLinear.
- Other float ops (Mul, Add, Relu, Cast, Softmax of the dynamic-quantization graphs) are
  numpy float32 elementwise operations, rounded correctly by IEEE 754 (Softmax's exp is
  the only value that may differ in its last bit between numpy builds).

Elementwise float32 operations are correctly rounded on every CPU, and integer sums are
exact, so each integer here is a function of the model and the input alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

INT_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
              np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767),
              np.dtype(np.int32): (-2 ** 31, 2 ** 31 - 1)}
_F32_EXACT = 2 ** 24  # every integer below this is a float32


@dataclass(frozen=True)
class Deq:
    """The output of DequantizeLinear, kept exact: the real value ``v * s`` (``v = q - zero
    point`` in int64, ``s`` float32 broadcastable to ``v``)."""
    v: np.ndarray
    s: np.ndarray

    def as_float32(self) -> np.ndarray:
        """DequantizeLinear's float32 output: ``(q - z) * s`` in float32."""
        return self.v.astype(np.float32) * self.s


@dataclass(frozen=True)
class Acc:
    """An integer accumulator of a linear op: the real value ``acc * s``, ``s`` the float32
    product ``x_scale * w_scale`` per output channel, broadcastable to ``acc``."""
    acc: np.ndarray
    s: np.ndarray


@dataclass(frozen=True)
class Exact:
    """The real value ``n * 2**e / d`` exactly (``n`` int64, ``e`` int, ``d`` int > 0)."""
    n: np.ndarray
    e: int
    d: int


def _mantissas(s: np.ndarray) -> tuple[np.ndarray, int]:
    """float32 ``s`` as int64 ``m`` and one exponent ``e``: ``s == m * 2**e`` exactly."""
    f, ex = np.frexp(np.asarray(s, np.float64))
    m, ex = np.round(f * 2.0 ** 24).astype(np.int64), ex.astype(np.int64) - 24
    e = int(ex.min()) if ex.size else 0
    shift = ex - e
    _check_bits(m, int(shift.max()) if shift.size else 0)
    return m << shift, e


def _check_bits(n: np.ndarray, shift: int = 0, limit: int = 62) -> None:
    """Refuse (rather than wrap) a value that would not fit int64 after ``<< shift``."""
    top = int(np.abs(n).max()) if n.size else 0
    if top.bit_length() + shift > limit:
        raise OverflowError(f"exact value needs {top.bit_length() + shift} bits")


def _shl(n: np.ndarray, k: int) -> np.ndarray:
    _check_bits(n, k)
    return n << k


def exact(x: Deq | Exact) -> Exact:
    if isinstance(x, Exact):
        return x
    m, e = _mantissas(x.s)
    _check_bits(x.v, int(m.max()).bit_length() if m.size else 0)
    return Exact(x.v * m, e, 1)


def add_exact(a: Exact, b: Exact) -> Exact:
    e = min(a.e, b.e)
    na, nb = _shl(a.n, a.e - e), _shl(b.n, b.e - e)
    _check_bits(na, b.d.bit_length() + 1)
    _check_bits(nb, a.d.bit_length() + 1)
    return Exact(na * b.d + nb * a.d, e, a.d * b.d)


def round_half_even(num: np.ndarray, den: int | np.ndarray) -> np.ndarray:
    """``num / den`` rounded to the nearest integer, ties to even (``den > 0``), exactly."""
    q, r = np.divmod(num, den)
    twice = 2 * r
    return q + ((twice > den) | ((twice == den) & (q % 2 == 1)))


def saturate(q: np.ndarray, dtype) -> np.ndarray:
    lo, hi = INT_RANGES[np.dtype(dtype)]
    return np.clip(q, lo, hi).astype(np.int64)


def quantize(x, s: np.ndarray, z: np.ndarray) -> np.ndarray:
    """QuantizeLinear of any value kind to the integers of ``z``'s type (as int64)."""
    s32 = np.asarray(s, np.float32)
    if isinstance(x, Deq):
        x = x.as_float32()
    if isinstance(x, np.ndarray):
        if x.dtype != np.float32:
            raise TypeError(f"QuantizeLinear of {x.dtype}")
        q = np.rint(x / s32).astype(np.int64)
    elif isinstance(x, Acc):
        if np.abs(x.acc).max(initial=0) >= _F32_EXACT:
            raise OverflowError("accumulator is not exact in float32")
        mult = (x.s / s32).astype(np.float32)  # float32(x_scale * w_scale) / y_scale in float32
        q = np.rint(x.acc.astype(np.float32) * mult).astype(np.int64)
    else:
        m, e = _mantissas(s32)
        k = x.e - e
        num = _shl(x.n, max(k, 0))
        _check_bits(m, x.d.bit_length() + max(-k, 0))
        den = x.d * m
        q = round_half_even(num, den << max(-k, 0))
    return saturate(q + z.astype(np.int64), z.dtype)


# ---- integer kernels -----------------------------------------------------------------

def _windows(x: np.ndarray, kernel, strides, dilations, pads, fill) -> np.ndarray:
    """(N, C, OH, OW, KH, KW) views of ``x`` (N, C, H, W) padded with ``fill``."""
    p = [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])]
    xp = np.pad(x, p, constant_values=fill)
    kh, kw = kernel
    oh = (xp.shape[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (xp.shape[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.empty((*x.shape[:2], oh, ow, kh, kw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dilations[0], j * dilations[1]
            out[..., i, j] = xp[:, :, r0:r0 + strides[0] * (oh - 1) + 1:strides[0],
                                c0:c0 + strides[1] * (ow - 1) + 1:strides[1]]
    return out


def _geometry(attrs: dict) -> tuple:
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("auto_pad")
    if attrs.get("ceil_mode", 0):
        raise NotImplementedError("ceil_mode")
    return (tuple(attrs.get("strides", (1, 1))), tuple(attrs.get("dilations", (1, 1))),
            tuple(attrs.get("pads", (0, 0, 0, 0))))


def conv_int(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """Integer Conv (NCHW, OIHW, groups) summed in int64; padding is the value 0."""
    strides, dilations, pads = _geometry(attrs)
    g = attrs.get("group", 1)
    win = _windows(x, w.shape[2:], strides, dilations, pads, 0)  # N C OH OW KH KW
    n, c, oh, ow = win.shape[:4]
    win = win.reshape(n, g, c // g, oh, ow, *w.shape[2:])
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])  # G M/G C/G KH KW
    out = np.einsum("ngchwij,gmcij->ngmhw", win, wg, dtype=np.int64)
    return out.reshape(n, w.shape[0], oh, ow)


def maxpool(x: np.ndarray, attrs: dict) -> np.ndarray:
    kernel = tuple(attrs["kernel_shape"])
    strides, dilations, pads = _geometry(attrs)
    return _windows(x, kernel, strides, dilations, pads, np.iinfo(np.int64).min).max(axis=(4, 5))


def matmul_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a.astype(np.int64), b.astype(np.int64))


def _channel_scale(s: np.ndarray, ndim: int) -> np.ndarray:
    """A per-tensor or per-output-channel (axis 1 of the result) float32 scale."""
    s = np.asarray(s, np.float32)
    return s.reshape((1, -1) + (1,) * (ndim - 2)) if s.size > 1 else s.reshape(())


# ---- the interpreter -----------------------------------------------------------------

def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _centred(q: np.ndarray, z: np.ndarray | None, axis: int = 0) -> np.ndarray:
    v = q.astype(np.int64)
    if z is None:
        return v
    z = z.astype(np.int64)
    if z.ndim == 1 and z.size > 1:
        z = z.reshape((-1,) + (1,) * (v.ndim - 1 - axis))
    return v - z


def _dequantize(q, s, z, axis=1) -> Deq:
    s = np.asarray(s, np.float32)
    axis %= max(q.ndim, 1)
    if s.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), (None if z is None else z.reshape(shape))
    return Deq(q.astype(np.int64) - (0 if z is None else z.astype(np.int64)), s)


def _linear(acc: np.ndarray, sx: np.ndarray, sw: np.ndarray, bias) -> Acc:
    """Accumulator ``acc`` on scale float32(sx * sw) plus an int32 bias on that scale."""
    sx = np.asarray(sx, np.float32).reshape(())
    s = _channel_scale(sx * np.asarray(sw, np.float32), acc.ndim)
    if bias is not None:
        if isinstance(bias, Deq):
            if not np.array_equal(np.broadcast_to(bias.s, bias.v.shape),
                                  np.broadcast_to(s.reshape(-1), bias.v.shape)):
                raise NotImplementedError("bias scale is not x_scale * w_scale")
            bias = bias.v
        acc = acc + bias.astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
    return Acc(acc, s)


def _gemm_ints(a: np.ndarray, b: np.ndarray, attrs: dict) -> np.ndarray:
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise NotImplementedError("Gemm alpha / beta other than 1")
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    return matmul_int(a, b)


def _weights_along_output(d: Deq) -> np.ndarray:
    """A Gemm's B scale as a vector over the output columns (or a scalar)."""
    s = np.asarray(d.s, np.float32)
    return s.reshape(-1) if s.size > 1 else s.reshape(())


class _Run:
    def __init__(self, model: onnx.ModelProto):
        self.env: dict = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.nodes = list(model.graph.node)

    def value(self, name: str):
        return self.env[name] if name else None

    def run(self, inputs: dict, output: str):
        self.env.update(inputs)
        for node in self.nodes:
            if output in self.env:
                break
            args = [self.value(n) for n in node.input]
            outs = OPS[node.op_type](*args, **_attrs(node))
            self.env.update(zip(node.output, outs if isinstance(outs, tuple) else (outs,)))
        return self.env[output]


def _quantize_linear(x, s, z=None, axis=1, **_):
    z = np.zeros((), np.uint8) if z is None else z
    if np.size(s) > 1:
        raise NotImplementedError("per-axis QuantizeLinear")
    return quantize(x, s, z).astype(z.dtype)


def _dequantize_linear(q, s, z=None, axis=1, **_):
    return _dequantize(q, s, z, axis)


def _conv(x: Deq, w: Deq, b=None, **attrs):
    return _linear(conv_int(x.v, w.v, attrs), x.s, w.s, b)


def _gemm(a: Deq, b: Deq, c=None, **attrs):
    return _linear(_gemm_ints(a.v, b.v, attrs), a.s, _weights_along_output(b), c)


def _matmul(a: Deq, b: Deq):
    return _linear(matmul_int(a.v, b.v), a.s, _weights_along_output(b), None)


def _qlinear_conv(x, xs, xz, w, ws, wz, ys, yz, b=None, **attrs):
    return _quantize_out(_linear(conv_int(_centred(x, xz), _centred(w, wz), attrs), xs, ws, b), ys, yz, x)


def _qgemm(a, as_, az, b, bs, bz, c=None, ys=None, yz=None, **attrs):
    if ys is None:
        raise NotImplementedError("QGemm with a float output")
    wz_axis = 1 if attrs.get("transB", 0) == 0 else 0
    acc = _gemm_ints(_centred(a, az), _centred(b, bz, wz_axis), attrs)
    return _quantize_out(_linear(acc, as_, bs, c), ys, yz, a)


def _qlinear_matmul(a, as_, az, b, bs, bz, ys, yz):
    return _quantize_out(_linear(matmul_int(_centred(a, az), _centred(b, bz, 1)), as_, bs, None), ys, yz, a)


def _qlinear_add(a, as_, az, b, bs, bz, cs, cz=None):
    total = add_exact(exact(_dequantize(a, as_, az)), exact(_dequantize(b, bs, bz)))
    return _quantize_out(total, cs, cz, a)


def _quantize_out(x, ys, yz, like):
    return _quantize_linear(x, ys, np.zeros((), like.dtype) if yz is None else yz)


def _add(a, b):
    if isinstance(a, (Deq, Exact)) and isinstance(b, (Deq, Exact)):
        return add_exact(exact(a), exact(b))
    return np.add(a, b, dtype=np.float32)


def _reduce_mean(x, axes, keepdims=1, noop_with_empty_axes=0):
    """The exact mean (``axes`` an input from opset 18, an attribute before)."""
    ex = exact(x)
    axes = tuple(int(a) % ex.n.ndim for a in axes)
    count = int(np.prod([ex.n.shape[a] for a in axes]))
    return Exact(ex.n.sum(axis=axes, keepdims=bool(keepdims)), ex.e, ex.d * count)


def _reshape(x, shape, allowzero=0):
    def f(a):
        target = [a.shape[i] if (d == 0 and not allowzero) else int(d) for i, d in enumerate(shape)]
        return a.reshape(target)
    return _map(x, f)


def _map(x, f):
    """Apply a shape or order op to the integers of any value kind."""
    if isinstance(x, Deq):
        return Deq(f(x.v), x.s)
    if isinstance(x, Exact):
        return Exact(f(x.n), x.e, x.d)
    return f(x)


def _flatten(x, axis=1):
    return _map(x, lambda a: a.reshape(int(np.prod(a.shape[:axis])), -1))


def _maxpool(x, **attrs):
    if isinstance(x, Deq) and np.size(x.s) > 1:
        raise NotImplementedError("MaxPool of a per-channel tensor")
    return _map(x, lambda a: maxpool(a.astype(np.int64), attrs).astype(a.dtype))


def _relu(x):
    if isinstance(x, Deq):
        return Deq(np.maximum(x.v, 0), x.s)
    return np.maximum(x, np.float32(0))


def _dynamic_quantize_linear(x):
    """DynamicQuantizeLinear as ONNX defines it, in float32 (uint8, range including 0; an
    all-zero input takes the range 1)."""
    lo, hi = np.minimum(np.float32(0), x.min()), np.maximum(np.float32(0), x.max())
    scale = np.float32((hi - lo if hi > lo else np.float32(1)) / np.float32(255))
    zero = np.uint8(np.clip(np.rint(np.float32(0) - lo / scale), 0, 255))
    q = np.clip(np.rint(x / scale) + np.float32(zero), 0, 255).astype(np.uint8)
    return q, scale, zero


def _matmul_integer(a, b, az=None, bz=None):
    acc = matmul_int(_centred(a, az), _centred(b, bz, 1))
    return saturate_exact_int32(acc)


def _conv_integer(x, w, xz=None, wz=None, **attrs):
    return saturate_exact_int32(conv_int(_centred(x, xz), _centred(w, wz), attrs))


def saturate_exact_int32(acc: np.ndarray) -> np.ndarray:
    lo, hi = INT_RANGES[np.dtype(np.int32)]
    if acc.size and (acc.min() < lo or acc.max() > hi):
        raise OverflowError("int32 accumulator overflows")
    return acc.astype(np.int32)


def _cast(x, to):
    return x.astype(helper.tensor_dtype_to_np_dtype(to))


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


OPS = {
    "QuantizeLinear": _quantize_linear, "DequantizeLinear": _dequantize_linear,
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add,
    "QLinearConv": _qlinear_conv, "QGemm": _qgemm, "QLinearMatMul": _qlinear_matmul, "QLinearAdd": _qlinear_add,
    "MaxPool": _maxpool, "ReduceMean": _reduce_mean, "Reshape": _reshape, "Flatten": _flatten,
    "Relu": _relu, "DynamicQuantizeLinear": _dynamic_quantize_linear, "MatMulInteger": _matmul_integer,
    "ConvInteger": _conv_integer, "Cast": _cast, "Mul": lambda a, b: np.multiply(a, b, dtype=np.float32),
    "Softmax": _softmax,
}


def evaluate(model: onnx.ModelProto, x: np.ndarray, output: str) -> np.ndarray:
    """Tensor ``output`` of ``model`` on the float32 input batch ``x``, evaluated exactly."""
    name = model.graph.input[0].name
    value = _Run(model).run({name: np.asarray(x, np.float32)}, output)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{output} is not a materialized tensor")
    return value


def integers(model: onnx.ModelProto, output: str, x: np.ndarray) -> np.ndarray:
    """The integers of the quantized tensor ``output``, one row per sample (int64)."""
    return evaluate(model, x, output).reshape(len(x), -1).astype(np.int64)


def per_sample(model: onnx.ModelProto, output: str, x: np.ndarray) -> np.ndarray:
    """``output`` for each sample run alone (graphs whose quantization depends on the
    batch, e.g. DynamicQuantizeLinear), stacked."""
    return np.concatenate([evaluate(model, x[i:i + 1], output) for i in range(len(x))])
