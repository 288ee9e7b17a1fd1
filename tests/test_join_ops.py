"""Concat, Mul, Transpose, Sum, Squeeze / Unsqueeze and LRN: float reference against
onnxruntime, and the integer references against float within the quantization bound."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.ir import dequantize, run_float


def model(nodes, inputs, output, out_shape, inits=(), opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def conv_pair(extra_nodes, out, out_shape, inits=(), c=3):
    """x -> two Convs (a, b), then the nodes under test (so activations are computed)."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(c, 2, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(c, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1]), *extra_nodes]
    return model(nodes, [("x", ["N", 2, 5, 5])], out, out_shape, [("w1", w1), ("w2", w2), *inits])


CASES = {
    "concat": conv_pair([helper.make_node("Concat", ["a", "b"], ["y"], axis=1)], "y", ["N", 6, 5, 5]),
    # (after a Relu: a Mul right after a Conv would be folded into its weights)
    "mul_channel": conv_pair([helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Mul", ["ra", "s"], ["y"])],
                             "y", ["N", 3, 5, 5],
                             [("s", np.array([0.5, -1.25, 2.0], np.float32).reshape(3, 1, 1))]),
    "mul_two": conv_pair([helper.make_node("Mul", ["a", "b"], ["y"])], "y", ["N", 3, 5, 5]),
    "transpose": conv_pair([helper.make_node("Transpose", ["a"], ["y"], perm=[0, 2, 3, 1])], "y", ["N", 5, 5, 3]),
    "sum3": conv_pair([helper.make_node("Sum", ["a", "b", "a"], ["y"])], "y", ["N", 3, 5, 5]),
    "unsqueeze_squeeze": conv_pair(
        [helper.make_node("Unsqueeze", ["a", "ax"], ["u"]), helper.make_node("Squeeze", ["u", "ax"], ["y"])],
        "y", ["N", 3, 5, 5], [("ax", np.array([2], np.int64))]),
    "lrn": conv_pair([helper.make_node("LRN", ["a"], ["y"], size=3, alpha=0.01, beta=0.7, bias=1.5)], "y",
                     ["N", 3, 5, 5]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_float_matches_onnxruntime(name):
    m = CASES[name]
    x = np.random.default_rng(1).normal(size=(4, 2, 5, 5)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    design = nnforge.compile(m, calibration=x, bits=8) if name != "lrn" else None
    g = design.float_graph if design else nnforge.frontend.import_onnx(m)
    np.testing.assert_allclose(run_float(g, x)[0], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in CASES if n != "lrn"])
def test_integer_within_quantization_bound(name):
    x = np.random.default_rng(2).normal(size=(64, 2, 5, 5)).astype(np.float32)
    design = nnforge.compile(CASES[name], calibration=x, bits=12)
    y = dequantize(design.predict(x), design.output_type)
    ref = design.predict_float(x)
    # 12-bit activations: a few output steps of error at most (inputs, weights, rounding)
    steps = np.abs(y - ref).max() / design.output_type.scale
    assert steps <= 24, steps
    assert np.abs(y - ref).max() <= 0.02 * np.abs(ref).max()


def test_lrn_is_float_only():
    x = np.random.default_rng(3).normal(size=(8, 2, 5, 5)).astype(np.float32)
    with pytest.raises(Exception, match="LRN has no integer implementation yet"):
        nnforge.compile(CASES["lrn"], calibration=x)


@pytest.mark.parametrize("nodes, shape, msg", [
    ([helper.make_node("Concat", ["a", "b"], ["y"], axis=0)], ["M", 3, 5, 5], "Concat over the batch axis"),
    ([helper.make_node("Transpose", ["a"], ["y"], perm=[1, 0, 2, 3])], [3, "N", 5, 5], "moves the batch axis"),
])
def test_batch_axis_refused(nodes, shape, msg):
    m = conv_pair(nodes, "y", shape)
    with pytest.raises(nnforge.ModelImportError, match=msg):
        nnforge.frontend.import_onnx(m)
