"""QONNX models (Quant nodes as Brevitas / QKeras export them through the qonnx package):
compiled without calibration at 4 and 2 bits, every backend equal to golden, golden close
to qonnx's own execution of the model."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nnforge
from conftest import ROOT

import qonnx.core.onnx_exec as qonnx_exec  # noqa: E402  (a test dependency: pyproject [test])
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.transformation.general import SortGraph  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402

DOMAIN = "qonnx.custom_op.general"
EX = ROOT / "examples" / "digits_cnn"


def _activations(model: onnx.ModelProto, names, x):
    """Float values of tensors ``names`` of the float model on ``x`` (onnxruntime)."""
    import onnxruntime as ort
    m = onnx.ModelProto.FromString(model.SerializeToString())
    m.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    m.ir_version = min(m.ir_version, 8)
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = s.run(list(names), {m.graph.input[0].name: x.astype(np.float32)})
    return dict(zip(names, outs))


def _const(name, v):
    return onnx.numpy_helper.from_array(np.asarray(v, dtype=np.float32), name)


def make_qonnx_cnn(weight_bits: int, act_bits: int, bipolar_classifier: bool = False) -> onnx.ModelProto:
    """The bundled digits CNN with QONNX Quant nodes: the input at 8 bits, every Relu's
    output and the pooled features at ``act_bits`` (unsigned), the logits at 8 bits
    (signed), and every weight at ``weight_bits`` (signed, narrow, one scale per output
    channel); scales from the float model's ranges on the calibration data."""
    model = onnx.load(EX / "model.onnx")
    cal = np.load(EX / "calibration.npz")["x"][:128]
    acts = {"image": (8, False), "relu": (act_bits, False), "relu_1": (act_bits, False), "view": (act_bits, False),
            "logits": (8, True)}
    ranges = _activations(model, list(acts), cal)
    g = model.graph
    nodes, inits = [], list(g.initializer)
    for n in g.node:
        nodes.append(n)
    renamed = {}
    for t, (bits, signed) in acts.items():
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        scale = float(np.abs(ranges[t]).max()) / hi
        inits += [_const(f"{t}_s", scale), _const(f"{t}_z", 0.0), _const(f"{t}_b", bits)]
        q = helper.make_node("Quant", [t, f"{t}_s", f"{t}_z", f"{t}_b"], [f"{t}_q"], domain=DOMAIN,
                             signed=int(signed), narrow=0, rounding_mode="ROUND")
        renamed[t] = f"{t}_q"
        nodes.append(q)
    in_scale = {"features.0.weight": "image", "features.4.weight": "relu", "classifier.weight": "view"}
    for w in ("features.0.weight", "features.4.weight", "classifier.weight"):
        arr = onnx.numpy_helper.to_array(next(i for i in inits if i.name == w))
        b_name = w.replace("weight", "bias")
        b_init = next(i for i in inits if i.name == b_name)
        bias = onnx.numpy_helper.to_array(b_init).astype(np.float64)
        s_x = float(onnx.numpy_helper.to_array(next(i for i in inits if i.name == f"{in_scale[w]}_s")))
        if bipolar_classifier and w == "classifier.weight":
            scale = np.abs(arr).mean(axis=1, keepdims=True)
            inits.append(_const(f"{w}_s", scale))
            nodes.append(helper.make_node("BipolarQuant", [w, f"{w}_s"], [f"{w}_q"], domain=DOMAIN))
        else:
            hi = (1 << (weight_bits - 1)) - 1
            scale = np.abs(arr).reshape(len(arr), -1).max(axis=1).reshape((-1,) + (1,) * (arr.ndim - 1)) / hi
            inits += [_const(f"{w}_s", scale), _const(f"{w}_z", 0.0), _const(f"{w}_b", weight_bits)]
            nodes.append(helper.make_node("Quant", [w, f"{w}_s", f"{w}_z", f"{w}_b"], [f"{w}_q"], domain=DOMAIN,
                                          signed=1, narrow=1, rounding_mode="ROUND"))
        renamed[w] = f"{w}_q"
        # the bias as integers at the accumulator scale s_x * s_w, as Brevitas exports it
        acc_scale = s_x * np.float32(scale).astype(np.float64).reshape(-1)
        b_init.CopyFrom(_const(b_name, np.round(bias / acc_scale) * acc_scale))
    for n in nodes:  # readers of a quantized tensor read its Quant's output
        if n.op_type not in ("Quant", "BipolarQuant"):
            n.input[:] = [renamed.get(i, i) for i in n.input]
    outputs = [helper.make_tensor_value_info("logits_q", TensorProto.FLOAT, [1, 10])]
    inputs = [helper.make_tensor_value_info(g.input[0].name, TensorProto.FLOAT, [1, 1, 8, 8])]
    graph = helper.make_graph(nodes, "qonnx_cnn", inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(DOMAIN, 1)])
    m.ir_version = 8  # qonnx executes standard nodes with onnxruntime
    wrapped = ModelWrapper(m).transform(SortGraph()).transform(InferShapes())
    return wrapped.model


