"""Post-training quantization to power-of-two fixed point.

Every activation gets ``act_bits`` and every weight ``weight_bits``; the fractional bits
are the largest that keep the calibrated range (or the weights' range) unsaturated
(:func:`nnforge.ir.fixed.frac_for_range`). A tensor whose calibrated minimum is >= 0
(the model input of image data, the output of a Relu) is unsigned, which buys one bit.

Biases are stored at the accumulator scale ``frac(x) + frac(W)``. The accumulator width
is derived from the quantized weights and the input type's range::

    bound = max_n ( |b[n]| + sum_k |W[n, k]| * max(|x.lo|, |x.hi|) )

which bounds every partial sum in any order of accumulation, so no backend can overflow.

Per-channel weights (``QuantConfig.per_channel``): row ``n`` of a Dense / Conv weight gets
its own ``frac[n]`` (the largest unsaturated one, at most :data:`MAX_CHANNEL_SPREAD` above
the smallest), its bias is stored at ``frac(x) + frac[n]``, and the node's
``rq_mult[n] = 2**(F - frac[n])`` with ``F = max frac``, ``rq_shift = frac(x) + F - frac(y)``
(:mod:`nnforge.ir.ops.dense`). The weight tensor's type has ``frac = F``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..ir import FixedType, Graph, quantize_float
from ..ir.ops import op_def
from ..ir.tables import MAX_TABLE_BITS, build_table
from ..ir.fixed import frac_for_range, quantize_frac, signed_width_for
from .calibrate import Range, parse_method
from .rounding import search_rounding


class QuantizeError(Exception):
    pass


# per-channel weight fracs lie within this many bits of each other (rq_mult <= 2**spread)
MAX_CHANNEL_SPREAD = 16


@dataclass(frozen=True)
class QuantConfig:
    """Widths, and how activation ranges are calibrated: ``calibration`` is the default
    method (:data:`.calibrate.METHODS`), ``overrides`` (tensor or node name, method) pairs;
    ``layer_weight_bits`` (node name, bits) pairs give single layers other weight widths
    (mixed precision); ``bias_correction`` moves each Dense / Conv bias by the mean error
    its quantized weights make on the calibration data's mean input; ``per_channel`` gives
    each output channel of a Dense / Conv its own power-of-two weight scale; ``mcu`` names the
    microcontroller whose kernels the C target writes (kept here so that a saved design
    re-lowers the same program)."""

    weight_bits: int = 8
    act_bits: int = 8
    calibration: str = "minmax"
    overrides: tuple[tuple[str, str], ...] = ()
    layer_weight_bits: tuple[tuple[str, int], ...] = ()
    bias_correction: bool = False
    per_channel: bool = False
    from_model: bool = False  # activation types come from the model's own quantization (QDQ, QONNX)
    scale: str = "pow2"  # "real": calibrated real scales, rescaled by integer multiplier and shift
    rounding: str = "nearest"  # "search": per-channel rounding chosen on calibration inputs (passes/rounding.py)
    dynamic: bool = False  # the C target also gets run-time activation scales (ir/dynamic.py)
    asymmetric: bool = False  # real scales: signed activations on an unsigned grid with a zero point
    float_format: str = ""  # "fp16" / "bf16": the model runs in that float format instead (ir/floats.py)
    neuzip: str = ""  # float weights stored NeuZip-style: "lossless" or "lossy:K" (passes/neuzip.py)
    # the C target's microcontroller kernels (a name of codegen/mcu.py's MCUS, checked where a
    # config is made from user input: the compile options and design.json); "generic": portable C
    mcu: str = "generic"

    def __post_init__(self) -> None:
        for what, b in (("weight", self.weight_bits), ("activation", self.act_bits)):
            if not 2 <= b <= 16:
                raise ValueError(f"{what} width must be 2..16 bits, got {b}")
        if self.rounding not in ("nearest", "search"):
            raise ValueError(f"rounding must be 'nearest' or 'search', got {self.rounding!r}")
        if self.scale not in ("pow2", "real"):
            raise ValueError(f"scale must be 'pow2' or 'real', got {self.scale!r}")
        if self.dynamic and (self.scale != "pow2" or self.per_channel):
            raise ValueError("dynamic quantization uses power-of-two scales per tensor (no --scale real, "
                             "no --per-channel)")
        if self.asymmetric and self.scale != "real":
            raise ValueError("asymmetric activations need real scales (scale='real')")
        if self.float_format and self.mcu != "generic":
            raise ValueError("the microcontroller kernels are integer kernels; a float format runs the portable "
                             "float C (mcu 'generic')")
        parse_method(self.calibration)
        for _, m in self.overrides:
            parse_method(m)
        object.__setattr__(self, "overrides", tuple((str(k), str(m)) for k, m in self.overrides))
        object.__setattr__(self, "layer_weight_bits", tuple((str(k), int(b)) for k, b in self.layer_weight_bits))
        for name, b in self.layer_weight_bits:
            if not 2 <= b <= 16:
                raise ValueError(f"layer {name!r}: weight width must be 2..16 bits, got {b}")

    def wbits(self, node_name: str) -> int:
        """The weight width of one layer."""
        return dict(self.layer_weight_bits).get(node_name, self.weight_bits)


def _act_type(r: Range, bits: int) -> FixedType:
    signed = r.lo < 0
    return FixedType(bits, frac_for_range(r.max_abs, bits, signed), signed)


def drop_output_softmax(g: Graph) -> bool:
    """A Softmax that produces a graph output is monotonic: the integer model outputs
    its input (the logits) and ``g.meta['output_softmax']`` records the axis so the float
    wrapper can apply it. A Softmax anywhere else is refused."""
    changed = False
    for node in [n for n in g.topo() if n.op == "Softmax"]:
        out = node.outputs[0]
        # only Reshapes may follow (an old-opset Softmax is Reshape-Softmax-Reshape), and
        # then the Softmax must cover every per-sample value, as the host applies it
        end = out
        # structure: pattern (the Reshapes of an old-opset Softmax, the model's Quant of its output)
        while end not in g.outputs and len(g.consumers(end)) == 1 and g.consumers(end)[0].op in ("Reshape", "Quant"):
            after = g.consumers(end)[0]
            if after.op == "Quant":  # the model's quantization of probabilities: the host has floats
                g.remove_node(after.name)
                g.replace_uses(after.outputs[0], end)
                continue
            end = after.outputs[0]
        whole = len(g.shape(out)) == 1
        if end not in g.outputs or g.consumers(end) or (end != out and not whole):
            raise QuantizeError(
                f"node {node.name!r}: Softmax is supported only as the last op of the model"
            )
        g.remove_node(node.name)
        if end == out:
            g.outputs = [node.inputs[0] if t == out else t for t in g.outputs]
            g.meta.setdefault("output_softmax", {})[node.inputs[0]] = node.attr("axis", -1)
        else:  # the Reshapes now carry the logits
            g.replace_uses(out, node.inputs[0])
            g.meta.setdefault("output_softmax", {})[end] = "all"
        changed = True
    if changed:
        g.prune()
    return changed


@dataclass(frozen=True)
class QuantContext:
    """What a quantization rule may read besides the graph: the calibrated ranges, the
    configuration, and (for bias correction and rounding search) the calibration data."""

    ranges: dict[str, Range]
    cfg: QuantConfig
    means: dict[str, np.ndarray] | None = None
    inputs: dict | None = None

    def out_type(self, node) -> FixedType:
        """An activation type for the node's output from its calibrated range."""
        return _act_type(self.ranges[node.outputs[0]], self.cfg.act_bits)

    def refuse(self, node, why: str) -> QuantizeError:
        """The error an op's own rule (``OpDef.quantize``) raises when it cannot quantize ``node``."""
        return QuantizeError(f"node {node.name!r}: {why}")


