"""Models quantized by onnxruntime (QDQ): compiled without calibration, every backend equal
to golden, and golden's integers equal to onnxruntime's on the same QDQ model."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nnforge
from conftest import ROOT
from nnforge.frontend import import_onnx
from nnforge.frontend.onnx_import import ImportError_
from nnforge.passes import QuantizeError

import onnxruntime as ort  # noqa: E402
from onnxruntime import quantization  # noqa: E402


def _qdq(tmp_path, example: str, per_channel: bool, n_cal: int = 64, fmt: str = "QDQ") -> onnx.ModelProto:
    """``quantize_static`` on a bundled float model: uint8 activations, int8 weights, in
    QDQ format or onnxruntime's QOperator format (QLinearConv, QGemm, QLinearAdd, ...)."""
    d = ROOT / "examples" / example
    cal = np.load(d / "calibration.npz")["x"][:n_cal].astype(np.float32)
    name = onnx.load(d / "model.onnx").graph.input[0].name

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.it = iter({name: cal[i:i + 1]} for i in range(len(cal)))

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / f"{example}_{'pc' if per_channel else 'pt'}_{fmt}.onnx"
    quantization.quantize_static(str(d / "model.onnx"), str(out), Reader(),
                                 quant_format=getattr(quantization.QuantFormat, fmt),
                                 per_channel=per_channel, activation_type=quantization.QuantType.QUInt8,
                                 weight_type=quantization.QuantType.QInt8)
    return onnx.load(out)


def _ort_integers(model: onnx.ModelProto, quant_output: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime's integers at the output of QuantizeLinear ``quant_output``, per sample."""
    m = onnx.ModelProto.FromString(model.SerializeToString())
    m.graph.output.append(helper.make_tensor_value_info(quant_output, TensorProto.UINT8, None))
    m.ir_version = min(m.ir_version, 8)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    sess_opts = m.graph.input[0].name
    return np.concatenate([sess.run([quant_output], {sess_opts: x[i:i + 1].astype(np.float32)})[0]
                           for i in range(len(x))]).reshape(len(x), -1).astype(np.int64)


QUANTIZING = ("QuantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd")


def _last_quantize(model, before_op: str | None = None) -> str:
    """The last integer output (of a QuantizeLinear or QLinear op), or with ``before_op``
    the integers dequantized for the first ``before_op``."""
    nodes = list(model.graph.node)
    if before_op:
        op = next(n for n in nodes if n.op_type == before_op)
        dq = next(n for n in nodes if op.input[0] in n.output)
        return dq.input[0]
    return [n for n in nodes if n.op_type in QUANTIZING][-1].output[0]


def _agreement(design, model, quant_output, x):
    ours = design.predict_int(design.quantize_input(x)).reshape(len(x), -1) + design.output_type.zero
    theirs = _ort_integers(model, quant_output, x)
    diff = np.abs(ours - theirs)
    return float((diff == 0).mean()), int(diff.max())


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_cnn_qdq_matches_onnxruntime_and_every_backend(tmp_path, per_channel):
    model = _qdq(tmp_path, "digits_cnn", per_channel)
    test = np.load(ROOT / "examples" / "digits_cnn" / "test.npz")
    x, y = test["x"], test["y"]
    design = nnforge.compile(model)  # no calibration data: the model states its quantization
    assert design.config.from_model
    assert design.input_type.real_scale > 0 and design.output_type.zero != 0  # asymmetric logits
    equal, worst = _agreement(design, model, _last_quantize(model), x)
    assert equal >= 0.99 and worst <= 1, (equal, worst)
    acc = float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean())
    assert acc >= 0.96
    backends = ("golden", "c", "hls", "verilog")
    res = design.verify(x[:40], y[:40], backends=backends)
    assert res.ok, str(res)
    for b in backends:
        assert res.backends[b].mismatches == 0


def test_mlp_qdq_with_softmax_keeps_logits(tmp_path):
    model = _qdq(tmp_path, "digits_mlp", per_channel=False)
    test = np.load(ROOT / "examples" / "digits_mlp" / "test.npz")
    x, y = test["x"], test["y"]
    design = nnforge.compile(model)
    equal, worst = _agreement(design, model, _last_quantize(model, before_op="Softmax"), x)
    assert equal >= 0.99 and worst <= 1, (equal, worst)
    res = design.verify(x[:60], y[:60], backends=("golden", "c", "verilog"))
    assert res.ok, str(res)


@pytest.mark.parametrize("example,fmt", [("digits_cnn", "QOperator"), ("digits_resnet", "QDQ"),
                                        ("digits_resnet", "QOperator"), ("digits_mlp", "QOperator")])
