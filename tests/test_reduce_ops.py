"""Reductions (ReduceMean / ReduceSum / ReduceMax / ReduceMin over axes of a sample), ArgMax
at the model output and Max / Min of activations: the float reference against onnxruntime,
the refusals with their reasons, the integer rules against independent oracles, and C and
HLS bit-exact with golden (one build per target for the values, one for ArgMax)."""

from __future__ import annotations

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


def test_verilog_refuses_the_new_ops(tmp_path):
    m, x = argmax_model(0)
    design = nnforge.compile(m, calibration=x, bits=8)
    with pytest.raises(Exception, match=r"target 'verilog' cannot implement node .* \(op ArgMax\)"):
        design.write(tmp_path / "out", targets=["verilog"])