def quantize(g: Graph, ranges: dict[str, Range], cfg: QuantConfig,
             means: dict[str, np.ndarray] | None = None, inputs: dict | None = None) -> Graph:
    """Return a quantized copy of ``g``: every tensor typed, constants as int64. ``means``
    (per-channel input means, :func:`.calibrate.channel_means`) is needed for
    ``cfg.bias_correction``. Each node is quantized by its op's rule (``OpDef.quant``,
    implemented in :data:`TYPE_RULES`)."""
    if cfg.bias_correction and means is None:
        raise QuantizeError("bias correction needs the per-channel means of the calibration data")
    if cfg.rounding == "search" and inputs is None:
        raise QuantizeError("rounding search needs the layers' calibration inputs (passes.rounding.layer_inputs)")
    unknown = sorted(set(dict(cfg.layer_weight_bits)) - {n.name for n in g.topo()})
    if unknown:
        raise QuantizeError(f"per-layer weight widths name no layer of the model: {', '.join(unknown)}")
    q = g.copy()
    for name in q.inputs:
        q.set_qtype(name, _act_type(ranges[name], cfg.act_bits))
    ctx = QuantContext(ranges, cfg, means, inputs)
    for node in q.topo():
        d = op_def(node.op)
        rule = d.quantize or TYPE_RULES.get(d.quant)
        if rule is None:
            why = d.refusal or (f"op {node.op} has no integer implementation yet, so the model runs in the float "
                                f"interpreter only")
            raise QuantizeError(f"node {node.name!r}: {why}")
        rule(q, node, ctx)
    return q


