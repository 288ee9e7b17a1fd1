"""Reductions (ReduceMean / ReduceSum / ReduceMax / ReduceMin over axes of a sample), ArgMax
at the model output and Max / Min of activations: the float reference against onnxruntime,
the refusals with their reasons, the integer rules against independent oracles, C and
HLS bit-exact with golden (one build per target for the values, one for ArgMax), and
Verilog (one Verilator build per model) for the reductions and ArgMax."""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.frontend import ModelImportError, import_onnx
from nnforge.ir import FixedType, Graph, Node, dequantize, quantize_float, run_float
from nnforge.ir.ops import int_ref

SHAPE = (3, 4, 5)
TWO = (("x", SHAPE), ("z", SHAPE))


def make(nodes, inputs=(("x", SHAPE),), inits=(), opset=13) -> onnx.ModelProto:
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *s]) for n, s in inputs]
    graph = helper.make_graph(nodes, "g", vi, [helper.make_empty_tensor_value_info("y")],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    return m


def node(op, *inputs, out="y", **attrs):
    return helper.make_node(op, list(inputs) or ["x"], [out], **attrs)


def axes(*a):
    return np.array(a, dtype=np.int64)


def ort_run(m, *xs):
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(m.graph.input, xs)})[0]


def samples(seed, shape=SHAPE, n=16):
    return np.random.default_rng(seed).normal(0, 2, (n, *shape)).astype(np.float32)


# name -> (model, activation inputs, the IR ops it becomes)
FLOAT_CASES = {
    "mean_channel": (make([node("ReduceMean", axes=[1])]), 1, ["ReduceMean"]),
    "mean_two_axes_flat": (make([node("ReduceMean", axes=[1, -1], keepdims=0)]), 1, ["ReduceMean"]),
    "mean_axes_input": (make([node("ReduceMean", "x", "a")], inits=[("a", axes(2))], opset=18), 1, ["ReduceMean"]),
    "mean_spatial": (make([node("ReduceMean", axes=[2, 3])]), 1, ["GlobalAveragePool"]),
    "mean_spatial_flat": (make([node("ReduceMean", axes=[2, 3], keepdims=0)]), 1, ["GlobalAveragePool", "Reshape"]),
    "sum_axes_input": (make([node("ReduceSum", "x", "a", keepdims=0)], inits=[("a", axes(1, 3))]), 1, ["ReduceSum"]),
    "sum_all_sample": (make([node("ReduceSum", "x", "a")], inits=[("a", axes(1, 2, 3))]), 1, ["ReduceSum"]),
    "sum_noop": (make([node("ReduceSum", "x", "a", noop_with_empty_axes=1)], inits=[("a", axes())]), 1, []),
    "max_axis": (make([node("ReduceMax", axes=[-2], keepdims=0)]), 1, ["ReduceMax"]),
    "max_spatial": (make([node("ReduceMax", axes=[2, 3])]), 1, ["GlobalMaxPool"]),
    "min_axes_input": (make([node("ReduceMin", "x", "a")], inits=[("a", axes(1, 2))], opset=18), 1, ["ReduceMin"]),
    "argmax_flat": (make([node("ArgMax", axis=1, keepdims=0)]), 1, ["ArgMax"]),
    "argmax_last": (make([node("ArgMax", axis=-1, select_last_index=1)]), 1, ["ArgMax"]),
    "max_two": (make([node("Max", "x", "z")], TWO), 2, ["Max"]),
    "min_broadcast": (make([node("Min", "x", "z")], (("x", SHAPE), ("z", (3, 1, 5)))), 2, ["Min"]),
    "max_three_and_scalar": (make([node("Max", "x", "c", "z", "x")], TWO, [("c", np.float32(0.5))]), 2,
                             ["Max", "Max", "Clip"]),
    "min_const_per_channel": (make([node("Min", "x", "c")], inits=[("c", np.float32([[[0.5]], [[-1]], [[2]]]))]), 1,
                              ["Min"]),
    "max_const_and_scalar": (make([node("Max", "c", "x", "d")], inits=[("c", np.float32([0, 1, -1, 2, 0.5])),
                                                                        ("d", np.float32(-0.5))]), 1, ["Max", "Clip"]),
}


