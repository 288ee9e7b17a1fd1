"""onnxruntime's dynamic quantization (DynamicQuantizeLinear, MatMulInteger, ConvInteger)
imports as the model's float function; a Mul / Add by a constant after a Dense / Conv
folds into it (passes/affine.py).

The quantized model's own outputs come from an exact evaluation of its graph
(tests/qdq_reference.py: integer products summed in int64, the float ops in float32), the
same on every CPU. onnxruntime's u8 x s8 MatMulInteger saturates pairs of products to
16 bits on x86-64 CPUs without VNNI, so it is compared only with 7-bit weights, where it
cannot (see tests/test_qdq.py)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.ir import Graph, Node, run_float
from nnforge.passes import fold_affine_into_linear
import qdq_reference
from conftest import ROOT
from test_qdq import PAIR_SAFE_WEIGHT


def _session(m):
    m = onnx.ModelProto.FromString(m.SerializeToString())
    m.ir_version = min(m.ir_version, 8)
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def _quantize_dynamic(tmp_path, reduce_range: bool = False) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    path = tmp_path / f"mlp_dynamic{'_7bit' if reduce_range else ''}.onnx"
    quantize_dynamic(str(ROOT / "examples" / "digits_mlp" / "model.onnx"), str(path), weight_type=QuantType.QInt8,
                     reduce_range=reduce_range)
    model = onnx.load(path)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in model.graph.node}
    return model


def test_quantize_dynamic_mlp(tmp_path):
    d = ROOT / "examples" / "digits_mlp"
    model = _quantize_dynamic(tmp_path)
    cal = np.load(d / "calibration.npz")["x"]
    test = np.load(d / "test.npz")
    x, y = test["x"], test["y"]
    # one sample at a time, as the model quantizes each batch with its own range
    ref = qdq_reference.per_sample(model, "probabilities", x)
    design = nnforge.compile(model, calibration=cal, scale="real")
    assert [n.op for n in design.qgraph.topo()] == ["Dense"] * 3  # scales and biases folded in
    # the float function is the model's up to its run-time activation quantization
    probs = design.predict_float(x).reshape(len(x), -1)
    assert np.abs(probs - ref).max() < 0.05
    assert (probs.argmax(1) == ref.argmax(1)).mean() > 0.99
    # with real scales the weights are the model's int8 integers
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dense = next(n for n in design.qgraph.topo() if n.op == "Dense")
    # the first MatMulInteger's B (onnxruntime names it fc0.weight_quantized or, from 1.32,
    # fc0.weight_Transposed_quantized)
    w0 = next(n.input[1] for n in model.graph.node if n.op_type == "MatMulInteger")
    assert np.array_equal(design.qgraph.consts[dense.inputs[1]], inits[w0].T.astype(np.int64))
    assert float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean()) >= 0.96
    res = design.verify(x[:60], y[:60], backends=("golden", "c"))
    assert res.ok, str(res)


def _ort_values(model, names, x) -> dict:
    """onnxruntime's values of tensors ``names``, one sample at a time, stacked."""
    m = onnx.ModelProto.FromString(model.SerializeToString())
    m.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names if n not in
                          {o.name for o in m.graph.output})
    m = onnx.shape_inference.infer_shapes(m)
    sess = _session(m)
    runs = [sess.run(names, {m.graph.input[0].name: x[i:i + 1]}) for i in range(len(x))]
    return {n: np.stack([r[k] for r in runs]) for k, n in enumerate(names)}