def _keep(q: Graph, node, ctx: QuantContext) -> None:
    """Rules "keep" and "mean": the input's type (an unsigned input stays unsigned)."""
    q.set_qtype(node.outputs[0], q.qtype(node.inputs[0]))


def _unsigned(q: Graph, node, ctx: QuantContext) -> None:
    t = q.qtype(node.inputs[0])
    q.set_qtype(node.outputs[0], FixedType(t.width, t.frac, signed=False))


def _calibrated(q: Graph, node, ctx: QuantContext) -> None:
    q.set_qtype(node.outputs[0], ctx.out_type(node))


def _with_constants(bits: Callable[[QuantContext, object], int]) -> Callable:
    """A calibrated output whose constant operands get a signed ``bits(ctx, node)``-bit type."""

    def rule(q: Graph, node, ctx: QuantContext) -> None:
        for t in node.inputs:
            if q.is_const(t):
                ct = _weight_type(q.consts[t], bits(ctx, node))
                q.consts[t] = quantize_float(q.consts[t], ct)
                q.set_qtype(t, ct)
        _calibrated(q, node, ctx)

    return rule


def _weight_type(w: np.ndarray, bits: int) -> FixedType:
    """A signed ``bits``-bit type with the largest frac that keeps max|w| unsaturated."""
    return FixedType(bits, frac_for_range(float(np.abs(w).max()), bits, True))


def store_linear(q: Graph, node, w_name: str, w_q: np.ndarray, w_t: FixedType, b_name: str, b: np.ndarray,
                 row_frac: np.ndarray | int = 0, b_q: np.ndarray | None = None) -> None:
    """Store the quantized multiplier ``w_q`` (type ``w_t``, output channel first) and the
    float addend ``b`` at the accumulator scale ``frac(x) + frac(w) + row_frac[n]``, rounded
    half up (or the integers ``b_q`` given), and give the node the accumulator width of
    ``bound = max_n(|b[n]| + sum_k |w[n, k]| * max|x|)``."""
    x_t = q.qtype(node.inputs[0])
    acc_frac = x_t.frac + w_t.frac
    if b_q is None:
        b_q = np.floor(np.ldexp(b, acc_frac + np.asarray(row_frac, dtype=np.int64)) + 0.5).astype(np.int64)
    acc_width = accumulator_width(node, x_t, w_q, b_q)
    q.consts[w_name], q.consts[b_name] = w_q, b_q
    q.set_qtype(w_name, w_t)
    q.set_qtype(b_name, FixedType(acc_width, acc_frac))
    q.replace_node(node.name, node.with_(attrs={**node.attrs, "acc_width": acc_width}))


