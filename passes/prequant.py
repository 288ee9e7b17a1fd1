"""Quantization taken from the model: ONNX QDQ (QuantizeLinear / DequantizeLinear pairs)
and QONNX ``Quant`` nodes, imported as ``Quant`` fake-quantization points
(:mod:`nnforge.ir.ops.quant`). No calibration: every activation's type is the one the
model states.

Each ``Quant`` becomes the type of the tensor it marks (:func:`quant_type`: real scale,
zero point, integer range; the stored integer is ``q - zero``, see
:mod:`nnforge.ir.fixed`) and is removed:

* after the model input, it is the input's type;
* after a Dense / Conv (directly, or behind a Relu that is then fused), it is the layer's
  output type, and the layer rescales per channel by ``s_x * s_w[n] / s_y`` as an integer
  multiplier and shift (:func:`nnforge.ir.fixed.real_multiplier`); the bias is stored at
  ``s_x * s_w[n]``, ``b_q = round_half_up(b / (s_x * s_w[n]))``;
* after an op that keeps its input's values (MaxPool, Reshape, Relu, ...), it must state
  the input's own scale and zero point (it is then the identity);
* after a GlobalAveragePool (through Reshapes), the pool becomes a depthwise Conv with
  all-one weights whose multiplier is ``s_x / (s_y * count)``: one rounding, as a float
  mean quantized once.

Weights keep the integers and scales the model gave (``meta['weight_scales']``, from a
DequantizeLinear of integer constants with zero point 0); weights without them are
quantized as usual (``QuantConfig``: width, per tensor or per channel, power-of-two).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..ir import FixedType, Graph, Node
from ..ir.fixed import real_multiplier, saturate, signed_width_for
from ..ir.ops import op_def, ops_quantized_by, ops_with
from .calibrate import Range
from .rounding import search_rounding
from .quantize import (QuantConfig, QuantizeError, quantize, quantize_weights, set_linear_weights, store_linear,
                       weight_error_on_mean)

# ops whose output holds values of their input (the type passes through)
KEEP_TYPE = ops_quantized_by("keep")
# the ops taken here, by their quantization rule; a mean only over the whole map (it becomes
# a Conv of ones). Gemm and MatMul are taken as the Dense they become first.
REAL_OPS = (ops_quantized_by("weights", "sum", "keep", "unsigned")
            | (ops_quantized_by("mean") - ops_with(window=True)))


def is_prequantized(g: Graph) -> bool:
    return any(n.op == "Quant" for n in g.topo())


def quant_type(node: Node) -> FixedType:
    """The type a Quant states: stored integers ``q - zero`` in ``[qmin - zero, qmax - zero]``."""
    zero = int(node.attr("zero", 0))
    lo, hi = int(node.attr("qmin")) - zero, int(node.attr("qmax")) - zero
    signed = lo < 0
    width = signed_width_for(lo, hi) if signed else max(hi.bit_length(), 1)
    full = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    return real_type(width, float(node.attr("scale")), signed, None if (lo, hi) == full else (lo, hi), zero)


def real_type(width: int, scale: float, signed: bool = True, bounds=None, zero: int = 0) -> FixedType:
    """A real-scale type; its ``frac`` is nominal (``2**-frac`` is within 2x of ``scale``)."""
    return FixedType(width, -math.floor(math.log2(scale)), signed, bounds, zero, scale)


def _same_grid(a: FixedType, b: FixedType) -> bool:
    """Whether ``b`` states the same values as ``a`` (scale, zero point, a range no narrower)."""
    return a.scale == b.scale and a.zero == b.zero and b.lo <= a.lo and a.hi <= b.hi


def _sole_consumer(g: Graph, t: str) -> Node | None:
    cs = g.consumers(t)
    return cs[0] if len(cs) == 1 and t not in g.outputs else None


def _marking_quant(g: Graph, t: str, through=("Reshape",)) -> tuple[Node | None, list[Node]]:
    """The Quant that states ``t``'s type: ``t``'s only reader, possibly behind a chain of
    ``through`` ops (returned too)."""
    path = []
    c = _sole_consumer(g, t)
    while c is not None and c.op in through:
        path.append(c)
        c = _sole_consumer(g, c.outputs[0])
    return (c, path) if c is not None and c.op == "Quant" else (None, path)


def _drop_quant(g: Graph, node: Node) -> None:
    g.remove_node(node.name)
    g.replace_uses(node.outputs[0], node.inputs[0])


# ops after which a calibrated real-scale design marks its output (QuantConfig.scale == "real"):
# those whose real-scale type is the one the model's Quant of their output states
MARKED_OPS = frozenset(op for op in REAL_OPS if op_def(op).quant in ("weights", "sum", "mean"))


def quant_attrs(r: Range, bits: int, asymmetric: bool) -> dict:
    """Quant attributes for a calibrated range: unsigned when ``lo >= 0``; otherwise
    symmetric signed (zero point 0), or with ``asymmetric`` the whole ``[lo, hi]`` on the
    unsigned grid with a zero point."""
    lo, hi = min(float(r.lo), 0.0), max(float(r.hi), 0.0)
    top = (1 << bits) - 1
    if lo >= 0 or asymmetric:
        scale = (hi - lo) / top if hi > lo else 1.0
        zero = int(np.clip(np.floor(-lo / scale + 0.5), 0, top))
        return {"scale": scale, "zero": zero, "qmin": 0, "qmax": top}
    half = (1 << (bits - 1)) - 1
    return {"scale": max(-lo, hi) / half, "zero": 0, "qmin": -half - 1, "qmax": half}


def insert_quant_points(f: Graph, ranges: dict[str, Range], cfg: QuantConfig) -> Graph:
    """A copy of float graph ``f`` with a Quant (real scale from the calibrated range,
    ``cfg.act_bits``) after the input and after every op of :data:`MARKED_OPS`: what
    :func:`quantize_prequantized` turns into a real-scale integer design."""
    g = f.copy()
    marked = list(g.inputs) + [n.outputs[0] for n in g.topo() if n.op in MARKED_OPS]
    for t in marked:
        name = g.fresh_name(f"{t}_quant")
        out = g.fresh_name(f"{t}_q")
        readers = g.consumers(t)
        is_output = t in g.outputs
        g.add_node(Node(name, "Quant", (t,), (out,), quant_attrs(ranges[t], cfg.act_bits, cfg.asymmetric)))
        for r in readers:
            g.replace_node(r.name, r.with_(inputs=tuple(out if i == t else i for i in r.inputs)))
        if is_output:
            g.outputs = [out if o == t else o for o in g.outputs]
    g.verify()
    return g


def quantize_graph(f: Graph, ranges: dict[str, Range], cfg: QuantConfig, means: dict | None = None,
                   inputs: dict | None = None) -> Graph:
    """Quantize float graph ``f`` (calibrated ``ranges``) as ``cfg`` says: power-of-two
    scales (:func:`.quantize.quantize`) or real scales (Quant points from the ranges, then
    :func:`quantize_prequantized`)."""
    if cfg.scale == "real":
        return quantize_prequantized(insert_quant_points(f, ranges, cfg), cfg,
                                     means if cfg.bias_correction else None, inputs)
    return quantize(f, ranges, cfg, means, inputs)


def quantize_prequantized(f: Graph, cfg: QuantConfig, means: dict | None = None,
                          inputs: dict | None = None) -> Graph:
    """A quantized copy of ``f`` whose activation types all come from its Quant nodes.
    ``means`` (per-channel input means, by tensor) turns on bias correction of the weights
    quantized here (not of weights whose integers the model gave)."""
    q = f.copy()
    for node in (n for n in q.topo() if n.op == "Quant"):
        rounding = node.attr("rounding", "half_even")
        producer = q.producer(node.inputs[0])
        # (after a fused Relu a sign is the constant +1: refused as a modelling error)
        bipolar_after_linear = (rounding == "sign" and producer is not None and op_def(producer.op).has(linear=True)
                                and not producer.attr("relu") and len(q.consumers(node.inputs[0])) == 1)
        if producer is not None and producer.op == "Relu" and len(q.consumers(node.inputs[0])) == 1:
            producer = q.producer(producer.inputs[0])
        # a floor / ceil of a Dense / Conv (possibly after a Relu) is its rounding moved into the
        # bias (exact when the rescale is a power of two: _directed_rounding)
        directed_after_linear = (rounding in ("floor", "ceil") and producer is not None
                                 and op_def(producer.op).has(linear=True)
                                 and _marking_quant(q, producer.outputs[0], through=("Relu",))[0] is node)
        if rounding != "half_even" and not bipolar_after_linear and not directed_after_linear:
            # the integer path rounds half up (ties aside, round to nearest); a floor or ceil
            # quantization anywhere but after a Dense / Conv, or a sign anywhere but right after
            # one, would need a requantization of its own
            raise QuantizeError(f"node {node.name!r}: quantizing an activation with rounding {rounding!r} "
                                f"(BipolarQuant anywhere but right after a Dense / Conv, or Quant with FLOOR / "
                                f"CEIL anywhere but after one) is not supported yet; weights may use any")
    for x in q.inputs:
        quant, _ = _marking_quant(q, x, through=())
        if quant is None:
            raise QuantizeError(f"model input {x!r} is not quantized in the model (no QuantizeLinear / Quant "
                                f"reads it alone), so its type is unknown")
        q.set_qtype(x, quant_type(quant))
        _drop_quant(q, quant)
    for node in q.topo():
        current = q.producer(node.outputs[0])
        if current is None or current.name != node.name:
            continue  # removed on the way (a fused Relu, a Quant)
        node = current
        x_t = q.qtype(node.inputs[0])
        out = node.outputs[0]
        if x_t is None:
            raise QuantizeError(f"node {node.name!r} ({node.op}): its input {node.inputs[0]!r} has no quantization "
                                f"from the model")
        rule = op_def(node.op).quant if node.op in REAL_OPS else None
        if rule == "weights":
            _linear(q, node, cfg, means, inputs)
        elif rule == "mean":
            _global_average(q, node, cfg)
        elif rule == "sum":
            _add(q, node)
        elif rule == "keep":
            q.set_qtype(out, x_t)
        elif rule == "unsigned":  # the clamp at 0 is the type's range
            q.set_qtype(out, replace(x_t, bounds=(max(x_t.lo, 0), x_t.hi)))
        elif node.op == "Quant":
            stated = quant_type(node)
            if not _same_grid(x_t, stated):
                producer = q.producer(node.inputs[0])
                raise QuantizeError(
                    f"node {node.name!r}: a quantization to {stated} after {producer.op if producer else 'the input'} "
                    f"(values in {x_t}) needs a standalone rescale, which is not supported yet")
            _drop_quant(q, node)
        else:
            raise QuantizeError(f"node {node.name!r}: op {node.op} is not supported yet in a model quantized "
                                f"elsewhere (QDQ / QONNX) or with real scales; supported: Gemm, MatMul, "
                                f"{', '.join(sorted(REAL_OPS))}")
    for t in q.outputs:
        if q.qtype(t) is None:
            raise QuantizeError(f"model output {t!r} has no quantization from the model")
    q.prune()
    return q


def _output_quant(q: Graph, node: Node) -> tuple[FixedType, bool, str]:
    """The type a linear layer's Quant states, whether a Relu between them was fused, and
    the Quant's rounding (``sign``: a BipolarQuant); the Quant and the Relu are removed."""
    quant, path = _marking_quant(q, node.outputs[0], through=("Relu",))
    if quant is None:
        raise QuantizeError(f"node {node.name!r} ({node.op}): its output is not quantized in the model (a "
                            f"QuantizeLinear / Quant must read it alone, possibly after a Relu)")
    t = quant_type(quant)
    rounding = quant.attr("rounding", "half_even")
    _drop_quant(q, quant)
    for relu in path:
        _drop_quant(q, relu)
    return t, bool(path), rounding