@pytest.mark.parametrize("name", list(FLOAT_CASES))
def test_float_matches_onnxruntime(name):
    m, n_in, ops = FLOAT_CASES[name]
    g = import_onnx(m)
    assert [n.op for n in g.topo()] == ops
    shapes = [tuple(d.dim_value for d in i.type.tensor_type.shape.dim[1:]) for i in m.graph.input]
    # whole numbers: ties for ArgMax, both first and last index
    xs = [np.round(samples(i, s)) if name.startswith("argmax") else samples(i, s) for i, s in enumerate(shapes)]
    want = ort_run(m, *xs)
    got = run_float(g, *xs)[0] if ops else xs[0]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model, why", [
    (make([node("ReduceMean")]), r"ReduceMean over axes \[0, 1, 2, 3\] includes the batch axis 0"),
    (make([node("ReduceSum", "x", "a")], inits=[("a", axes(0, 1))]), r"includes the batch axis 0"),
    (make([node("ArgMax")]), r"ArgMax over the batch axis 0"),
    (make([node("ArgMax", axis=1, out="i"), node("Cast", "i", to=TensorProto.FLOAT)]),
     r"ArgMax is supported only as the last op of the model"),
    (make([node("Max", "x", "z")], (("x", SHAPE), ("z", (5,)))), r"would broadcast over the batch axis"),
    (make([node("Min", "x", "c")], inits=[("c", np.ones((2, 1, 3, 4, 5), np.float32))]),
     r"a constant of shape \(2, 1, 3, 4, 5\) would broadcast over the batch axis"),
], ids=["mean_default_axes", "sum_batch_axis", "argmax_batch", "argmax_not_last", "max_ranks", "min_const_batch"])
def test_refused_with_reason(model, why):
    with pytest.raises(ModelImportError, match=why):
        import_onnx(model)


# ---- integer rules against independent oracles ----------------------------------------------

def _one_node(op, in_types, out_t, shapes, attrs) -> tuple[Graph, Node]:
    g = Graph()
    names = [f"x{i}" for i in range(len(in_types))]
    for n, t, s in zip(names, in_types, shapes):
        g.add_input(n, s)
        g.set_qtype(n, t)
    nd = g.add_node(Node("n", op, names, ["y"], attrs))
    g.set_qtype("y", out_t)
    return g, nd