def test_dynamic_reference_is_onnxruntime_at_7_bit_weights(tmp_path):
    """With weights within [-64, 64] onnxruntime's MatMulInteger is exact on every x86-64 CPU:
    each DynamicQuantizeLinear and MatMulInteger of onnxruntime, given onnxruntime's own
    inputs, gives exactly the reference's integers (and scales). The float ops between them
    are not compared: onnxruntime may fuse them (MatMulIntegerToFloat)."""
    model = _quantize_dynamic(tmp_path, reduce_range=True)
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.data_type == TensorProto.INT8]
    assert max(int(np.abs(w.astype(np.int64)).max()) for w in weights) <= PAIR_SAFE_WEIGHT
    x = np.load(ROOT / "examples" / "digits_mlp" / "test.npz")["x"].astype(np.float32)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger")]
    names = sorted({t for n in nodes for t in (*n.input, *n.output) if t not in inits})
    theirs = _ort_values(model, names, x)
    for n in nodes:
        for i in range(len(x)):
            args = [inits[t] if t in inits else theirs[t][i] for t in n.input]
            want = qdq_reference.OPS[n.op_type](*args)
            for t, w in zip(n.output, want if isinstance(want, tuple) else (want,)):
                assert np.array_equal(theirs[t][i], w), (n.op_type, t, i)


def test_conv_integer_model():
    rng = np.random.default_rng(1)
    wq = rng.integers(0, 256, size=(4, 2, 3, 3)).astype(np.uint8)
    ws, wz = np.float32(0.01), np.uint8(128)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("Mul", ["xs", "ws"], ["s"]),
             helper.make_node("ConvInteger", ["xq", "wq", "xz", "wz"], ["acc"], pads=[1, 1, 1, 1]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["accf", "s"], ["y0"]),
             helper.make_node("Relu", ["y0"], ["y"])]
    inits = [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(np.array(ws), "ws"),
             numpy_helper.from_array(np.array(wz), "wz")]
    g = helper.make_graph(nodes, "ci", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.normal(0, 1, (40, 2, 6, 6)).astype(np.float32)
    ref = qdq_reference.per_sample(model, "y", x)
    # u8 x u8 ConvInteger is exact in onnxruntime on every x86-64 CPU (both operands widened
    # to 16 bits, pairs summed in 32), and after it come one Cast and one float32 Mul
    sess = _session(model)
    np.testing.assert_array_equal(np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))]), ref)
    design = nnforge.compile(model, calibration=x)
    assert [n.op for n in design.qgraph.topo()] == ["Conv"]
    got = design.predict_float(x)
    assert np.abs(got - ref).max() < 0.03 * np.abs(ref).max()  # the model quantizes x at run time
    # exactly the float Conv by (wq - wz) * ws (onnxruntime on that float model)
    w = (wq.astype(np.float32) - float(wz)) * ws
    fg = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                            helper.make_node("Relu", ["c"], ["y"])], "f",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
                           [numpy_helper.from_array(w, "w")])
    fsess = _session(helper.make_model(fg, opset_imports=[helper.make_opsetid("", 13)]))
    exact = np.concatenate([fsess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4)


def _dense_then(op, const, readers=1):
    g = Graph("t")
    g.add_input("x", (3,))
    g.add_const("W", np.arange(6, dtype=np.float32).reshape(2, 3) / 7)
    g.add_const("b", np.array([0.5, -1.0], np.float32))
    g.add_const("k", np.asarray(const, np.float32))
    g.add_node(Node("d", "Dense", ["x", "W", "b"], ["h"]))
    g.add_node(Node("m", op, ["h", "k"], ["y"]))
    g.outputs = ["y"]
    if readers == 2:
        g.add_node(Node("r", "Relu", ["h"], ["z"]))
        g.outputs.append("z")
    return g


@pytest.mark.parametrize("op,const", [("Mul", [2.0, -0.5]), ("Add", [1.0, 3.0]), ("Mul", 1.5), ("Add", [0.25])])
def test_fold_affine_keeps_the_function(op, const):
    g = _dense_then(op, const)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    before = run_float(g, x)[0]
    assert fold_affine_into_linear(g)
    g.verify()
    assert [n.op for n in g.topo()] == ["Dense"]
    np.testing.assert_allclose(run_float(g, x)[0], before, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("const,readers", [([[1.0], [2.0]], 1), ([2.0, 3.0], 2)])
def test_fold_affine_leaves_what_is_not_a_per_channel_affine(const, readers):
    g = _dense_then("Mul", const, readers)
    assert not fold_affine_into_linear(g)