def _power_of_two(ratio: np.ndarray, mult: np.ndarray, shift: int) -> bool:
    """Whether every rescale ``ratio`` is a power of two that ``mult * 2^-shift`` states exactly."""
    return bool(np.all((mult > 0) & ((mult & (mult - 1)) == 0) & (np.ldexp(mult.astype(np.float64), -shift) == ratio)))


def _directed_rounding(node: Node, rounding: str, ratio: np.ndarray, mult: np.ndarray, shift: int) -> np.ndarray:
    """Per output channel, what to add to a layer's integer bias so that the contract's
    ``round_half_up((acc * mult) >> shift)`` computes ``floor`` (``ceil``) of ``acc * ratio``
    instead: ``-2^(shift-1) / mult`` (``2^(shift-1) / mult - 1``). Exact when each ratio is
    a power of two (``mult`` one too, dividing ``2^(shift-1)``), which the model's own
    power-of-two scales (Brevitas' fixed-point quantizers) give; other ratios are refused."""
    if not _power_of_two(ratio, mult, shift):
        raise QuantizeError(f"node {node.name!r} ({node.op}): a {rounding.upper()} quantization of its output is "
                            f"supported when each rescale (input scale x weight scale / output scale) is a power "
                            f"of two; here they are {sorted(set(ratio.tolist()))[:4]}")
    if shift <= 0:
        return np.zeros(len(mult), dtype=np.int64)  # acc * ratio is an integer: nothing to round
    half = np.int64(1) << np.int64(shift - 1)
    # a channel whose ratio is 1 or more has no fraction to round either
    step = np.where(mult > half, half, mult)
    delta = -(half // step) if rounding == "floor" else half // step - 1
    return np.where(mult > half, 0, delta).astype(np.int64)


def _linear(q: Graph, node: Node, cfg: QuantConfig, means=None, inputs=None) -> None:
    x, w_name, b_name = node.inputs
    x_t = q.qtype(x)
    out_t, relu, rounding = _output_quant(q, node)
    sign = rounding == "sign"
    w = q.consts[w_name].astype(np.float64)
    given = q.meta.get("weight_scales", {}).get(w_name)
    if given is not None:
        sw = np.broadcast_to(np.asarray(given["scale"], dtype=np.float64), (len(w),)).copy()
        bits = int(given["bits"])
        row = (-1,) + (1,) * (w.ndim - 1)
        w_q = np.floor(w / sw.reshape(row) + 0.5).astype(np.int64)  # the model's integers, exactly
        w_t = real_type(bits, float(sw.max()))
        w_q = saturate(w_q, w_t)
    elif cfg.scale == "real":  # symmetric, narrow: [-(2**(b-1) - 1), 2**(b-1) - 1] * s
        bits = cfg.wbits(node.name)
        top = (1 << (bits - 1)) - 1
        rows = np.abs(w).reshape(len(w), -1).max(axis=1) if cfg.per_channel else np.full(len(w), np.abs(w).max())
        sw = np.where(rows > 0, rows, 1.0) / top
        w_q = np.clip(np.floor(w / sw.reshape((-1,) + (1,) * (w.ndim - 1)) + 0.5), -top, top).astype(np.int64)
        if cfg.rounding == "search":
            w_q, b_shift = search_rounding(w, w_q, sw, -top, top, inputs[node.name])
        w_t = real_type(bits, float(sw.max()))
    else:
        w_q, w_t, fracs = quantize_weights(w, cfg.wbits(node.name), cfg.per_channel)
        sw = np.ldexp(1.0, -fracs)
        if cfg.rounding == "search":
            w_q, b_shift = search_rounding(w, w_q, sw, w_t.lo, w_t.hi, inputs[node.name])
    acc_scale = x_t.scale * sw
    b = q.consts[b_name].astype(np.float64)
    if given is None and cfg.rounding == "search":  # its bias shift replaces bias correction
        b = b + b_shift
    elif means is not None and given is None:  # bias correction of the weights quantized here
        w_deq = w_q * sw.reshape((-1,) + (1,) * (w.ndim - 1))
        b = b - weight_error_on_mean(node, w_deq - w, means[x])
    b_q = np.floor(b / acc_scale + 0.5).astype(np.int64)
    if sign:
        # a sign (BipolarQuant: +1 from 0 up, else -1) of the accumulator is the saturation of
        # 2 * acc + 1 to [-1, 1] (never 0): weights doubled, bias 2 b + 1, rescale 1
        w_q, b_q = 2 * w_q, 2 * b_q + 1
        w_t = FixedType(w_t.width + 1, w_t.frac + 1, real_scale=w_t.real_scale / 2)
    store_linear(q, node, w_name, w_q, w_t, b_name, b, b_q=b_q)
    node = q.node(node.name)
    acc_width = int(node.attr("acc_width"))
    ratio = np.broadcast_to(acc_scale / out_t.scale, (len(w),))
    extra = {}
    if sign:
        mult, shift = np.ones(len(w), dtype=np.int64), 0
    else:
        mult, shift = real_multiplier(ratio, max_bits=min(31, 62 - acc_width))
        if _power_of_two(ratio, mult, shift):
            # the model's power-of-two scales (Brevitas' fixed-point quantizers): the smallest
            # multiplier made 1, so the products stay narrow (a shift when all are equal), and
            # the model's rounding kept exactly: ties to even when it says so (ROUND,
            # QuantizeLinear), floor / ceil moved into the bias
            k = int(mult.min()).bit_length() - 1
            mult, shift = mult >> k, shift - k
            if rounding == "half_even" and shift > 0 and cfg.from_model:
                extra["rounding"] = "half_even"  # (not the Quant points a real-scale calibration makes)
    if rounding in ("floor", "ceil"):
        set_linear_weights(q, node, w_q, b_q + _directed_rounding(node, rounding, ratio, mult, shift))
        node = q.node(node.name)  # (set_linear_weights checks that acc * mult still fits)
    q.replace_node(node.name, node.with_(attrs={**node.attrs, "relu": bool(node.attr("relu")) or relu,
                                                "rq_mult": tuple(int(v) for v in mult), "rq_shift": int(shift),
                                                **extra}))
    q.set_qtype(node.outputs[0], out_t)


def _add(q: Graph, node: Node) -> None:
    """``Add`` of two activations: ``y = (a * m_a + b * m_b) >> shift`` with
    ``m_a / 2**shift ~ s_a / s_y`` and ``m_b / 2**shift ~ s_b / s_y``. A Relu between the
    Add and its Quant stays (the type's range does its clamp)."""
    a, b = node.inputs
    if q.is_const(a) or q.is_const(b):
        raise QuantizeError(f"node {node.name!r}: {node.op} with a constant is not supported yet in a model "
                            f"quantized elsewhere")
    ta, tb = q.qtype(a), q.qtype(b)
    if tb is None:
        raise QuantizeError(f"node {node.name!r} (Add): its input {b!r} has no quantization from the model")
    quant, path = _marking_quant(q, node.outputs[0], through=("Relu",))
    if quant is None:
        raise QuantizeError(f"node {node.name!r} (Add): its output is not quantized in the model")
    out_t = quant_type(quant)
    _drop_quant(q, quant)
    wide = max(signed_width_for(t.lo, t.hi) for t in (ta, tb))
    mult, shift = real_multiplier([ta.scale / out_t.scale, tb.scale / out_t.scale], max_bits=min(31, 60 - wide))
    q.replace_node(node.name, node.with_(attrs={"rq_mult": tuple(int(v) for v in mult), "rq_shift": int(shift)}))
    q.set_qtype(node.outputs[0], out_t)


def _global_average(q: Graph, node: Node, cfg: QuantConfig) -> None:
    """``GlobalAveragePool`` -> depthwise ``Conv`` of ones over the whole map, rescaled by
    ``s_x / (s_y * count)`` (one rounding of the exact sum)."""
    x = node.inputs[0]
    x_t = q.qtype(x)
    quant, path = _marking_quant(q, node.outputs[0])
    if quant is None:
        raise QuantizeError(f"node {node.name!r}: a GlobalAveragePool must be followed by the model's "
                            f"quantization of its result (QuantizeLinear / Quant, possibly after Reshapes)")
    out_t = quant_type(quant)
    _drop_quant(q, quant)
    c, *spatial = q.shape(x)
    count = int(np.prod(spatial))
    w_name = q.add_const(q.fresh_name(f"{node.name}_ones"), np.ones((c, 1, *spatial), dtype=np.float32))
    b_name = q.add_const(q.fresh_name(f"{node.name}_zero"), np.zeros(c, dtype=np.float32))
    nd = len(spatial)
    conv = Node(node.name, "Conv", (x, w_name, b_name), node.outputs,
                {"strides": (1,) * nd, "pads": (0,) * (2 * nd), "dilations": (1,) * nd, "groups": c})
    q.replace_node(node.name, conv)
    w_t = FixedType(2, 0)
    store_linear(q, conv, w_name, np.ones((c, 1, *spatial), dtype=np.int64), w_t, b_name, np.zeros(c),
                 b_q=np.zeros(c, dtype=np.int64))
    conv = q.node(node.name)
    acc_width = int(conv.attr("acc_width"))
    mult, shift = real_multiplier(np.full(c, x_t.scale / (out_t.scale * count)), max_bits=min(31, 62 - acc_width))
    q.replace_node(conv.name, conv.with_(attrs={**conv.attrs, "rq_mult": tuple(int(v) for v in mult),
                                                "rq_shift": int(shift)}))
    q.set_qtype(node.outputs[0], out_t)
    for r in path:  # the Reshapes between the pool and its Quant carry the pool's type
        q.set_qtype(r.outputs[0], out_t)


__all__ = ["insert_quant_points", "quantize_graph", "is_prequantized", "quant_attrs", "quant_type", "quantize_prequantized"]
