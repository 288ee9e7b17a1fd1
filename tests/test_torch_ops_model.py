"""A PyTorch CNN with the activations current exporters write: input normalization inside
the model, PReLU with a slope per channel, SiLU, ELU, erf-GELU, Hardtanh and average
pooling, trained on scikit-learn's digits, exported with torch.onnx, imported with its
patterns recognized, compiled at 8 bits within 2 points of the float model and bit-exact
on the C, HLS and Verilog targets. Plus the PRelu op's shape rule and integer semantics."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.frontend import import_onnx
from nnforge.ir import run_float
from nnforge.ir.ops import op_def
from nnforge.passes import run_float_pipeline

torch = pytest.importorskip("torch")
nn = torch.nn


class Net(nn.Module):
    """(x - mean) / std, then Conv-PReLU-AvgPool, Conv-SiLU-AvgPool and four Linear layers
    with ELU, GELU and Hardtanh between them. The first Conv has no padding, so the whole
    normalization folds into it."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([[[0.3]]]))
        self.register_buffer("std", torch.tensor([[[0.4]]]))
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3), nn.PReLU(num_parameters=8), nn.AvgPool2d(2),  # 8x6x6 -> 8x3x3
            nn.Conv2d(8, 16, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2, ceil_mode=False, padding=1,
                                                                   count_include_pad=False))  # 16x2x2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ELU(), nn.Linear(32, 32), nn.GELU(),
                                  nn.Linear(32, 16), nn.Hardtanh(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.features((x - self.mean) / self.std))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return train_test_split(x, d.target, test_size=0.2, random_state=0)


@pytest.fixture(scope="module")
def exported(digits, tmp_path_factory):
    """The trained model, exported (dynamo; the TorchScript exporter if that fails) at
    opset 18, where GELU is the erf pattern (from opset 20 the exporter writes Gelu)."""
    from conftest import train_classifier

    x_train, _, y_train, _ = digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads spinning on a busy 2-core machine are far slower
    try:
        torch.manual_seed(0)
        model = Net()
        with torch.no_grad():  # distinct slopes from the start, some negative
            model.features[1].weight.copy_(torch.linspace(-0.4, 0.6, 8))
        train_classifier(model, torch.from_numpy(x_train), torch.from_numpy(y_train), steps=150, lr=1e-2)
        path = tmp_path_factory.mktemp("torch_ops") / "model.onnx"
        example = (torch.zeros(2, 1, 8, 8),)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model, example, str(path), dynamo=True, input_names=["input"],
                                  output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                  opset_version=18)
            except Exception:  # noqa: BLE001 - an exporter that cannot: the other one
                torch.onnx.export(model, example, str(path), dynamo=False, input_names=["input"],
                                  output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                                  opset_version=18)
    finally:
        torch.set_num_threads(threads)
    return model, path


def test_torch_ops_model_on_every_target(digits, exported):
    x_train, x_test, _, y_test = digits
    model, path = exported
    onnx_ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert {"Sub", "Div", "PRelu", "Erf", "Sigmoid", "Elu", "Clip", "AveragePool"} <= set(onnx_ops), onnx_ops

    # imported: the normalization folded into the first Conv, GELU and SiLU one node each
    g = run_float_pipeline(import_onnx(path))
    ops = [n.op for n in g.topo()]
    assert ops[0] == "Conv" and not {"Sub", "Div", "Add", "Mul"} & set(ops), ops
    assert (ops.count("Gelu"), ops.count("Silu"), ops.count("PRelu"), ops.count("Elu")) == (1, 1, 1, 1), ops
    prelu = next(n for n in g.topo() if n.op == "PRelu")
    assert np.unique(g.consts[prelu.inputs[1]]).size == 8  # a slope per channel

    # float: interpreter == onnxruntime == torch
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x_test})[0]
    np.testing.assert_allclose(run_float(g, x_test)[0], ref, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        np.testing.assert_allclose(model(torch.from_numpy(x_test)).numpy(), ref, rtol=1e-4, atol=1e-4)
    float_acc = float((ref.argmax(1) == y_test).mean())
    assert float_acc > 0.9, "training failed; the test would prove nothing"

    # 8 bits: within 2 points of float; every target bit-exact with golden
    design = nnforge.compile(path, calibration=x_train[:500], bits=8)
    assert "PRelu" in {n.op for n in design.qgraph.topo()}
    golden_acc = float((design.predict(x_test).argmax(1) == y_test).mean())
    assert golden_acc >= float_acc - 0.02, (golden_acc, float_acc)
    res = design.verify(x_test[:32], backends=["c", "hls", "verilog"])
    assert {k: b.mismatches for k, b in res.backends.items()} == {"c": 0, "hls": 0, "verilog": 0}


# ---- the PRelu op -------------------------------------------------------------------------

def prelu_model(slope: np.ndarray, shape=(3, 2, 2)) -> onnx.ModelProto:
    x, y = (helper.make_tensor_value_info(t, TensorProto.FLOAT, ["N", *shape]) for t in "xy")
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "s"], ["y"])], "g", [x], [y],
                              [numpy_helper.from_array(np.asarray(slope, np.float32), "s")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)], ir_version=8)


