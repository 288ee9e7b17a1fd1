"""Models quantized by onnxruntime (QDQ): compiled without calibration, every backend equal
to golden, and golden's integers equal to an exact evaluation of the same QDQ model
(tests/qdq_reference.py) and to onnxruntime's where onnxruntime's kernels are exact.

onnxruntime's u8 x s8 kernels on x86-64 CPUs without VNNI (AVX2, AVX-512 without VNNI)
add two products into a saturating 16-bit lane (vpmaddubsw), so its integers are not the
exact ones for 8-bit weights (up to 101 LSB apart on the per-channel CNN). With 7-bit
weights (``reduce_range``: |w| <= 64) the pair sums stay within 2 * 255 * 64 = 32640 < 2**15
and every kernel is exact: there golden and the reference are compared with onnxruntime."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nnforge
import qdq_reference
from conftest import ROOT
from nnforge.frontend import import_onnx
from nnforge.frontend.onnx_import import ImportError_
from nnforge.passes import QuantizeError

import onnxruntime as ort  # noqa: E402
from onnxruntime import quantization  # noqa: E402

PAIR_SAFE_WEIGHT = 64  # 2 * 255 * 64 <= 32767: a u8 x s8 pair sum cannot saturate 16 bits


def _qdq(tmp_path, example: str, per_channel: bool, n_cal: int = 64, fmt: str = "QDQ",
         reduce_range: bool = False) -> onnx.ModelProto:
    """``quantize_static`` on a bundled float model: uint8 activations, int8 weights (7-bit
    with ``reduce_range``), in QDQ format or onnxruntime's QOperator format (QLinearConv,
    QGemm, QLinearAdd, ...)."""
    d = ROOT / "examples" / example
    cal = np.load(d / "calibration.npz")["x"][:n_cal].astype(np.float32)
    name = onnx.load(d / "model.onnx").graph.input[0].name

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self.it = iter({name: cal[i:i + 1]} for i in range(len(cal)))

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / f"{example}_{'pc' if per_channel else 'pt'}_{fmt}{'_7bit' if reduce_range else ''}.onnx"
    quantization.quantize_static(str(d / "model.onnx"), str(out), Reader(),
                                 quant_format=getattr(quantization.QuantFormat, fmt),
                                 per_channel=per_channel, reduce_range=reduce_range,
                                 activation_type=quantization.QuantType.QUInt8,
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


def _logits(model) -> str:
    """The integers golden outputs: the last integer output (of a QuantizeLinear or QLinear
    op), or those dequantized for a final Softmax (which runs on the host)."""
    nodes = list(model.graph.node)
    softmax = next((n for n in nodes if n.op_type == "Softmax"), None)
    if softmax is not None:
        return next(n for n in nodes if softmax.input[0] in n.output).input[0]
    return [n for n in nodes if n.op_type in QUANTIZING][-1].output[0]


def _golden(design, x) -> np.ndarray:
    """Golden's output integers with the model's zero point (as the model stores them)."""
    return design.predict_int(design.quantize_input(x)).reshape(len(x), -1) + design.output_type.zero


def _assert_agree(ours, theirs, what: str) -> None:
    """Equal on at least 99% of the integers and never more than 1 apart: the requantizations
    round the same real value, golden by a 31-bit integer multiplier and a shift, the model's
    definition by a float32 multiplier, so they can part only where it lies within a float32
    rounding of a half."""
    diff = np.abs(ours - theirs)
    equal, worst = float((diff == 0).mean()), int(diff.max())
    assert equal >= 0.99 and worst <= 1, (what, equal, worst)


def _compile_against_references(tmp_path, example: str, per_channel: bool, fmt: str, x: np.ndarray):
    """Compile the model as ``quantize_static`` writes it and check golden against the exact
    reference; then tie both to onnxruntime on the same model with 7-bit weights, where
    onnxruntime's integer kernels are exact on every x86-64 CPU. Returns the 8-bit design."""
    model = _qdq(tmp_path, example, per_channel, fmt=fmt)
    design = nnforge.compile(model)  # no calibration data: the model states its quantization
    _assert_agree(_golden(design, x), qdq_reference.integers(model, _logits(model), x), "golden vs reference")
    narrow = _qdq(tmp_path, example, per_channel, fmt=fmt, reduce_range=True)
    weights = [onnx.numpy_helper.to_array(i) for i in narrow.graph.initializer if i.data_type == TensorProto.INT8]
    assert max(int(np.abs(w.astype(np.int64)).max()) for w in weights) <= PAIR_SAFE_WEIGHT
    theirs = _ort_integers(narrow, _logits(narrow), x)
    _assert_agree(qdq_reference.integers(narrow, _logits(narrow), x), theirs, "reference vs onnxruntime, 7-bit")
    _assert_agree(_golden(nnforge.compile(narrow), x), theirs, "golden vs onnxruntime, 7-bit")
    return design


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
def test_cnn_qdq_matches_onnxruntime_and_every_backend(tmp_path, per_channel):
    test = np.load(ROOT / "examples" / "digits_cnn" / "test.npz")
    x, y = test["x"], test["y"]
    design = _compile_against_references(tmp_path, "digits_cnn", per_channel, "QDQ", x)
    assert design.config.from_model
    assert design.input_type.real_scale > 0 and design.output_type.zero != 0  # asymmetric logits
    acc = float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean())
    assert acc >= 0.96
    backends = ("golden", "c", "hls", "verilog")
    res = design.verify(x[:40], y[:40], backends=backends)
    assert res.ok, str(res)
    for b in backends:
        assert res.backends[b].mismatches == 0


