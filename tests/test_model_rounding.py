"""A model's own rounding after a Dense / Conv, kept exactly: QONNX ``Quant`` with
``ROUND`` (ties to even), ``FLOOR`` and ``CEIL`` on power-of-two scales (Brevitas'
fixed-point quantizers) - golden equals an independent evaluation of the QONNX definition
on every integer, with ties and saturation at the clamp bounds frequent by construction;
every backend equals golden."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import nnforge
from nnforge.ir.fixed import round_shift
from nnforge.passes.quantize import QuantizeError
from nnforge.persist import DesignFileError

DOMAIN = "qonnx.custom_op.general"
MODES = ("ROUND", "FLOOR", "CEIL")
RNG = np.random.default_rng(7)
S_X = 2.0 ** -3  # input: 6-bit signed
W_SCALE = np.array([2.0 ** -2, 2.0 ** -3, 2.0 ** -2, 2.0 ** -4])  # conv weights, per output channel
W1 = RNG.integers(-3, 4, size=(4, 1, 3, 3)).astype(np.float64)  # 3-bit narrow integers
B1 = RNG.integers(-40, 40, size=4).astype(np.float64)  # on the accumulator's grid
S_H = 2.0 ** -3  # conv output: a shift of 2..4 below the accumulator, 4-bit
S_W2 = 2.0 ** -2
W2 = RNG.integers(-3, 4, size=(5, 4 * 16)).astype(np.float64)
B2 = RNG.integers(-20, 20, size=5).astype(np.float64)
S_Y = 2.0 ** -1  # logits: 5-bit signed, shift 4


def _c(name, v):
    return onnx.numpy_helper.from_array(np.asarray(v, dtype=np.float32), name)


def _quant(inits, nodes, t, out, scale, bits, signed, mode, narrow=0):
    inits += [_c(f"{out}_s", scale), _c(f"{out}_z", 0.0), _c(f"{out}_b", bits)]
    nodes.append(helper.make_node("Quant", [t, f"{out}_s", f"{out}_z", f"{out}_b"], [out], domain=DOMAIN,
                                  signed=int(signed), narrow=narrow, rounding_mode=mode))


def make_model(mode: str, relu: bool) -> onnx.ModelProto:
    """x (1, 4, 4) -> Quant 6-bit -> Conv 3x3 pad 1 (3-bit per-channel power-of-two weights,
    32-bit bias) [-> Relu] -> Quant 4-bit ``mode`` -> Flatten -> Gemm -> Quant 5-bit ``mode``."""
    nodes, inits = [], []
    _quant(inits, nodes, "x", "xq", S_X, 6, True, "ROUND")
    inits += [_c("w1", W1 * W_SCALE.reshape(-1, 1, 1, 1)), _c("b1", B1 * S_X * W_SCALE)]
    _quant(inits, nodes, "w1", "w1q", W_SCALE.reshape(-1, 1, 1, 1), 3, True, "ROUND", narrow=1)
    _quant(inits, nodes, "b1", "b1q", S_X * W_SCALE, 32, True, "ROUND")
    nodes.append(helper.make_node("Conv", ["xq", "w1q", "b1q"], ["h"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
    if relu:
        nodes.append(helper.make_node("Relu", ["h"], ["hr"]))
    _quant(inits, nodes, "hr" if relu else "h", "hq", S_H, 4, not relu, mode)
    nodes.append(helper.make_node("Flatten", ["hq"], ["f"]))
    inits += [_c("w2", W2 * S_W2), _c("b2", B2 * S_H * S_W2)]
    _quant(inits, nodes, "w2", "w2q", S_W2, 3, True, "ROUND", narrow=1)
    _quant(inits, nodes, "b2", "b2q", S_H * S_W2, 32, True, "ROUND")
    nodes.append(helper.make_node("Gemm", ["f", "w2q", "b2q"], ["z"], transB=1))
    _quant(inits, nodes, "z", "y", S_Y, 5, True, mode)
    graph = helper.make_graph(nodes, "rounding", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 8
    return model


def make_mlp(mode: str) -> onnx.ModelProto:
    """x (16,) -> Quant 6-bit -> Gemm (3-bit weights) -> Relu -> Quant 4-bit ``mode`` -> Gemm
    -> Quant 5-bit ``mode``: the Dense chain (its own Verilog engine)."""
    nodes, inits = [], []
    _quant(inits, nodes, "x", "xq", S_X, 6, True, "ROUND")
    inits += [_c("w1", MLP_W1 * S_W2), _c("b1", MLP_B1 * S_X * S_W2)]
    _quant(inits, nodes, "w1", "w1q", S_W2, 3, True, "ROUND", narrow=1)
    _quant(inits, nodes, "b1", "b1q", S_X * S_W2, 32, True, "ROUND")
    nodes += [helper.make_node("Gemm", ["xq", "w1q", "b1q"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["hr"])]
    _quant(inits, nodes, "hr", "hq", S_H, 4, False, mode)
    inits += [_c("w2", MLP_W2 * S_W2), _c("b2", B2 * S_H * S_W2)]
    _quant(inits, nodes, "w2", "w2q", S_W2, 3, True, "ROUND", narrow=1)
    _quant(inits, nodes, "b2", "b2q", S_H * S_W2, 32, True, "ROUND")
    nodes.append(helper.make_node("Gemm", ["hq", "w2q", "b2q"], ["z"], transB=1))
    _quant(inits, nodes, "z", "y", S_Y / 4, 5, True, mode)
    graph = helper.make_graph(nodes, "rounding_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 8
    return model


MLP_W1 = RNG.integers(-3, 4, size=(12, 16)).astype(np.float64)
MLP_B1 = RNG.integers(-40, 40, size=12).astype(np.float64)
MLP_W2 = RNG.integers(-3, 4, size=(5, 12)).astype(np.float64)
ROUNDERS = {"ROUND": np.rint, "FLOOR": np.floor, "CEIL": np.ceil}


def reference_mlp(x_int: np.ndarray, mode: str) -> np.ndarray:
    rnd = ROUNDERS[mode]
    h = np.maximum((x_int.reshape(len(x_int), -1) * S_X) @ (MLP_W1 * S_W2).T + MLP_B1 * S_X * S_W2, 0)
    hq = np.clip(rnd(h / S_H), 0, 15)
    z = (hq * S_H) @ (MLP_W2 * S_W2).T + B2 * S_H * S_W2
    return np.clip(rnd(z / (S_Y / 4)), -16, 15).astype(np.int64)


def reference(x_int: np.ndarray, mode: str, relu: bool) -> np.ndarray:
    """The QONNX definition on the integers, in float64 (every value here is an exact
    multiple of a power of two far above 2^-53): ``clip(round(v / scale))``."""
    rnd = ROUNDERS[mode]
    x = x_int.reshape(len(x_int), 1, 4, 4).astype(np.float64) * S_X
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w = W1 * W_SCALE.reshape(-1, 1, 1, 1)
    h = np.zeros((len(x), 4, 4, 4))
    for i in range(4):
        for j in range(4):
            h[:, :, i, j] = np.einsum("nchw,mchw->nm", xp[:, :, i:i + 3, j:j + 3], w)
    h += (B1 * S_X * W_SCALE).reshape(1, -1, 1, 1)
    if relu:
        h = np.maximum(h, 0)
    hq = np.clip(rnd(h / S_H), 0 if relu else -8, 15 if relu else 7)
    z = (hq * S_H).reshape(len(x), -1) @ (W2 * S_W2).T + B2 * S_H * S_W2
    return np.clip(rnd(z / S_Y), -16, 15).astype(np.int64)


def _ties(x_int: np.ndarray, relu: bool) -> float:
    """The share of the convolution's outputs that lie exactly half way between two steps
    of its output type (where the roundings differ)."""
    x = np.pad(x_int.reshape(len(x_int), 1, 4, 4).astype(np.float64) * S_X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w = W1 * W_SCALE.reshape(-1, 1, 1, 1)
    h = np.stack([np.einsum("nchw,mchw->nm", x[:, :, i:i + 3, j:j + 3], w) for i in range(4) for j in range(4)], -1)
    h = h + (B1 * S_X * W_SCALE).reshape(1, -1, 1)
    if relu:
        h = np.maximum(h, 0)
    v = h / S_H
    return float(np.mean(v - np.floor(v) == 0.5))


def _inputs(n: int) -> np.ndarray:
    return RNG.integers(-32, 32, size=(n, 1, 4, 4)).astype(np.int64)


def test_round_half_even_shift():
    a = np.arange(-70, 71, dtype=np.int64)
    for s in (1, 2, 3, 5):
        assert np.array_equal(round_shift(a, s, "half_even"), np.rint(a / 2.0 ** s).astype(np.int64))
        assert np.array_equal(round_shift(a, s), np.floor(a / 2.0 ** s + 0.5).astype(np.int64))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_golden_keeps_the_models_rounding(mode, relu):
    design = nnforge.compile(make_model(mode, relu))
    layers = [n for n in design.qgraph.topo() if n.op in ("Conv", "Dense")]
    assert len(layers) == 2
    # power-of-two rescales: a shift, no multiplier wider than the ratio of the channel scales
    assert all(max(n.attr("rq_mult")) <= 4 for n in layers)
    assert all(n.attr("rounding", "half_up") == ("half_even" if mode == "ROUND" else "half_up") for n in layers)
    x = _inputs(400)
    ours = design.predict_int(x).reshape(len(x), -1)
    ref = reference(x, mode, relu)
    assert np.array_equal(ours, ref)
    # the case is a real one: ties (exact halves before the rounding) and both clamp bounds
    h = nnforge.ir.run_int(design.qgraph, x, keep=True)[layers[0].outputs[0]]
    assert (h == h.min()).mean() > 0.02 and (h == h.max()).mean() > 0.02
    assert (ref == -16).any() and (ref == 15).any()
    assert _ties(x, relu) > 0.05


@pytest.mark.parametrize("mode", MODES)
def test_golden_keeps_the_models_rounding_mlp(mode):
    design = nnforge.compile(make_mlp(mode))
    x = RNG.integers(-32, 32, size=(400, 16)).astype(np.int64)
    ref = reference_mlp(x, mode)
    assert np.array_equal(design.predict_int(x).reshape(len(x), -1), ref)
    assert (ref == -16).any() and (ref == 15).any()


def test_the_half_up_contract_differs_at_ties():
    """What the attribute changes: the same model read as the contract's round half up
    differs from the model on many samples (ties are frequent with power-of-two scales)."""
    design = nnforge.compile(make_model("ROUND", False))
    q = design.qgraph.copy()
    for n in [n for n in q.topo() if n.op in ("Conv", "Dense")]:
        q.replace_node(n.name, n.with_(attrs={k: v for k, v in n.attrs.items() if k != "rounding"}))
    x = _inputs(200)
    half_up = nnforge.ir.run_int(q, x)[0].reshape(len(x), -1)
    assert (half_up != reference(x, "ROUND", False)).any(axis=1).mean() > 0.2


def test_a_directed_rounding_needs_power_of_two_rescales():
    model = make_model("FLOOR", False)
    for init in model.graph.initializer:
        if init.name == "hq_s":
            init.CopyFrom(_c("hq_s", 0.3))
    with pytest.raises(QuantizeError, match="power of two"):
        nnforge.compile(model)


@pytest.mark.parametrize("value", ["stochastic", "", None, 3])
def test_an_unknown_rounding_is_refused_on_load(value, tmp_path):
    """A design file whose layer states another rounding: one error naming it, no design."""
    design = nnforge.compile(make_model("ROUND", False))
    design.save(tmp_path / "d")
    path = tmp_path / "d" / "design.json"
    text = path.read_text()
    # the quantized graph's Conv (the float graph's Quant nodes state a rounding too)
    at = text.index('"op": "Conv"', text.index('"quantized_graph"'))
    head, tail = text[:at], text[at:]
    assert '"rounding": "half_even"' in tail
    path.write_text(head + tail.replace('"rounding": "half_even"', f'"rounding": {json.dumps(value)}', 1))
    with pytest.raises(DesignFileError, match="rounding"):
        nnforge.Design.load(tmp_path / "d")


def test_the_window_clamp_tests_round_ties_to_even():
    """The Verilog window engine tests the clamp on the unrounded value: for every bound
    pair, shift and value of a small word, the tests say what rounding then clamping says."""
    from nnforge.codegen.verilog_window import _clamp_tests

    for qa in (4, 5):
        a = np.arange(-(1 << (qa - 1)), 1 << (qa - 1), dtype=np.int64)
        for shift in range(1, qa + 2):
            q = round_shift(a, shift, "half_even")
            for lo in range(-5, 4):
                for hi in range(lo, 5):
                    lt, gt = _clamp_tests(qa, qa + 3, shift, lo, hi, even=True)
                    for v, qv in zip(a, q):
                        def holds(test: str) -> bool:
                            if test in ("1'b0", "1'b1"):
                                return test == "1'b1"
                            op, lit = test.strip("()").split(" ")[1:]
                            bound = _literal(lit)
                            return int(v) < bound if op == "<" else int(v) > bound
                        assert holds(lt) == (qv < lo) and holds(gt) == (qv > hi), (qa, shift, lo, hi, v)


def _literal(lit: str) -> int:
    """A signed Verilog literal ``W'shH`` (two's complement in W bits) as an integer."""
    width, digits = lit.split("'sh")
    v = int(digits, 16)
    return v - (1 << int(width)) if v >= 1 << (int(width) - 1) else v


@pytest.mark.parametrize("mode", MODES)
def test_training_forward_keeps_the_models_rounding(mode):
    """The PyTorch forward pass of nnforge.train equals golden on a design that rounds ties
    to even (or floors / ceils through its bias)."""
    import torch

    from nnforge.train.module import IntegerModule

    design = nnforge.compile(make_model(mode, True))
    x = _inputs(300)
    with torch.no_grad():
        y = IntegerModule(design.qgraph, design.compression)(torch.as_tensor(x.astype(np.float64))).numpy()
    assert np.array_equal(y.reshape(len(x), -1), design.predict_int(x).reshape(len(x), -1))


def test_a_qcdq_clip_must_be_its_quantizations_only_reader():
    """QuantizeLinear -> Clip -> DequantizeLinear narrows the range; a second reader of the
    QuantizeLinear would see the narrowed range too, so the model is refused."""
    def model(second_reader: bool):
        c = [_c("s", 0.0625), onnx.numpy_helper.from_array(np.array(0, np.int8), "z"), _c("lo", -2.0), _c("hi", 1.0)]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 helper.make_node("Clip", ["q", "lo", "hi"], ["qc"]),
                 helper.make_node("DequantizeLinear", ["qc", "s", "z"], ["y0"])]
        if second_reader:
            nodes += [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d2"]),
                      helper.make_node("Add", ["y0", "d2"], ["y1"]),
                      helper.make_node("QuantizeLinear", ["y1", "s", "z"], ["q2"]),
                      helper.make_node("DequantizeLinear", ["q2", "s", "z"], ["y"])]
        else:
            nodes[-1] = helper.make_node("DequantizeLinear", ["qc", "s", "z"], ["y"])
        g = helper.make_graph(nodes, "qcdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], c)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        return m

    design = nnforge.compile(model(False))
    x = np.array([[-1.0, -0.1, 0.05, 1.0]])
    assert np.array_equal(design.predict_int(design.quantize_input(x)).reshape(-1), [-2, -2, 1, 1])
    with pytest.raises(nnforge.ModelImportError, match="only reader"):
        nnforge.compile(model(True))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_backend_keeps_the_models_rounding(mode, tmp_path):
    design = nnforge.compile(make_model(mode, mode != "FLOOR"))
    x = _inputs(48)
    out = design.write(tmp_path / "o", targets=["c", "hls", "verilog"])
    res = design.verify(x.astype(np.float64) * S_X, backends=("golden", "c", "hls", "verilog"), outdir=out)
    assert res.ok, str(res)
    assert res.backends["golden"].samples == 48
    # the microcontroller kernels leave a rounding they do not make to the portable step
    for mcu in ("cortex-m4", "cortex-m0plus"):
        d = nnforge.compile(make_model(mode, True), mcu=mcu)
        out = d.write(tmp_path / mcu, targets=["c"])
        res = d.verify(x.astype(np.float64) * S_X, backends=("golden", "c"), outdir=out)
        assert res.ok, str(res)
    mlp = nnforge.compile(make_mlp(mode))
    x = RNG.integers(-32, 32, size=(48, 16)).astype(np.float64) * S_X
    out = mlp.write(tmp_path / "mlp", targets=["c", "hls", "verilog"])
    res = mlp.verify(x, backends=("golden", "c", "hls", "verilog"), outdir=out)
    assert res.ok, str(res)