def accumulator_width(node, x_t: FixedType, w_q: np.ndarray, b_q: np.ndarray) -> int:
    """The accumulator width of a layer with integer weights ``w_q`` (output channel first)
    and bias ``b_q`` on inputs of type ``x_t``: that of ``bound = max_n(|b[n]| + sum_k
    |w[n, k]| * max|x|)``, which no partial sum in any order exceeds."""
    x_mag = max(abs(x_t.lo), abs(x_t.hi))
    # Dense W is (N, K), Conv W (M, C/groups, *k), a scale-shift's mul (C,): sum all but the output axis
    bound = int(np.max(np.abs(b_q) + np.abs(w_q).reshape(len(w_q), -1).sum(axis=1) * x_mag))
    acc_width = signed_width_for(-bound, bound)
    if acc_width > 62:
        raise QuantizeError(f"node {node.name!r}: accumulator would need {acc_width} bits")
    return acc_width


def set_linear_weights(q: Graph, node, w_q: np.ndarray, b_q: np.ndarray) -> None:
    """Replace a quantized Dense / Conv layer's integer weights and bias (same shapes, same
    types and scales; trained weights) and derive its accumulator width again, checking
    that the weights fit their type and that a per-channel rescale still fits 62 bits."""
    w_name, b_name = node.inputs[1], node.inputs[2]
    w_t, b_t = q.qtype(w_name), q.qtype(b_name)
    if w_q.shape != q.consts[w_name].shape or b_q.shape != q.consts[b_name].shape:
        raise QuantizeError(f"node {node.name!r}: new weights {w_q.shape} / bias {b_q.shape} do not have the "
                            f"shapes {q.consts[w_name].shape} / {q.consts[b_name].shape}")
    if w_q.size and (w_q.min() < w_t.lo or w_q.max() > w_t.hi):
        raise QuantizeError(f"node {node.name!r}: new weights leave their type {w_t}")
    acc_width = accumulator_width(node, q.qtype(node.inputs[0]), w_q, b_q)
    mult = node.attr("rq_mult")
    if mult is not None and acc_width + max(int(abs(m)) for m in mult).bit_length() > 62:
        raise QuantizeError(f"node {node.name!r}: with the new weights the per-channel rescaling would "
                            f"overflow 62 bits (accumulator {acc_width} bits)")
    q.consts[w_name], q.consts[b_name] = np.asarray(w_q, np.int64), np.asarray(b_q, np.int64)
    q.set_qtype(b_name, replace(b_t, width=acc_width))
    q.replace_node(node.name, node.with_(attrs={**node.attrs, "acc_width": acc_width}))


def _quantize_dense(q: Graph, node, ctx: QuantContext) -> None:
    """Rule "weights" (:mod:`nnforge.ir.ops.dense`)."""
    cfg, means, inputs, out_range = ctx.cfg, ctx.means, ctx.inputs, ctx.ranges[node.outputs[0]]
    x, w_name, b_name = node.inputs
    w = q.consts[w_name].astype(np.float64)
    w_q, w_t, fracs = quantize_weights(w, cfg.wbits(node.name), cfg.per_channel)
    row_shape = (-1,) + (1,) * (w.ndim - 1)
    b = q.consts[b_name].astype(np.float64)
    if cfg.rounding == "search":  # its bias shift replaces bias correction
        w_q, shift = search_rounding(w, w_q, np.ldexp(1.0, -fracs), w_t.lo, w_t.hi, inputs[node.name])
        b = b + shift
    elif cfg.bias_correction:
        w_deq = np.ldexp(w_q.astype(np.float64), -fracs.reshape(row_shape))
        b = b - weight_error_on_mean(node, w_deq - w, means[x])
    relu = bool(node.attr("relu"))
    out_t = _act_type(Range(0.0, out_range.hi) if relu else out_range, cfg.act_bits)
    store_linear(q, node, w_name, w_q, w_t, b_name, b, fracs - w_t.frac)
    if cfg.per_channel:
        node = q.node(node.name)
        mult = np.ldexp(1.0, w_t.frac - fracs).astype(np.int64)
        shift = q.qtype(x).frac + w_t.frac - out_t.frac
        if node.attr("acc_width") + int(mult.max()).bit_length() > 62:
            raise QuantizeError(f"node {node.name!r}: per-channel rescaling would overflow 62 bits")
        q.replace_node(node.name, node.with_(attrs={**node.attrs, "rq_mult": tuple(int(v) for v in mult),
                                                    "rq_shift": int(shift)}))
    q.set_qtype(node.outputs[0], out_t)


