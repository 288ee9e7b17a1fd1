"""A first-order energy estimate of one inference of a quantized design: operation counts
times a published energy per operation (Horowitz, "Computing's energy problem (and what to
do about it)", ISSCC 2014, 45 nm). See ``docs/energy.md``.

What one output value of a node costs is its op's arithmetic rule (``OpDef.arith``, one of
``ARITH_RULES`` in :mod:`nnforge.ir.ops.base`). Every operation goes to a class by its width:
an integer operation of ``w`` bits to the smallest of 8, 16 and 32 bits that holds it (wider
than 32 bits: ``ceil(w / 32)`` 32-bit adds, ``ceil(w / 32) ** 2`` 32-bit multiplies); a
multiply's width is its wider operand, an add's the width of its result (a MAC's add is at
the accumulator width); a compare is an integer add of the operands' width (float patterns
too: a sign-magnitude compare). float16 / bfloat16 designs multiply their 16-bit values
(the product is exact in float32: a 16-bit float multiply) and add in float32, the
contract of :mod:`nnforge.ir.floats`. Shifts, saturation and the narrowing of float32
results are not counted.

Memory, with no reuse: every multiply-accumulate reads its weight and its input value from
SRAM; every other output value reads the input values it depends on; every output value is
written once. An SRAM access of ``w`` bits costs ``w / 32`` of a 32-bit read; a write costs
as a read. Nothing else (control, clocks, interconnect, leakage, the FPGA fabric) is counted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .ir import Graph
from .ir.floats import is_float
from .ir.ops import op_def
from .ir.ops.add import add_params
from .ir.ops.dense import requant_params

# Horowitz, ISSCC 2014, 45 nm, 0.9 V (pJ per operation); memory per 32-bit access as Han et
# al. (NeurIPS 2015, Table 1) tabulate Horowitz's figures
_INT_ADD = {8: 0.03, 32: 0.1}
_INT_MUL = {8: 0.2, 32: 3.1}


def geometric_mean(a: float, b: float) -> float:
    """The 16-bit figure between an 8-bit one and a 32-bit one: their geometric mean (an
    exponential law in the width through both points), to four decimals."""
    return round(math.sqrt(a * b), 4)


TABLE_PJ = {
    "int_add_8": _INT_ADD[8], "int_add_16": geometric_mean(_INT_ADD[8], _INT_ADD[32]), "int_add_32": _INT_ADD[32],
    "int_mul_8": _INT_MUL[8], "int_mul_16": geometric_mean(_INT_MUL[8], _INT_MUL[32]), "int_mul_32": _INT_MUL[32],
    "fp_add_16": 0.4, "fp_add_32": 0.9, "fp_mul_16": 1.1, "fp_mul_32": 3.7,
    "sram_read_32": 5.0, "dram_read_32": 640.0,
}
COMPUTE_CLASSES = ("int_add_8", "int_add_16", "int_add_32", "int_mul_8", "int_mul_16", "int_mul_32",
                   "fp_add_16", "fp_add_32", "fp_mul_16", "fp_mul_32")
MEMORY_COUNTS = ("sram_read_bits", "sram_write_bits")
INT_CLASSES = (8, 16, 32)

MODEL = ("first-order: operation counts x 45 nm energy per operation (Horowitz, ISSCC 2014); "
         "16-bit integer figures are the geometric means of the 8- and 32-bit ones; no data reuse: every "
         "multiply-accumulate reads its weight and input from SRAM, every other output value the inputs it "
         "depends on, every output value is written once; an SRAM access of w bits costs w/32 of a 32-bit "
         "read, a write as a read; control, clocks, interconnect, leakage and FPGA fabric overheads are not "
         "counted; see docs/energy.md")


def _int_op(c: Counter, kind: str, width: int, n: int, power: int) -> None:
    for bits in INT_CLASSES:
        if width <= bits:
            c[f"{kind}_{bits}"] += n
            return
    c[f"{kind}_32"] += n * math.ceil(width / 32) ** power


def add(c: Counter, fp: bool, width: int, n: int = 1) -> None:
    """``n`` adds of a ``width``-bit result (float: float32 adds, the contract's arithmetic)."""
    if n > 0:
        if fp:
            c["fp_add_32"] += n
        else:
            _int_op(c, "int_add", width, n, 1)


def multiply(c: Counter, fp: bool, width: int, n: int = 1) -> None:
    """``n`` multiplies whose wider operand has ``width`` bits."""
    if n > 0:
        if fp:
            c["fp_mul_16" if width <= 16 else "fp_mul_32"] += n
        else:
            _int_op(c, "int_mul", width, n, 2)


def compare(c: Counter, width: int, n: int = 1) -> None:
    """``n`` compares of ``width``-bit values: integer adds."""
    if n > 0:
        _int_op(c, "int_add", width, n, 1)


def bits_of(m: int) -> int:
    """Bits of a signed integer multiplier ``m``."""
    return int(abs(int(m))).bit_length() + 1


def is_pow2(m: int) -> bool:
    m = int(m)
    return m > 0 and m & (m - 1) == 0


@dataclass
class NodeCost:
    """What one node of one inference costs: ``per_mac`` for each multiply-accumulate (skipped
    with a zero weight by a zero-skipping engine), ``per_out`` for each output value."""

    outputs: int
    per_out: Counter = field(default_factory=Counter)
    per_mac: Counter = field(default_factory=Counter)
    macs: int = 0
    nonzero_macs: int = 0
    weight_bits: int = 0  # weight bits read per multiply-accumulate

    def counts(self, sparse: bool = False) -> Counter:
        n = self.nonzero_macs if sparse else self.macs
        c = Counter({k: v * self.outputs for k, v in self.per_out.items()})
        for k, v in self.per_mac.items():
            c[k] += v * n
        return c


class View:
    """How values are counted: at the design's own widths and formats, or (``float32``) all
    as float32 values, the baseline."""

    def __init__(self, q: Graph, float32: bool = False):
        self.q, self.float32 = q, float32

    def width(self, tensor: str) -> int:
        if self.float32:
            return 32
        t = self.q.qtype(tensor)
        if t is None:
            raise ValueError(f"tensor {tensor!r} has no type: the energy estimate needs a quantized graph")
        return int(t.width)

    def fp(self, node) -> bool:
        return self.float32 or is_float(self.q.qtype(node.outputs[0]))


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def fan_in(q: Graph, node) -> int:
    """The input values one output value depends on: one per operand of an elementwise op,
    the cells of a window, the values reduced into it (at least 1)."""
    traits = op_def(node.op).traits
    if traits.elementwise:
        return len(node.inputs)
    if traits.window and node.attr("kernel_shape"):
        return _size(node.attr("kernel_shape"))
    ins = sum(_size(q.shape(t)) for t in node.inputs if not q.is_const(t))
    return max(1, ins // max(1, _size(q.shape(node.outputs[0]))))


def _mac(v: View, node, cost: NodeCost) -> None:
    q = v.q
    x, w, b = node.inputs[:3]
    wx, ww = v.width(x), v.width(w)
    w_shape = q.shape(w)
    per_output = _size(w_shape[1:])
    fp = v.fp(node)
    acc = 32 if fp else int(node.attr("acc_width") or 0) or wx + ww + per_output.bit_length()
    multiply(cost.per_mac, fp, max(wx, ww))
    add(cost.per_mac, fp, acc)
    cost.per_mac["sram_read_bits"] += wx + ww
    cost.per_out["sram_read_bits"] += v.width(b)
    cost.per_out["sram_write_bits"] += v.width(node.outputs[0])
    cost.macs = cost.outputs * per_output
    weights = q.consts.get(w)
    nonzero = int(np.count_nonzero(weights)) if weights is not None else _size(w_shape)
    cost.nonzero_macs = nonzero * (cost.outputs // max(1, w_shape[0]))
    cost.weight_bits = ww
    if not fp:  # requantization of the accumulator
        mult, shift = requant_params(node, q)
        width = acc
        if not all(is_pow2(m) for m in mult):
            mbits = max(bits_of(m) for m in mult)
            multiply(cost.per_out, False, max(acc, mbits))
            width = acc + mbits
        if shift > 0:
            add(cost.per_out, False, width)


def _join(v: View, node, n: int, cost: NodeCost, pick: bool) -> None:
    """Add (``pick`` false) or Max / Min of operands aligned by their multipliers."""
    if v.fp(node):
        if pick:
            compare(cost.per_out, max(v.width(t) for t in node.inputs), n - 1)
        else:
            add(cost.per_out, True, 32, n - 1)
        return
    *mults, shift = add_params(node, v.q)
    aligned = []
    for t, m in zip(node.inputs, mults):
        w = v.width(t)
        if is_pow2(m):
            aligned.append(w + int(m).bit_length() - 1)
        else:
            multiply(cost.per_out, False, max(w, bits_of(m)))
            aligned.append(w + bits_of(m))
    width = max(aligned) + math.ceil(math.log2(n))
    if pick:
        compare(cost.per_out, width, n - 1)
    else:
        add(cost.per_out, False, width, n - 1)
    if shift > 0:
        add(cost.per_out, False, width)


def _reduce(v: View, node, n: int, cost: NodeCost, mean: bool) -> None:
    """n - 1 adds (a sum), and for a mean one multiply by the reciprocal of the count."""
    fp = v.fp(node)
    width = v.width(node.inputs[0]) + math.ceil(math.log2(n))
    add(cost.per_out, fp, width, n - 1)
    if mean:
        multiply(cost.per_out, fp, 32 if fp else width)


def _scale(v: View, node, cost: NodeCost, rule: str) -> None:
    """multiply, multiply_add (a per-channel scale and shift), select_multiply (a slope below 0)."""
    fp = v.fp(node)
    wx = v.width(node.inputs[0])
    if len(node.inputs) > 1:
        wm = v.width(node.inputs[1])
    else:  # LeakyRelu: the slope is the node's multiplier
        wm = 32 if v.float32 else bits_of(node.attr("mult") or 1)
    if rule == "select_multiply":
        compare(cost.per_out, wx)
    multiply(cost.per_out, fp, max(wx, wm))
    width = wx + wm
    if rule == "multiply_add":
        width = 32 if fp else int(node.attr("acc_width") or 0) or width + 1
        add(cost.per_out, fp, width)
    if not fp:
        add(cost.per_out, False, width)  # the rounding of the requantization


def node_cost(v: View, node) -> NodeCost:
    """The cost of ``node`` under ``v`` (see the module doc and ``ARITH_RULES``)."""
    q = v.q
    rule = op_def(node.op).arith
    cost = NodeCost(outputs=_size(q.shape(node.outputs[0])))
    if rule in ("", "view"):
        return cost
    if rule == "mac":
        _mac(v, node, cost)
        return cost
    n = fan_in(q, node)
    if op_def(node.op).traits.elementwise:
        cost.per_out["sram_read_bits"] += sum(v.width(t) for t in node.inputs)
    else:
        cost.per_out["sram_read_bits"] += n * v.width(node.inputs[0])
    cost.per_out["sram_write_bits"] += v.width(node.outputs[0])
    wx = v.width(node.inputs[0])
    if rule in ("add", "pick"):
        _join(v, node, n, cost, pick=rule == "pick")
    elif rule in ("sum", "mean"):
        _reduce(v, node, n, cost, mean=rule == "mean")
    elif rule in ("multiply", "multiply_add", "select_multiply"):
        _scale(v, node, cost, rule)
    elif rule == "max":
        compare(cost.per_out, wx, n - 1)
    elif rule == "compare":
        compare(cost.per_out, wx)
    elif rule == "clamp":
        compare(cost.per_out, wx, 2)
    return cost  # lookup (the table is an operand: its read is counted above) and move: memory only


def compute_pj(c: Counter) -> float:
    return float(sum(c[k] * TABLE_PJ[k] for k in COMPUTE_CLASSES))


def memory_pj(c: Counter) -> float:
    return float((c["sram_read_bits"] + c["sram_write_bits"]) / 32 * TABLE_PJ["sram_read_32"])


def _pj(x: float) -> float:
    return round(float(x), 3)


def energy_estimate(q: Graph) -> dict:
    """The first-order energy of one inference of the quantized graph ``q`` (the
    ``energy`` section of ``report.json``; see the module doc and ``docs/energy.md``).

    ``total_pj`` counts every multiply-accumulate (the Verilog and HLS engines multiply zero
    weights too), ``sparse_pj`` only those with a nonzero weight; ``float32_pj`` is the same
    network with every value a float32; ``dram_weights_pj`` is the extra energy if every
    weight read came from DRAM instead of SRAM."""
    design, base = View(q), View(q, float32=True)
    total, sparse, f32 = Counter(), Counter(), Counter()
    layers, weight_bits = [], 0
    for node in q.topo():
        cost = node_cost(design, node)
        c = cost.counts()
        total.update(c)
        sparse.update(cost.counts(sparse=True))
        f32.update(node_cost(base, node).counts())
        weight_bits += cost.macs * cost.weight_bits
        cpj, mpj = compute_pj(c), memory_pj(c)
        if cpj + mpj > 0:
            layers.append({"name": node.name, "op": node.op, "macs": cost.macs, "nonzero_macs": cost.nonzero_macs,
                           "compute_pj": _pj(cpj), "memory_pj": _pj(mpj), "total_pj": _pj(cpj + mpj)})
    cpj, mpj = compute_pj(total), memory_pj(total)
    extra_dram = TABLE_PJ["dram_read_32"] - TABLE_PJ["sram_read_32"]
    return {"model": MODEL, "table_pj": dict(TABLE_PJ),
            "counts": {k: int(total[k]) for k in COMPUTE_CLASSES + MEMORY_COUNTS},
            "compute_pj": _pj(cpj), "memory_pj": _pj(mpj), "total_pj": _pj(cpj + mpj),
            "sparse_pj": _pj(compute_pj(sparse) + memory_pj(sparse)),
            "float32_pj": _pj(compute_pj(f32) + memory_pj(f32)),
            "dram_weights_pj": _pj(weight_bits / 32 * extra_dram), "layers": layers}


def _nj(pj: float) -> str:
    nj = pj / 1000
    return f"{nj:,.0f}" if nj >= 1000 else f"{nj:.4g}"


def energy_lines(e) -> list[str]:
    """The lines of ``report.txt`` for an ``energy`` section (:func:`energy_estimate`); none
    for anything else, and a missing or malformed figure reads as 0."""
    if not isinstance(e, dict):
        return []

    def num(k: str) -> float:
        x = e.get(k)
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else 0.0

    total = num("total_pj")
    lines = [f"Energy per inference: {_nj(total)} nJ (compute {_nj(num('compute_pj'))} nJ, memory "
             f"{_nj(num('memory_pj'))} nJ); first-order estimate, 45 nm (Horowitz 2014); see docs/energy.md"]
    if num("sparse_pj") != total:
        lines.append(f"  skipping zero weights: {_nj(num('sparse_pj'))} nJ")
    ratio = f" ({num('float32_pj') / total:.1f}x this design)" if total > 0 else ""
    lines.append(f"  float32 baseline: {_nj(num('float32_pj'))} nJ{ratio}")
    lines.append(f"  every weight read from DRAM instead: +{_nj(num('dram_weights_pj'))} nJ")
    return lines
