"""Convolutional ops on the golden side: float reference vs onnxruntime, integer
reference vs float, BatchNormalization folding, frontend refusals, and a small torch CNN
through nnforge.compile (golden model only; the hardware backends refuse Conv for now)."""

from __future__ import annotations

import json
import zlib
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import train_classifier
from nnforge.frontend import ModelImportError, import_onnx
from nnforge.ir import Graph, dequantize, quantize_float, run_float, run_int
from nnforge.ir.ops import avgpool
from nnforge.passes import QuantConfig, calibrate_minmax, fold_batchnorm, quantize, run_float_pipeline

BATCH = 3


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def make_model(nodes, inputs, outputs, inits=(), opset=13) -> onnx.ModelProto:
    vi_in = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *map(int, s)]) for n, s in inputs]
    vi_out = [helper.make_empty_tensor_value_info(n) for n in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits]
    model = helper.make_model(helper.make_graph(nodes, "g", vi_in, vi_out, inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 17 else 9
    model = onnx.shape_inference.infer_shapes(model)
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def ort_run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {model.graph.input[0].name: x})


def check(model, x, ops):
    """Import, compare the float interpreter with onnxruntime, return the graph."""
    g = import_onnx(model)
    g.verify()
    assert [n.op for n in g.topo()] == ops
    want = ort_run(model, x)[0]
    got = run_float(g, x)[0]
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))
    return g


def spatial(rng, nd, lo=3, hi=9):
    return tuple(int(d) for d in rng.integers(lo, hi, size=nd))


# ---- Conv --------------------------------------------------------------------------------------

CONV_CASES = [  # nd, groups kind, auto_pad, bias
    (nd, groups, auto_pad, bias)
    for nd in (1, 2)
    for groups, auto_pad, bias in [
        ("one", "NOTSET", True), ("one", "NOTSET", False), ("two", "NOTSET", True),
        ("depthwise", "NOTSET", True), ("depthwise", "SAME_UPPER", False), ("one", "SAME_UPPER", True),
        ("one", "SAME_LOWER", True), ("two", "SAME_LOWER", True), ("one", "VALID", True),
    ]
]


def conv_case(nd, groups, auto_pad, bias, seed=0, relu=False):
    rng = rng_for("conv", nd, groups, auto_pad, bias, seed)
    g = {"one": 1, "two": 2, "depthwise": int(rng.integers(2, 5))}[groups]
    cg = 1 if groups == "depthwise" else int(rng.integers(1, 4))
    c = cg * g
    m = g * (1 if groups == "depthwise" else int(rng.integers(1, 4)))
    k = spatial(rng, nd, 1, 4)
    s = spatial(rng, nd, 1, 3)
    d = spatial(rng, nd, 1, 3)
    S = tuple(max(sz, dd * (kk - 1) + 1) for sz, dd, kk in zip(spatial(rng, nd, 4, 11), d, k))
    attrs = {"strides": list(s), "dilations": list(d), "group": g, "kernel_shape": list(k)}
    if auto_pad == "NOTSET":
        attrs["pads"] = [int(p) for p in rng.integers(0, 3, size=2 * nd)]
    else:
        attrs["auto_pad"] = auto_pad
        if auto_pad != "VALID":
            attrs["dilations"] = [1] * nd  # onnxruntime's SAME padding ignores dilation
    ins, inits = ["x", "W"], [("W", randn(rng, m, cg, *k))]
    if bias:
        ins.append("B")
        inits.append(("B", randn(rng, m)))
    nodes = [helper.make_node("Conv", ins, ["h" if relu else "y"], name="conv", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["h"], ["y"]))
    model = make_model(nodes, [("x", (c, *S))], ["y"], inits)
    return model, randn(rng, BATCH, c, *S)


@pytest.mark.parametrize("nd, groups, auto_pad, bias", CONV_CASES)
def test_conv_float_vs_onnxruntime(nd, groups, auto_pad, bias):
    for seed in range(3):
        model, x = conv_case(nd, groups, auto_pad, bias, seed)
        g = check(model, x, ["Conv"])
        assert len(g.shape("y")) == nd + 1