def test_more_formats_match_onnxruntime(tmp_path, example, fmt):
    """QOperator (QLinearConv, QGemm, QLinearAdd, QLinearSoftmax) and the residual network's
    Adds of two scales, against onnxruntime; C equal to golden."""
    model = _qdq(tmp_path, example, per_channel=False, fmt=fmt)
    ops = {n.op_type for n in model.graph.node}
    assert ("QLinearConv" in ops or "QGemm" in ops) if fmt == "QOperator" else "QuantizeLinear" in ops
    test = np.load(ROOT / "examples" / example / "test.npz")
    x, y = test["x"], test["y"]
    design = nnforge.compile(model)
    before = "Softmax" if example == "digits_mlp" and fmt == "QDQ" else None
    out = _last_quantize(model, before) if fmt == "QDQ" else next(
        n.output[0] for n in reversed(model.graph.node) if n.op_type in QUANTIZING)
    equal, worst = _agreement(design, model, out, x)
    assert equal >= 0.99 and worst <= 1, (equal, worst)
    assert float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean()) >= 0.96
    res = design.verify(x[:40], y[:40], backends=("golden", "c"))
    assert res.ok, str(res)


def test_unsupported_op_in_quantized_model_is_refused_with_reason(tmp_path):
    m = _tiny([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
               helper.make_node("Sigmoid", ["d"], ["y"])],
              [_c("s", np.float32(0.1)), _c("z", np.uint8(0))])
    with pytest.raises(QuantizeError, match="op Sigmoid is not supported yet in a model quantized elsewhere"):
        nnforge.compile(m)


def _tiny(nodes, inits, in_shape=(1, 4), out_shape=(1, 4)):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


def _c(name, v):
    return onnx.numpy_helper.from_array(np.asarray(v), name)


def test_dequantize_of_an_activation_needs_its_quantize():
    m = _tiny([helper.make_node("Relu", ["x"], ["r"]),
               helper.make_node("DequantizeLinear", ["r", "s", "z"], ["y"])],
              [_c("s", np.float32(0.1)), _c("z", np.uint8(0))])
    with pytest.raises(ImportError_, match="must follow a QuantizeLinear"):
        import_onnx(m)


def test_per_axis_activation_quantization_is_refused():
    m = _tiny([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)],
              [_c("s", np.full(4, 0.1, np.float32)), _c("z", np.zeros(4, np.uint8))])
    with pytest.raises(ImportError_, match="per-axis quantization of activations"):
        import_onnx(m)


def test_weights_keep_the_model_integers_and_real_rescale():
    """A hand-written QDQ Dense: int8 weights with per-channel scales, int8 activations;
    golden equals the exact rational result rounded once (checked with Fractions)."""
    from fractions import Fraction
    rng = np.random.default_rng(3)
    wq = rng.integers(-127, 128, size=(3, 4)).astype(np.int8)
    sw = np.array([0.02, 0.005, 0.011], np.float32)
    sx, sy = np.float32(0.05), np.float32(0.07)
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["w"], axis=0),
             helper.make_node("Gemm", ["xd", "w"], ["g"], transB=1),
             helper.make_node("QuantizeLinear", ["g", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    inits = [_c("sx", sx), _c("zx", np.int8(0)), _c("wq", wq), _c("sw", sw), _c("zw", np.zeros(3, np.int8)),
             _c("sy", sy), _c("zy", np.int8(5))]
    design = nnforge.compile(_tiny(nodes, inits, out_shape=(1, 3)))
    dense = next(n for n in design.qgraph.topo() if n.op == "Dense")
    assert np.array_equal(design.qgraph.consts[dense.inputs[1]], wq.astype(np.int64))
    x_int = rng.integers(-128, 128, size=(200, 4))
    got = design.predict_int(x_int)
    out_t = design.output_type
    assert (out_t.lo, out_t.hi, out_t.zero) == (-133, 122, 5)
    for xi, yi in zip(x_int, got):
        for n in range(3):
            acc = sum(int(a) * int(b) for a, b in zip(xi, wq[n]))
            exact = Fraction(acc) * Fraction(float(sx)) * Fraction(float(sw[n])) / Fraction(float(sy))
            want = min(max(int(np.floor(exact + Fraction(1, 2))), out_t.lo), out_t.hi)
            assert abs(int(yi[n]) - want) <= 1  # the 31-bit multiplier rounds the ratio
    # and almost always exactly
    exacts = [min(max(int(np.floor(Fraction(sum(int(a) * int(b) for a, b in zip(xi, wq[n]))) * Fraction(float(sx))
                                   * Fraction(float(sw[n])) / Fraction(float(sy)) + Fraction(1, 2))), out_t.lo),
                  out_t.hi) for xi in x_int for n in range(3)]
    assert np.array_equal(got.reshape(-1), np.array(exacts))


def test_c_float_wrapper_uses_the_real_scales(tmp_path):
    """nnforge_run_float quantizes the input with the model's real scale exactly like golden,
    and returns the logits' real values (softmax applied on top)."""
    from conftest import run_c_float_wrapper
    model = _qdq(tmp_path, "digits_mlp", per_channel=False, n_cal=16)
    design = nnforge.compile(model)
    x = np.load(ROOT / "examples" / "digits_mlp" / "test.npz")["x"][:40]
    got = run_c_float_wrapper(design, tmp_path, x)
    logits = design.predict_dequantized(x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert "#define NNFORGE_IN_SCALE" in (tmp_path / "out" / "c" / "nnforge_model.h").read_text()