def test_mlp_qdq_with_softmax_keeps_logits(tmp_path):
    test = np.load(ROOT / "examples" / "digits_mlp" / "test.npz")
    x, y = test["x"], test["y"]
    design = _compile_against_references(tmp_path, "digits_mlp", False, "QDQ", x)
    res = design.verify(x[:60], y[:60], backends=("golden", "c", "verilog"))
    assert res.ok, str(res)


@pytest.mark.parametrize("example,fmt", [("digits_cnn", "QOperator"), ("digits_resnet", "QDQ"),
                                        ("digits_resnet", "QOperator"), ("digits_mlp", "QOperator")])
def test_more_formats_match_onnxruntime(tmp_path, example, fmt):
    """QOperator (QLinearConv, QGemm, QLinearAdd, QLinearSoftmax) and the residual network's
    Adds of two scales, against the exact reference and onnxruntime; C equal to golden."""
    test = np.load(ROOT / "examples" / example / "test.npz")
    x, y = test["x"], test["y"]
    design = _compile_against_references(tmp_path, example, False, fmt, x)
    ops = {n.op_type for n in onnx.load(tmp_path / f"{example}_pt_{fmt}.onnx").graph.node}
    assert ("QLinearConv" in ops or "QGemm" in ops) if fmt == "QOperator" else "QuantizeLinear" in ops
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


def test_reference_rounds_half_to_even_and_saturates():
    s = np.float32(1.0)
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 300.0, -5.0], np.float32)
    assert qdq_reference.quantize(x, s, np.uint8(0)).tolist() == [0, 2, 2, 0, 0, 255, 0]
    assert qdq_reference.quantize(x, s, np.int8(3)).tolist() == [3, 5, 5, 3, 1, 127, -2]
    # integer products summed exactly: 4 * 255 * -128, where pairs saturated to 16 bits give 2 * -32768
    a, b = np.full((1, 4), 255, np.uint8), np.full((4, 1), -128, np.int8)
    assert qdq_reference.OPS["MatMulInteger"](a, b).tolist() == [[-130560]]


def test_reference_add_and_mean_round_the_exact_value_once():
    """Add and ReduceMean of dequantized tensors, quantized: the exact rational value rounded
    half to even (checked with Fractions), including exact ties."""
    from fractions import Fraction
    rng = np.random.default_rng(5)
    sa, sb, sc = (np.float32(v) for v in rng.uniform(0.01, 0.1, 3))
    qa, qb = rng.integers(-300, 300, (2, 64))
    a, b = qdq_reference.Deq(qa, sa), qdq_reference.Deq(qb, sb)
    got_add = qdq_reference.quantize(qdq_reference.OPS["Add"](a, b), sc, np.int16(0))
    rows = qdq_reference.Deq(qa.reshape(8, 8), sa)
    got_mean = qdq_reference.quantize(qdq_reference.OPS["ReduceMean"](rows, [1], keepdims=0), sc, np.int16(0))

    def rne(f: Fraction) -> int:
        fl = f.numerator // f.denominator
        rest = f - fl
        return fl + (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and fl % 2 == 1))
    fa, fb, fc = Fraction(float(sa)), Fraction(float(sb)), Fraction(float(sc))
    assert got_add.tolist() == [rne((int(p) * fa + int(q) * fb) / fc) for p, q in zip(qa, qb)]
    assert got_mean.tolist() == [rne(sum(int(p) for p in row) * fa / 8 / fc) for row in qa.reshape(8, 8)]
    ties = qdq_reference.Deq(np.array([1, 3, 5, -1, -3]), np.float32(0.5))
    assert qdq_reference.quantize(qdq_reference.exact(ties), np.float32(1), np.int8(0)).tolist() == [0, 2, 2, 0, -2]