def test_conv_relu_fuses_and_matches():
    rng = rng_for("conv-relu")
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["y"])]
    model = make_model(nodes, [("x", (2, 5, 5))], ["y"], [("W", randn(rng, 3, 2, 3, 3)), ("B", randn(rng, 3))])
    x = randn(rng, BATCH, 2, 5, 5)
    g = check(model, x, ["Conv", "Relu"])
    f = run_float_pipeline(g)
    assert [(n.op, n.attr("relu")) for n in f.topo()] == [("Conv", True)]
    np.testing.assert_allclose(run_float(f, x)[0], ort_run(model, x)[0], rtol=1e-5, atol=1e-5)


# ---- pooling -----------------------------------------------------------------------------------

POOL_CASES = [(op, nd, variant, include_pad) for op in ("MaxPool", "AveragePool") for nd in (1, 2)
              for variant in ("plain", "pads", "ceil", "same_upper", "same_lower", "valid", "dilated")
              for include_pad in ((0, 1) if op == "AveragePool" else (0,))]


def pool_case(op, nd, variant, include_pad, seed):
    rng = rng_for("pool", op, nd, variant, include_pad, seed)
    c = int(rng.integers(1, 4))
    k = spatial(rng, nd, 1, 4)
    s = spatial(rng, nd, 1, 4)
    S = tuple(max(a, b) for a, b in zip(spatial(rng, nd, 3, 12), k))
    attrs = {"kernel_shape": list(k), "strides": list(s)}
    if variant in ("pads", "ceil", "dilated"):
        attrs["pads"] = [int(rng.integers(0, kk)) for kk in k] * 2
        attrs["pads"] = [int(min(p, rng.integers(0, 3))) for p in attrs["pads"]]
    if variant in ("ceil", "dilated"):
        attrs["ceil_mode"] = int(variant == "ceil" or rng.integers(0, 2))
    if variant == "dilated":
        attrs["dilations"] = list(spatial(rng, nd, 1, 3))
        S = tuple(max(a, d * (kk - 1) + 1) for a, d, kk in zip(S, attrs["dilations"], k))
    if variant.startswith("same") or variant == "valid":
        attrs["auto_pad"] = variant.upper()
        # onnxruntime rejects SAME when the stride exceeds the kernel (negative total pad)
        attrs["strides"] = [min(a, b) for a, b in zip(s, k)] if variant != "valid" else list(s)
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    opset = 19 if variant == "dilated" else 13
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", (c, *S))], ["y"], opset=opset)
    return model, randn(rng, BATCH, c, *S)


@pytest.mark.parametrize("op, nd, variant, include_pad", POOL_CASES)
def test_pool_float_vs_onnxruntime(op, nd, variant, include_pad):
    for seed in range(4):
        model, x = pool_case(op, nd, variant, include_pad, seed)
        check(model, x, [op])


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("nd", [1, 2])
def test_global_pool_float_vs_onnxruntime(op, nd):
    rng = rng_for(op, nd)
    S = spatial(rng, nd)
    model = make_model([helper.make_node(op, ["x"], ["y"])], [("x", (3, *S))], ["y"])
    g = check(model, randn(rng, BATCH, 3, *S), [op])
    assert g.shape("y") == (3,) + (1,) * nd


def test_maxpool_padding_never_wins():
    """All-negative input: a padded zero would win if pads held 0 instead of -inf."""
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3], pads=[2, 2])],
                       [("x", (1, 4))], ["y"])
    x = -np.arange(1, 5, dtype=np.float32).reshape(1, 1, 4)
    g = check(model, x, ["MaxPool"])
    assert run_float(g, x)[0].max() < 0


# ---- BatchNormalization ------------------------------------------------------------------------

def bn_inits(rng, c, prefix="bn"):
    return [(f"{prefix}_s", randn(rng, c)), (f"{prefix}_b", randn(rng, c)), (f"{prefix}_m", randn(rng, c)),
            (f"{prefix}_v", (rng.random(c) + 0.1).astype(np.float32))]


def bn_node(x, y, prefix="bn", eps=1e-3):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "sbmv"], [y], epsilon=eps)


@pytest.mark.parametrize("shape", [(4,), (3, 7), (2, 5, 6)])
def test_batchnorm_alone_float_vs_onnxruntime(shape):
    rng = rng_for("bn", shape)
    model = make_model([bn_node("x", "y")], [("x", shape)], ["y"], bn_inits(rng, shape[0]))
    g = check(model, randn(rng, BATCH, *shape), ["BatchNormalization"])
    f = run_float_pipeline(g)
    assert [n.op for n in f.topo()] == ["BatchNormalization"]  # nothing to fold into