@pytest.mark.parametrize("slope, op", [
    (np.array([0.5, -1.0, 2.0]).reshape(3, 1, 1), "PRelu"),  # per channel
    (np.array([0.5, -1.0, 2.0]).reshape(1, 3, 1, 1), "PRelu"),  # per channel, with the batch axis
    (np.array([0.25]), "LeakyRelu"),  # one slope
    (np.array([0.5, -1.0]), "Add"),  # per column (ONNX broadcasts from the right): Relu + slope * min(x, 0)
])
def test_prelu_import_matches_onnxruntime(slope, op):
    m = prelu_model(slope)
    g = import_onnx(m)
    assert [n.op for n in g.topo()][-1] == op
    x = np.random.default_rng(0).normal(0, 2, (16, 3, 2, 2)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(run_float(g, x)[0], ref)


@pytest.mark.parametrize("slope_shape, x_shape, ok", [
    ((3, 1, 1), (3, 4, 5), True), ((3,), (3,), True), ((), (3, 4), True), ((1,), (3, 4), True),
    ((3, 1), (3, 4), True), ((1, 1, 1), (3, 4, 5), True),
    ((4,), (3, 4), False), ((3, 4), (3, 4), False), ((2, 1), (3, 4), False), ((1, 3, 1), (3, 4), False),
])
def test_prelu_shape_rule(slope_shape, x_shape, ok):
    shape = op_def("PRelu").shape
    if ok:
        assert shape({}, [x_shape, slope_shape]) == [x_shape]
    else:
        with pytest.raises(ValueError, match="PRelu: slope of shape .* (per channel|more axes)"):
            shape({}, [x_shape, slope_shape])


def test_prelu_integer_semantics():
    """Golden: ``x << mult_frac`` at and above 0, ``x * mult[c]`` below, one rounding; the
    slopes as integers at the scale of the constant's type, one mult_frac for all."""
    m = prelu_model(np.array([0.3, -0.7, 1.9]).reshape(3, 1, 1))
    x = np.random.default_rng(3).normal(0, 1.5, (64, 3, 2, 2)).astype(np.float32)
    design = nnforge.compile(m, calibration=x, bits=8)
    q = design.qgraph
    node = next(n for n in q.topo() if n.op == "PRelu")
    mult, m_t = np.asarray(q.consts[node.inputs[1]]).reshape(-1), q.qtype(node.inputs[1])
    assert (m_t.width, m_t.frac) == (8, 6) and mult.tolist() == [19, -45, 122]  # round(slope * 2**6)
    xq = design.quantize_input(x)
    x_t, y_t = q.qtype(node.inputs[0]), q.qtype(node.outputs[0])
    acc = np.where(xq >= 0, xq.astype(np.int64) << 6, xq * mult.reshape(3, 1, 1))
    s = x_t.frac + 6 - y_t.frac
    want = np.clip((acc + (1 << (s - 1))) >> s, y_t.lo, y_t.hi)
    np.testing.assert_array_equal(design.predict_int(xq), want)