def _ir8_make_model(graph, **kwargs):
    """qonnx runs every standard node as a one-node onnxruntime model made with onnx's
    default IR version, which this onnx (IR 14) makes newer than onnxruntime reads."""
    m = _qonnx_make_model(graph, **kwargs)
    m.ir_version = 8
    return m


_qonnx_make_model = qonnx_exec.qonnx_make_model


def _qonnx_run(model, x):
    qonnx_exec.qonnx_make_model = _ir8_make_model
    w = ModelWrapper(model)
    name = model.graph.input[0].name
    return np.concatenate([qonnx_exec.execute_onnx(w, {name: x[i:i + 1].astype(np.float32)})["logits_q"]
                           for i in range(len(x))])


@pytest.mark.parametrize("bits", [4, 2])
def test_qonnx_cnn_compiles_and_every_backend_matches(bits):
    model = make_qonnx_cnn(weight_bits=bits, act_bits=bits)
    test = np.load(EX / "test.npz")
    x, y = test["x"], test["y"]
    design = nnforge.compile(model)
    assert design.config.from_model
    widths = {design.qgraph.qtype(n.inputs[1]).width for n in design.qgraph.topo() if n.op in ("Conv", "Dense")}
    assert widths == {bits, 2}  # the model's own weight widths (the pooled mean's ones are 2-bit)
    assert design.qgraph.qtype(design.qgraph.inputs[0]).width == 8
    # golden against qonnx's execution of the same model, on the logits' 8-bit grid
    ref = _qonnx_run(model, x[:100])
    logit_scale = design.output_type.scale
    ours = design.predict_int(design.quantize_input(x[:100])).reshape(100, -1)
    theirs = np.rint(ref.reshape(100, -1) / logit_scale).astype(np.int64)
    diff = np.abs(ours - theirs)
    assert (diff == 0).mean() >= 0.99 and diff.max() <= 1, ((diff == 0).mean(), diff.max())
    res = design.verify(x[:30], y[:30], backends=("golden", "c", "hls", "verilog"))
    assert res.ok, str(res)
    # the integers keep the accuracy of the fake-quantized float model (2 bits without
    # quantization-aware training is not meant to be accurate)
    acc = float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean())
    acc_fake = float((design.predict_float(x).reshape(len(x), -1).argmax(1) == y).mean())
    assert abs(acc - acc_fake) <= 0.01, (acc, acc_fake)


def test_bipolar_weights():
    model = make_qonnx_cnn(weight_bits=4, act_bits=4, bipolar_classifier=True)
    design = nnforge.compile(model)
    dense = next(n for n in design.qgraph.topo() if n.op == "Dense")
    w = design.qgraph.consts[dense.inputs[1]]
    assert set(np.unique(w)) <= {-1, 1}
    x = np.load(EX / "test.npz")["x"][:20]
    ref = _qonnx_run(model, x)
    ours = design.predict_int(design.quantize_input(x)).reshape(20, -1)
    assert np.abs(ours - np.rint(ref.reshape(20, -1) / design.output_type.scale)).max() <= 1
    res = design.verify(x, backends=("golden", "c"))
    assert res.ok, str(res)


def test_bipolar_activation_is_refused_not_approximated():
    """A BipolarQuant on an activation means sign(x): the integer path would round instead,
    so it is refused with the reason."""
    from nnforge.passes import QuantizeError
    model = make_qonnx_cnn(weight_bits=4, act_bits=4)
    for n in model.graph.node:
        if n.op_type == "Quant" and n.input[0] == "relu_1":
            n.op_type = "BipolarQuant"
            del n.input[2:]
            del n.attribute[:]
    with pytest.raises(QuantizeError, match="BipolarQuant"):
        nnforge.compile(model)