def conv_bn_model(rng, nd=2, extra_reader=False):
    c, m = 2, 4
    S = (6,) * nd
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["h"], pads=[1] * 2 * nd, group=2), bn_node("h", "y")]
    outs = ["y"]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["h"], ["r"]))
        outs.append("r")
    inits = [("W", randn(rng, m, c // 2, *(3,) * nd)), ("B", randn(rng, m))] + bn_inits(rng, m)
    return make_model(nodes, [("x", (c, *S))], outs, inits), randn(rng, BATCH, c, *S)


@pytest.mark.parametrize("nd", [1, 2])
def test_fold_batchnorm_into_conv(nd):
    rng = rng_for("fold-conv", nd)
    model, x = conv_bn_model(rng, nd)
    g = check(model, x, ["Conv", "BatchNormalization"])
    h = g.copy()
    assert fold_batchnorm(h) is True
    h.verify()
    assert [n.op for n in h.topo()] == ["Conv"]
    np.testing.assert_allclose(run_float(h, x)[0], run_float(g, x)[0], rtol=1e-5, atol=1e-5)
    assert fold_batchnorm(h) is False


def test_fold_batchnorm_into_gemm():
    rng = rng_for("fold-gemm")
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1), bn_node("h", "y")]
    model = make_model(nodes, [("x", (5,))], ["y"], [("W", randn(rng, 3, 5)), ("B", randn(rng, 3))] + bn_inits(rng, 3))
    x = randn(rng, BATCH, 5)
    g = check(model, x, ["Gemm", "BatchNormalization"])
    f = run_float_pipeline(g)
    f.verify()
    assert [n.op for n in f.topo()] == ["Dense"]
    np.testing.assert_allclose(run_float(f, x)[0], run_float(g, x)[0], rtol=1e-5, atol=1e-5)


def test_fold_batchnorm_skips_a_shared_conv_output():
    rng = rng_for("fold-shared")
    model, x = conv_bn_model(rng, 2, extra_reader=True)
    g = import_onnx(model)
    h = g.copy()
    assert fold_batchnorm(h) is False
    h.verify()
    assert sorted(n.op for n in h.topo()) == ["BatchNormalization", "Conv", "Relu"]


# ---- ReduceMean as a global average pool (what torch exports) ----------------------------------

@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [13, 18])
def test_reducemean_spatial_is_global_average_pool(keepdims, opset):
    rng = rng_for("reducemean", keepdims, opset)
    if opset >= 18:
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)
        inits = [("axes", np.array([-1, -2], dtype=np.int64))]
    else:
        node, inits = helper.make_node("ReduceMean", ["x"], ["y"], keepdims=keepdims, axes=[2, 3]), []
    model = make_model([node], [("x", (3, 4, 5))], ["y"], inits, opset=opset)
    check(model, randn(rng, BATCH, 3, 4, 5), ["GlobalAveragePool"] + ([] if keepdims else ["Reshape"]))


# ---- frontend refusals -------------------------------------------------------------------------

def test_conv_3d_is_refused():
    model = make_model([helper.make_node("Conv", ["x", "W"], ["y"])], [("x", (1, 3, 3, 3))], ["y"],
                       [("W", np.ones((1, 1, 2, 2, 2), np.float32))])
    with pytest.raises(ModelImportError, match="3-D input"):
        import_onnx(model)


def test_conv_with_computed_weights_is_refused():
    vi = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4]),
          helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 2, 2])]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g", vi,
                              [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(ModelImportError):
        import_onnx(model)


def test_maxpool_indices_output_is_refused():
    model = make_model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])],
                       [("x", (1, 4, 4))], ["y", "i"])
    with pytest.raises(ModelImportError, match="Indices"):
        import_onnx(model)