def quantize_weights(w: np.ndarray, bits: int, per_channel: bool) -> tuple[np.ndarray, FixedType, np.ndarray]:
    """Signed ``bits``-bit weights ``(w_q, type, fracs)`` with power-of-two scales: one frac
    per tensor, or per output channel (row ``n`` of ``w``: the largest unsaturated frac, at
    most :data:`MAX_CHANNEL_SPREAD` above the smallest; the type then has the largest)."""
    if per_channel:
        rows = np.abs(w).reshape(len(w), -1).max(axis=1)
        fracs = np.array([frac_for_range(float(r), bits, True) for r in rows])
        fracs = np.minimum(fracs, fracs.min() + MAX_CHANNEL_SPREAD)
        w_t = FixedType(bits, int(fracs.max()))
    else:
        w_t = _weight_type(w, bits)
        fracs = np.full(len(w), w_t.frac)
    f = fracs.reshape((-1,) + (1,) * (w.ndim - 1))
    return quantize_frac(w, f, w_t), w_t, fracs


def weight_error_on_mean(node, dw: np.ndarray, mean_x: np.ndarray) -> np.ndarray:
    """E[(W_q - W) x] per output, from the input's per-channel mean (border padding of a
    Conv is ignored: every tap sees the channel mean)."""
    if not op_def(node.op).has(window=True):  # Dense: W (N, K), x (K,)
        return dw @ mean_x.reshape(-1)
    groups = int(node.attr("groups", 1))
    m, cg = dw.shape[0], dw.shape[1]
    per_in = dw.reshape(m, cg, -1).sum(axis=2)  # (M, C/groups): summed over the kernel taps
    mean_g = mean_x.reshape(groups, cg)[np.arange(m) // (m // groups)]  # each output's group's channels
    return (per_in * mean_g).sum(axis=1)


def _quantize_scale_shift(q: Graph, node, ctx: QuantContext) -> None:
    """An unfolded BatchNormalization ``y = x * mul[c] + add[c]``: ``mul`` gets a signed
    ``weight_bits`` type with one power-of-two scale, ``add`` is stored at the product scale
    like a bias (:func:`store_linear`, each channel's "row" is its one ``mul``)."""
    _, m_name, a_name = node.inputs
    m = q.consts[m_name].astype(np.float64)
    m_t = _weight_type(m, ctx.cfg.wbits(node.name))
    store_linear(q, node, m_name, quantize_float(m, m_t), m_t, a_name, q.consts[a_name].astype(np.float64))
    q.set_qtype(node.outputs[0], ctx.out_type(node))


def _quantize_multiplier(q: Graph, node, ctx: QuantContext) -> None:
    """Rule "multiplier": the slope below 0 (LeakyRelu's ``alpha``, or PRelu's constant
    second operand, one slope per channel) becomes ``mult`` in a signed weight-width type
    of scale ``2**-mult_frac``, one ``mult_frac`` for every slope: the largest frac that
    keeps them unsaturated, at least 0, and at most what keeps ``x << mult_frac`` within
    62 bits. LeakyRelu keeps ``mult`` and ``mult_frac`` as attributes, PRelu as its
    constant and that constant's type (:mod:`nnforge.ir.ops.leakyrelu`, :mod:`nnforge.ir.ops.prelu`)."""
    bits = ctx.cfg.wbits(node.name)
    slope = node.inputs[1] if len(node.inputs) > 1 else None
    values = np.asarray(q.consts[slope] if slope else node.attr("alpha", 0.01), dtype=np.float64)
    mf = min(frac_for_range(float(np.abs(values).max(initial=0.0)), bits, True), 62 - q.qtype(node.inputs[0]).width)
    if mf < 0:
        raise QuantizeError(f"node {node.name!r}: {node.op} slope {float(np.abs(values).max())} does not fit "
                            f"{bits} bits")
    m_t = FixedType(bits, mf)
    if slope:
        q.consts[slope] = quantize_float(values, m_t)
        q.set_qtype(slope, m_t)
    else:
        q.replace_node(node.name, node.with_(attrs={**node.attrs, "mult": int(quantize_float(float(values), m_t)),
                                                    "mult_frac": mf}))
    q.set_qtype(node.outputs[0], ctx.out_type(node))


def _quantize_clip(q: Graph, node, ctx: QuantContext) -> None:
    """Bounds rounded to the input type (an absent one is the type's end); the output keeps
    the input's width and frac, unsigned when the lower bound is >= 0."""
    t = q.qtype(node.inputs[0])
    lo = t.lo if node.attr("min") is None else int(quantize_float(node.attr("min"), t))
    hi = t.hi if node.attr("max") is None else int(quantize_float(node.attr("max"), t))
    out_t = FixedType(t.width, t.frac, signed=t.signed and lo < 0)
    q.replace_node(node.name, node.with_(attrs={**node.attrs, "lo_q": lo, "hi_q": hi}))
    q.set_qtype(node.outputs[0], out_t)


def _quantize_table(q: Graph, node, ctx: QuantContext) -> None:
    """Build the node's lookup table (:func:`nnforge.ir.tables.build_table`) from its op's
    ``function`` and add it as a constant second input. The output type is ``act_bits``
    wide: with the op's ``value_range`` (Sigmoid's ``(0, 1)``, say) the largest frac that
    holds it, signed when it reaches below 0; otherwise from calibration."""
    x_t = q.qtype(node.inputs[0])
    if x_t.width > MAX_TABLE_BITS:
        raise QuantizeError(
            f"node {node.name!r}: {node.op} is computed by a lookup table indexed by its input, which is "
            f"{x_t} ({x_t.width} bits); tables are limited to {MAX_TABLE_BITS}-bit inputs. Quantize with "
            f"bits <= {MAX_TABLE_BITS}")
    d = op_def(node.op)
    out_t = _act_type(Range(*d.value_range), ctx.cfg.act_bits) if d.value_range else ctx.out_type(node)
    fn = d.function
    table = build_table(lambda v: fn(node.attrs, v), x_t, out_t)
    name = q.add_const(q.fresh_name(f"{node.name}_table"), table)
    q.set_qtype(name, out_t)
    q.replace_node(node.name, node.with_(inputs=(node.inputs[0], name)))
    q.set_qtype(node.outputs[0], out_t)


# the implementation of every quantization rule an op may name (nnforge.ir.ops.base.QUANT_RULES)
TYPE_RULES: dict[str, Callable] = {
    "keep": _keep,
    "mean": _keep,
    "unsigned": _unsigned,
    "calibrated": _calibrated,
    "sum": _with_constants(lambda ctx, node: ctx.cfg.act_bits),
    "product": _with_constants(lambda ctx, node: ctx.cfg.wbits(node.name)),
    "weights": _quantize_dense,
    "scale_shift": _quantize_scale_shift,
    "multiplier": _quantize_multiplier,
    "bounds": _quantize_clip,
    "table": _quantize_table,
}