def _binary_mlp(seed: int = 0) -> onnx.ModelProto:
    """x -> Quant (8-bit) -> MatMul by 4-bit weights + bias -> BipolarQuant (sign) -> MatMul by
    bipolar weights -> Quant (8-bit signed): a binarized hidden layer as FINN runs them."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (64, 32)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (32, 10)).astype(np.float32)
    s_x, s_w1 = 1.0 / 255, np.abs(w1).max(axis=0, keepdims=True) / 7
    acc_scale = s_x * s_w1.astype(np.float64).reshape(-1)
    b1 = (np.round(rng.normal(0, 0.5, 32) / acc_scale) * acc_scale).astype(np.float32)  # on the acc grid
    inits = [_const("s_x", s_x), _const("z", 0.0), _const("b8", 8), _const("w1", w1), _const("s_w1", s_w1),
             _const("b4", 4), _const("b1", b1), _const("s_h", 0.5), _const("w2", w2),
             _const("s_w2", np.abs(w2).mean(axis=0, keepdims=True)), _const("s_y", 0.25)]
    nodes = [helper.make_node("Quant", ["x", "s_x", "z", "b8"], ["xq"], domain=DOMAIN, signed=0, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("Quant", ["w1", "s_w1", "z", "b4"], ["w1q"], domain=DOMAIN, signed=1, narrow=1,
                              rounding_mode="ROUND"),
             helper.make_node("MatMul", ["xq", "w1q"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("BipolarQuant", ["a1", "s_h"], ["h"], domain=DOMAIN),
             helper.make_node("BipolarQuant", ["w2", "s_w2"], ["w2q"], domain=DOMAIN),
             helper.make_node("MatMul", ["h", "w2q"], ["m2"]),
             helper.make_node("Quant", ["m2", "s_y", "z", "b8"], ["y"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND")]
    graph = helper.make_graph(nodes, "binary_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(DOMAIN, 1)])
    m.ir_version = 8
    return ModelWrapper(m).transform(InferShapes()).model


def _gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u): a float32 sum of k + 1 terms, in any order, is within
    gamma_k * sum|terms| of the exact sum."""
    u = float(np.finfo(np.float32).eps) / 2
    return k * u / (1 - k * u)


def _binary_mlp_integers(model: onnx.ModelProto, x: np.ndarray):
    """The binary MLP on integers, exactly: the hidden sign of ``acc + bias`` (the bias on the
    accumulator's grid) and the logits ``round(c * s_h * s_w2 / s_y)`` (``c`` the sum of +-1
    products), ties to even, saturated to 8 bits. Also, per sample, whether a float32 execution (any summation order) must give
    the same integers: every hidden accumulator nonzero (its real value then lies a whole step
    ``s_x * s_w1`` from 0, far beyond the float32 rounding, which is checked) and every logit
    further from a half than the float32 sum of its 32 terms can move it."""
    c = {i.name: onnx.numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    k = np.clip(np.rint(x.astype(np.float32) / np.float32(c["s_x"])), 0, 255)
    w1 = np.clip(np.rint(c["w1"].astype(np.float32) / c["s_w1"].astype(np.float32)), -7, 7)
    step = c["s_x"] * c["s_w1"].reshape(-1)
    bias = np.rint(c["b1"] / step)
    acc = (k.astype(np.int64) @ w1.astype(np.int64)) + bias.astype(np.int64)
    terms = (k * c["s_x"]) @ np.abs(w1 * c["s_w1"]) + np.abs(c["b1"])
    assert (_gamma(65) * terms + np.abs(c["b1"] - bias * step)).max() < step.min() / 2
    h = np.where(acc >= 0, 1, -1)
    term = c["s_h"] * c["s_w2"].reshape(-1) / c["s_y"]  # one +-1 product, on the logits' grid
    scaled = (h @ np.where(c["w2"] >= 0, 1, -1)) * term  # exact in float64
    logits = np.clip(np.rint(scaled), -128, 127).astype(np.int64)
    off_half = np.abs(scaled - np.floor(scaled) - 0.5) > _gamma(32) * 32 * term
    return logits, (acc != 0).all(axis=1) & off_half.all(axis=1)


def test_bipolar_activation_after_a_linear_layer(tmp_path):
    """sign(acc) is the saturation of 2 acc + 1 to [-1, 1]: golden equals the integer
    evaluation on every output, and qonnx's float execution on every sample where float32
    rounding cannot decide a sign or a rounding (a zero accumulator is +1 in golden but the
    sign of a rounding error in float32, which depends on the CPU's summation order); every
    backend equals golden."""
    model = _binary_mlp()
    design = nnforge.compile(model)
    hidden = next(n for n in design.qgraph.topo() if n.op == "Dense")
    t = design.qgraph.qtype(hidden.outputs[0])
    assert (t.lo, t.hi) == (-1, 1)
    x = np.load(ROOT / "examples" / "digits_mlp" / "test.npz")["x"][:120].reshape(120, -1)
    x = x / x.max()
    env_h = nnforge.ir.run_int(design.qgraph, design.quantize_input(x), keep=True)[hidden.outputs[0]]
    assert set(np.unique(env_h)) == {-1, 1}
    ours = design.predict_int(design.quantize_input(x)).reshape(len(x), -1)
    exact, decided = _binary_mlp_integers(model, x)
    assert np.array_equal(ours, exact)
    assert decided.sum() >= len(x) - 2, decided.sum()
    qonnx_exec.qonnx_make_model = _ir8_make_model
    ref = np.concatenate([qonnx_exec.execute_onnx(ModelWrapper(model), {"x": x[i:i + 1].astype(np.float32)})["y"]
                          for i in range(len(x))])
    assert np.array_equal(ours[decided], np.rint(ref[decided] / 0.25).astype(np.int64))
    res = design.verify(x[:20], backends=("golden", "c", "hls", "verilog"))
    assert res.ok, str(res)