def test_batchnorm_training_mode_is_refused():
    rng = rng_for("bn-train")
    node = helper.make_node("BatchNormalization", ["x", "bn_s", "bn_b", "bn_m", "bn_v"], ["y", "rm", "rv"],
                            training_mode=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3])]
                              + [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("rm", "rv")],
                              [numpy_helper.from_array(v, k) for k, v in bn_inits(rng, 2)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    with pytest.raises(ModelImportError, match="training"):
        import_onnx(model)


# ---- integer references ------------------------------------------------------------------------

@given(st.integers(-10**12, 10**12), st.integers(1, 10**6))
@settings(max_examples=300, deadline=None)
def test_division_rounds_half_up(total, count):
    want = Fraction(total, count) + Fraction(1, 2)
    assert int(avgpool.div_round_half_up(np.int64(total), count)) == want.numerator // want.denominator


def quantized(model, x, bits=8):
    g = run_float_pipeline(import_onnx(model))
    q = quantize(g, calibrate_minmax(g, x), QuantConfig(bits, bits))
    q.verify()
    return g, q


def dequantized_graph(q: Graph) -> Graph:
    """The quantized graph's constants back as floats: the exact real values it computes with."""
    f = q.copy()
    for name, c in q.consts.items():
        t = q.qtype(name)
        if t is not None:
            f.consts[name] = dequantize(c, t).astype(np.float64)
    return f


@pytest.mark.parametrize("nd, groups, auto_pad, bias", CONV_CASES[::2])
@pytest.mark.parametrize("relu", [False, True])
def test_conv_int_vs_float(nd, groups, auto_pad, bias, relu):
    """On the quantized values the integer Conv is the exact float Conv rounded once to the
    output type; against the original float model it is within the propagated bound."""
    model, x = conv_case(nd, groups, auto_pad, bias, relu=relu)
    g, q = quantized(model, x)
    (node,) = q.topo()
    assert node.op == "Conv" and bool(node.attr("relu")) == relu and node.attr("acc_width") > 0
    x_t, w_t, out_t = q.qtype(q.inputs[0]), q.qtype(node.inputs[1]), q.qtype(node.outputs[0])
    assert out_t.signed != relu
    x_q = quantize_float(x, x_t)
    y = dequantize(run_int(q, x_q)[0], out_t)
    # 1) exact: float conv of the dequantized integers, rounded half up, saturated
    exact = run_float(dequantized_graph(q), dequantize(x_q, x_t))[0].astype(np.float64)
    assert np.max(np.abs(y - np.clip(exact, dequantize(out_t.lo, out_t), dequantize(out_t.hi, out_t)))) \
        <= out_t.scale / 2 + 1e-6 * max(1.0, np.abs(exact).max())
    # 2) against the float model: |dW| <= scale(W)/2 per weight, |dx| <= scale(x)/2, |db| tiny
    w = g.consts[g.topo()[0].inputs[1]]
    bound = (np.abs(w).sum() * x_t.scale / 2 + np.abs(x).max() * w.size * w_t.scale / 2
             + out_t.scale / 2 + x_t.scale * w_t.scale)
    assert np.max(np.abs(y - run_float(g, x)[0])) <= bound
    # the accumulator width is the smallest that holds the worst case of this input type
    w_q, b_q = q.consts[node.inputs[1]], q.consts[node.inputs[2]]
    worst = int(np.max(np.abs(b_q) + np.abs(w_q).reshape(len(w_q), -1).sum(axis=1) * max(-x_t.lo, x_t.hi)))
    acc = node.attr("acc_width")
    assert worst <= (1 << (acc - 1)) - 1 and worst > (1 << (acc - 2)) - 1


@pytest.mark.parametrize("op, nd, variant, include_pad", POOL_CASES[::2])
def test_pool_int_vs_float(op, nd, variant, include_pad):
    model, x = pool_case(op, nd, variant, include_pad, 0)
    g, q = quantized(model, x)
    t = q.qtype(q.inputs[0])
    assert q.qtype("y") == t
    x_q = quantize_float(x, t)
    got = run_int(q, x_q)[0]
    exact = run_float(g, dequantize(x_q, t))[0].astype(np.float64) * 2.0 ** t.frac
    if op == "MaxPool":
        np.testing.assert_array_equal(got, exact)
    else:  # round half up of the exact mean, in LSBs
        np.testing.assert_array_equal(got, np.floor(exact + 0.5 + 1e-9))


def test_pool_of_unsigned_input_stays_unsigned():
    rng = rng_for("pool-unsigned")
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("AveragePool", ["p"], ["a"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["a"], ["y"])]
    model = make_model(nodes, [("x", (2, 8, 8))], ["y"])
    x = randn(rng, 16, 2, 8, 8)
    g, q = quantized(model, x)
    types = {q.qtype(n.outputs[0]) for n in q.topo()}
    assert len(types) == 1 and not types.pop().signed
    got = dequantize(run_int(q, quantize_float(x, q.qtype("x")))[0], q.qtype("y"))
    np.testing.assert_allclose(got, run_float(g, x)[0], atol=3 * q.qtype("y").scale)


def test_global_pools_int():
    rng = rng_for("global-int")
    nodes = [helper.make_node("GlobalMaxPool", ["x"], ["m"]), helper.make_node("GlobalAveragePool", ["x"], ["a"])]
    model = make_model(nodes, [("x", (3, 5, 5))], ["m", "a"])
    x = randn(rng, BATCH, 3, 5, 5)
    g, q = quantized(model, x)
    t = q.qtype("x")
    x_q = quantize_float(x, t)
    m, a = run_int(q, x_q)
    np.testing.assert_array_equal(m[..., 0, 0], x_q.max(axis=(2, 3)))
    s = x_q.sum(axis=(2, 3))
    np.testing.assert_array_equal(a[..., 0, 0], np.floor(s / 25 + 0.5))


def test_unfolded_batchnorm_int_vs_float():
    rng = rng_for("bn-int")
    model = make_model([bn_node("x", "y")], [("x", (3, 4, 4))], ["y"], bn_inits(rng, 3))
    x = randn(rng, 32, 3, 4, 4)
    g, q = quantized(model, x)
    (node,) = q.topo()
    assert node.op == "BatchNormalization" and node.attr("acc_width") > 0
    x_t, m_t, out_t = q.qtype("x"), q.qtype(node.inputs[1]), q.qtype("y")
    x_q = quantize_float(x, x_t)
    y = dequantize(run_int(q, x_q)[0], out_t)
    exact = run_float(dequantized_graph(q), dequantize(x_q, x_t))[0].astype(np.float64)
    exact = np.clip(exact, dequantize(out_t.lo, out_t), dequantize(out_t.hi, out_t))
    assert np.max(np.abs(y - exact)) <= out_t.scale / 2 + 1e-6
    mul = g.consts[g.topo()[0].inputs[1]]
    bound = np.abs(mul).max() * x_t.scale / 2 + np.abs(x).max() * m_t.scale / 2 + out_t.scale / 2 + x_t.scale * m_t.scale
    assert np.max(np.abs(y - run_float(g, x)[0])) <= bound


# ---- a small torch CNN through nnforge.compile -------------------------------------------------

@pytest.fixture(scope="module")
def torch_cnn(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10),
    )
    rng = np.random.default_rng(0)
    x = rng.random((400, 1, 8, 8)).astype(np.float32)
    # random-but-deterministic labels from a fixed linear teacher, a few SGD steps
    y = torch.tensor((x.reshape(400, -1) @ rng.standard_normal((64, 10))).argmax(1))
    xt = torch.tensor(x)
    train_classifier(model, xt, y, steps=30, lr=0.02)
    path = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    torch.onnx.export(model, (xt[:1],), str(path), dynamo=True, dynamic_shapes=({0: "N"},))
    return path, x


def test_torch_cnn_compiles_to_a_golden_model(torch_cnn, tmp_path):
    path, x = torch_cnn
    g = import_onnx(path)
    ops = [n.op for n in g.topo()]
    assert "Conv" in ops and "MaxPool" in ops and "GlobalAveragePool" in ops
    model = onnx.load(str(path))
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {model.graph.input[0].name: x})[0]
    np.testing.assert_allclose(run_float(g, x)[0], want, rtol=1e-4, atol=1e-4)
    cal, test = x[:200], x[200:]
    design = nnforge.compile(path, calibration=cal, bits=8)
    q_ops = [n.op for n in design.qgraph.topo()]
    assert q_ops.count("Conv") == 2 and "BatchNormalization" not in q_ops and "Relu" not in q_ops
    agree = np.mean(design.predict(test).argmax(1) == design.predict_float(test).argmax(1))
    assert agree >= 0.9, agree
    out = tmp_path / "out"
    # a simple CNN chain: Verilog line engines (simulated in tests/test_verilog_cnn.py)
    design.write(out, targets=["verilog"])
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    assert [ly["op"] for ly in info["layers"]].count("Conv") == 2