@pytest.mark.parametrize("op, x_t, out_t", [
    ("ReduceMean", FixedType(8, 3), FixedType(8, 5)), ("ReduceMean", FixedType(8, 3), FixedType(8, 1)),
    ("ReduceSum", FixedType(8, 3), FixedType(8, 1)), ("ReduceSum", FixedType(6, 2, False), FixedType(12, 1)),
])
def test_sum_and_mean_round_once(op, x_t, out_t):
    """``y = sat(floor(S * 2**(f_y - f_x) / count + 1/2))`` with exact rationals."""
    rng = np.random.default_rng(3)
    x = rng.integers(x_t.lo, x_t.hi + 1, (32, 3, 4, 5))
    g, nd = _one_node(op, [x_t], out_t, [(3, 4, 5)], {"axes": (0, 2), "keepdims": False})
    (y,) = int_ref(nd, g, [x])
    count = 15 if op == "ReduceMean" else 1
    s = x.sum(axis=(1, 3))
    exact = [Fraction(int(v) * 2 ** out_t.frac, 2 ** x_t.frac * count) for v in s.reshape(-1)]
    want = [min(max(int((e + Fraction(1, 2)) // 1), out_t.lo), out_t.hi) for e in exact]
    assert y.shape == (32, 4) and y.reshape(-1).tolist() == want
    assert len(set(want)) > 8


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_min_of_two_scales_rounds_once(op):
    """The winner of the two dequantized values, quantized once to the output type; the
    second operand broadcast along the last axis."""
    ta, tb, out_t = FixedType(8, 5), FixedType(8, 2), FixedType(8, 4)
    rng = np.random.default_rng(5)
    a, b = rng.integers(-128, 128, (64, 3, 4)), rng.integers(-128, 128, (64, 3, 1))
    g, nd = _one_node(op, [ta, tb], out_t, [(3, 4), (3, 1)], {})
    (y,) = int_ref(nd, g, [a, b])
    pick = np.maximum if op == "Max" else np.minimum
    want = quantize_float(pick(dequantize(a, ta), dequantize(b, tb)), out_t)
    np.testing.assert_array_equal(y, want)
    assert np.any(y == (out_t.hi if op == "Max" else out_t.lo))  # the winner saturates too


# ---- C and HLS bit-exact ---------------------------------------------------------------------

def values_model() -> tuple[onnx.ModelProto, np.ndarray]:
    """One input ``(4, 6)``; Max of two activations, Min with one broadcast along the last
    axis, Max with a constant per row, every reduction over a non-spatial axis (the mean
    rounds a division by 4), all concatenated."""
    n = lambda op, ins, out, **a: helper.make_node(op, ins, [out], **a)  # noqa: E731
    nodes = [n("Mul", ["x", "k"], "a"), n("Relu", ["x"], "b"),
             n("Max", ["a", "b"], "o_max"),
             n("ReduceMin", ["x"], "r", axes=[2]), n("Min", ["b", "r"], "o_min"), n("Max", ["x", "c"], "o_maxc"),
             n("ReduceMean", ["a"], "o_mean", axes=[1]), n("ReduceSum", ["o_max", "ax1"], "o_sum"),
             n("ReduceMax", ["x"], "o_rmax", axes=[1]), n("ReduceMin", ["a"], "o_rmin", axes=[1]),
             n("Concat", ["o_mean", "o_sum", "o_rmax", "o_rmin"], "rows", axis=1),
             n("Concat", ["o_max", "o_min", "o_maxc", "rows"], "y", axis=1)]
    inits = [("k", np.float32(-0.7)), ("ax1", axes(1)), ("c", np.float32([[0.5], [-1], [3], [0]]))]
    return make(nodes, (("x", (4, 6)),), inits), samples(7, (4, 6), 64)


def argmax_model(last: int) -> tuple[onnx.ModelProto, np.ndarray]:
    """Logits ``(3, 6)`` from a Conv1d, their ArgMax over the channels; channels 0 and 2
    are the same, so every maximum there is a tie."""
    rng = np.random.default_rng(9)
    nodes = [node("Conv", "x", "W", out="h"), node("ArgMax", "h", axis=1, keepdims=0, select_last_index=last)]
    w = rng.normal(0, 0.5, (3, 2, 1)).astype(np.float32)
    w[2] = w[0]
    inits = [("W", w)]
    return make(nodes, (("x", (2, 6)),), inits), samples(8, (2, 6), 64)


def real_scales_model() -> tuple[onnx.ModelProto, np.ndarray]:
    """Two 1x1 Conv1d of ``(2, 6)``, their Max, then the smallest over the channels: with
    real scales each Max operand has its own multiplier; the minimum keeps the type."""
    rng = np.random.default_rng(4)
    nodes = [node("Conv", "x", "W", out="h"), node("Conv", "x", "V", out="g"), node("Max", "h", "g", out="m"),
             node("ReduceMin", "m", axes=[1])]
    inits = [("W", rng.normal(0, 0.5, (3, 2, 1)).astype(np.float32)),
             ("V", rng.normal(0, 2, (3, 2, 1)).astype(np.float32))]
    return make(nodes, (("x", (2, 6)),), inits), samples(6, (2, 6), 64)


MODELS = {"values": values_model, "argmax_first": lambda: argmax_model(0), "argmax_last": lambda: argmax_model(1),
          "real_scales": real_scales_model}


@pytest.mark.parametrize("case", list(MODELS))
def test_c_and_hls_bit_exact(case):
    m, x = MODELS[case]()
    design = nnforge.compile(m, calibration=x, bits=8, scale="real" if case == "real_scales" else "pow2")
    q = design.qgraph
    ops = [nd.op for nd in q.topo()]
    if case == "real_scales":
        assert ops[-2:] == ["Max", "ReduceMin"] and len(set(q.node(next(
            nd.name for nd in q.topo() if nd.op == "Max")).attr("rq_mult"))) == 2
    elif case == "values":
        assert {"Max", "Min", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"} <= set(ops)
        mean = next(nd for nd in q.topo() if nd.op == "ReduceMean")
        assert q.qtype(mean.outputs[0]).frac != q.qtype(mean.inputs[0]).frac  # a real rescale, not a copy
    else:
        assert ops[-1] == "ArgMax" and q.qtype(q.outputs[0]) == FixedType(2, 0, False)
        y = design.predict(x)
        assert y.shape == (64, 6) and set(np.unique(y)) == ({1, 2} if case == "argmax_last" else {0, 1})
        assert np.mean(y == design.predict_float(x)) > 0.9  # the float model's indices, but for near-ties
    res = design.verify(x[:16], backends=["golden", "c", "hls"])
    assert {k: b.mismatches for k, b in res.backends.items()} == {"golden": 0, "c": 0, "hls": 0}


# ---- Verilog: reduce engines ------------------------------------------------------------------

def reduce_node(op, src, out, ax, keep, inits):
    """A reduction in opset 13 (ReduceSum's axes an input, appended to ``inits``)."""
    if op != "ReduceSum":
        return node(op, src, out=out, axes=ax, keepdims=keep)
    inits.append((f"{out}_axes", axes(*ax)))
    return node(op, src, f"{out}_axes", out=out, keepdims=keep)


def reductions_model(shape, reds) -> tuple[onnx.ModelProto, np.ndarray]:
    """Each ``(op, axes, keepdims)`` of ``reds`` on the input, flattened, all concatenated."""
    nodes, outs, inits = [], [], []
    for k, (op, ax, keep) in enumerate(reds):
        nodes.append(reduce_node(op, "x", f"r{k}", ax, keep, inits))
        nodes.append(node("Flatten", f"r{k}", out=f"f{k}", axis=1))
        outs.append(f"f{k}")
    return make(nodes + [node("Concat", *outs, axis=1)], (("x", shape),), inits), samples(14, shape, 64)


def chain_model(shape, first, second, conv: bool = False) -> tuple[onnx.ModelProto, np.ndarray]:
    """Two reductions ``(op, axes, keepdims)`` one after the other (the model's output: no
    requantization after them), optionally after a Conv1d (a line engine, channels-last)."""
    nodes, inits = [], []
    if conv:
        nodes.append(node("Conv", "x", "W", out="h"))
        inits.append(("W", np.random.default_rng(15).normal(0, 0.7, (3, shape[0], 2)).astype(np.float32)))
    src = "h" if conv else "x"
    for k, (op, ax, keep) in enumerate([first, second][:2 if second else 1]):
        nodes.append(reduce_node(op, src, f"r{k}", ax, keep, inits))
        src = f"r{k}"
    nodes[-1].output[0] = "y"
    return make(nodes, (("x", shape),), inits), samples(15, shape, 64)


# channels, spatial axes and both; keepdims 0 and 1; 1-D and 2-D samples; Max / Min
# concatenated (their type is the input's: the Concat moves them unchanged), Sum / Mean
# as the output (every bit of their rounding seen)
VERILOG_MODELS = {
    "extremes_2d": lambda: reductions_model(SHAPE, [("ReduceMax", [1], 1), ("ReduceMin", [2, 3], 0),
                                                    ("ReduceMax", [1, 3], 0), ("ReduceMin", [3], 1)]),
    "sum_mean_2d": lambda: chain_model(SHAPE, ("ReduceSum", [3], 0), ("ReduceMean", [1], 1)),
    "mean_1d": lambda: chain_model((2, 6), ("ReduceMean", [1, 2], 1), None, conv=True),
    "argmax_first": lambda: argmax_model(0), "argmax_last": lambda: argmax_model(1),
}


@pytest.mark.parametrize("case", list(VERILOG_MODELS))
def test_reductions_verilog_bit_exact(case, tmp_path):
    from nnforge.codegen import estimate
    from nnforge.sim import verilog as sim_verilog

    m, x = VERILOG_MODELS[case]()
    design = nnforge.compile(m, calibration=x, bits=8)
    q = design.qgraph
    reds = [nd for nd in q.topo() if nd.op.startswith("Reduce") or nd.op == "ArgMax"]
    assert len(reds) == {"extremes_2d": 4, "sum_mean_2d": 2}.get(case, 1)
    design.write(tmp_path / "out", targets=["verilog"])
    sim_verilog.lint(tmp_path / "out" / "verilog")
    info = json.loads((tmp_path / "out" / "verilog" / "verilog_info.json").read_text())
    layers = {ly["name"]: ly for ly in info["layers"]}
    assert all(layers[nd.name]["op"] == nd.op for nd in reds)
    if case == "extremes_2d":  # the Concat moves the values unchanged
        assert len({str(q.qtype(t)) for nd in q.topo() if nd.op == "Concat" for t in (*nd.inputs, *nd.outputs)}) == 1
    else:  # a mean over 3 or 15 values: a multiplication by the reciprocal
        assert [layers[nd.name]["multipliers"] for nd in reds if nd.op == "ReduceMean"] in ([], [1])
    for nd in reds:  # the engine's data (reported estimate) against the scanner of its module's text
        ly = layers[nd.name]
        data = ly["estimate"]
        text = (tmp_path / "out" / "verilog" / ly["file"]).read_text()
        scanned = estimate.module_estimate(text, ly["multipliers"])
        assert all(data[k] == scanned[k] for k in ("multipliers", "dsp", "bram", "lutram")), (data, scanned)
        assert abs(data["ffs"] - scanned["ffs"]) <= 0.1 * scanned["ffs"]
        assert abs(data["luts"] - scanned["luts"]) <= max(0.15 * scanned["luts"], 12)
    res = design.verify(x[:24], backends=["golden", "verilog"], outdir=tmp_path / "out")
    assert {k: b.mismatches for k, b in res.backends.items()} == {"golden": 0, "verilog": 0}
    # the engines' timing: the simulated frame period, and the estimate a little above it
    assert 0 <= info["totals"]["ii_cycles"] - res.backends["verilog"].cycles_per_inference <= 6
    if case.startswith("argmax"):  # ties between channels 0 and 2 reached the output
        y = design.predict_int(design.quantize_input(x[:24]))
        assert set(np.unique(y)) == ({1, 2} if case == "argmax_last" else {0, 1})


def test_reciprocal_is_exact():
    """``floor(v * M / 2**s) == floor(v / d)`` over ranges too wide for the build's
    value-by-value check (the bound alone) and narrow ones; a power of two is a shift."""
    from nnforge.ir.fixed import reciprocal

    rng = np.random.default_rng(16)
    for d, top in [(30, 120000), (6, 5000), (2 * 48, (1 << 20) + 7), (2 * 7 * 16, 1 << 40), (1 << 5, 999)]:
        m, s = reciprocal(top, d)
        v = np.concatenate([np.arange(min(top, 1 << 16) + 1), rng.integers(0, top + 1, 4096), top - np.arange(4096)])
        assert [int(a) * m >> s for a in v] == [int(a) // d for a in v]
        assert (m == 1) == (d & (d - 1) == 0)  # a power of two: a shift, no multiplier


# ---- Verilog: Max / Min of two activations (streaming joins) ---------------------------------

def minmax_join_model() -> tuple[onnx.ModelProto, np.ndarray]:
    """``(2, 4, 4)``: ``h = Conv(x)``, ``m = Max(h, Relu(Conv(h)))``, ``y = Min(Conv1x1(m), m)``:
    two forks joined again (a skip FIFO in front of each join), operands of different
    types, Max's output unsigned."""
    rng = np.random.default_rng(11)
    k3 = {"kernel_shape": [3, 3], "pads": [1] * 4}
    nodes = [node("Conv", "x", "W", "b", out="h", **k3), node("Conv", "h", "V", out="c", **k3),
             node("Relu", "c", out="r"), node("Max", "h", "r", out="m"),
             node("Conv", "m", "U", out="u", kernel_shape=[1, 1]), node("Min", "u", "m", out="o"),
             node("Flatten", "o")]
    inits = [("W", rng.normal(0, 0.5, (3, 2, 3, 3))), ("b", rng.normal(0, 0.1, 3)),
             ("V", rng.normal(0, 0.8, (3, 3, 3, 3))), ("U", rng.normal(0, 1.5, (3, 3, 1, 1)))]
    return make(nodes, (("x", (2, 4, 4)),), [(k, np.float32(v)) for k, v in inits]), samples(12, (2, 4, 4), 64)


@pytest.mark.parametrize("scale", ["pow2", "real"])
def test_max_min_of_activations_verilog_bit_exact(scale, tmp_path):
    from nnforge.codegen.engines import JoinEngine
    from nnforge.codegen.verilog_join import join_engine

    m, x = minmax_join_model()
    design = nnforge.compile(m, calibration=x, bits=8, scale=scale)
    q = design.qgraph
    picks = [nd for nd in q.topo() if nd.op in ("Max", "Min")]
    assert [nd.op for nd in picks] == ["Max", "Min"]
    for nd in picks:
        a, b = (q.qtype(t) for t in nd.inputs)
        assert a != b  # the operands are aligned, not copied
        if scale == "real":
            assert len(set(nd.attr("rq_mult"))) == 2
        else:
            assert nd.attrs.get("rq_mult") is None
        e = join_engine(q, nd, nd.name)  # a join's operators, and the comparator and the winner's multiplexer
        join, cw = JoinEngine.operators(e), e.numbers["R"]["cw"]
        assert e.operators() == replace(join, comparators=join.comparators + (cw,), muxes=join.muxes + (cw,))
    design.write(tmp_path / "out", targets=["c", "hls", "verilog"])
    res = design.verify(x[:16], backends=["golden", "c", "hls", "verilog"], outdir=tmp_path / "out")
    assert {k: b.mismatches for k, b in res.backends.items()} == {"golden": 0, "c": 0, "hls": 0, "verilog": 0}
    info = json.loads((tmp_path / "out" / "verilog" / "verilog_info.json").read_text())
    assert sorted(f["join"] for f in info["fifos"]) == sorted(nd.name for nd in picks)  # fork-joins
    # the skip FIFOs keep both blocks at full rate: the simulated period within the estimate
    assert 0 < res.backends["verilog"].cycles_per_inference <= info["totals"]["ii_cycles"]


@pytest.mark.parametrize("model, why", [
    (make([node("MaxPool", out="p", kernel_shape=[1, 5]), node("Min", "x", "p")]),
     "needs two activations of the output's shape"),
], ids=["broadcast"])
def test_verilog_refuses_max_min_it_does_not_stream(model, why, tmp_path):
    design = nnforge.compile(model, calibration=samples(13), bits=8)
    with pytest.raises(Exception, match=rf"target 'verilog' cannot implement node .* \(op Min\): {why}"):
        design.write(tmp_path / "out", targets=["verilog"])


def test_max_min_with_a_constant_verilog_bit_exact():
    """Max / Min of an activation and a constant tensor (per channel, per position; the
    constant first or second) are map engines, bit-exact with golden."""
    per_pos = np.random.default_rng(5).normal(0, 1, SHAPE).astype(np.float32)
    m = make([node("Min", "x", "c", out="m"), node("Max", "k", "m")],
             inits=[("c", np.float32([[[0.5]], [[-1]], [[2]]])), ("k", per_pos)])
    x = samples(14)
    design = nnforge.compile(m, calibration=x, bits=8)
    assert [nd.op for nd in design.qgraph.topo()] == ["Min", "Max"]
    res = design.verify(x[:16], backends=["golden", "verilog"])
    assert {k: b.mismatches for k, b in res.backends.items()} == {"golden": 0, "verilog": 0}
    y = design.predict_int(design.quantize_input(x[:16]))
    assert len(np.unique(y)) > 20  # both the constants and the activation win somewhere
