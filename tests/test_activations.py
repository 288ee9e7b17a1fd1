"""Activations (LeakyRelu, Clip / Relu6, Sigmoid, Tanh, HardSigmoid, HardSwish), nearest
Resize / Upsample and Pad folded into Conv: float reference against onnxruntime, the
integer model against float within the quantization bound, generated C == golden exactly
over whole input types, and a small MobileNet-style CNN end to end in C."""

import re
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.frontend.onnx_import import ImportError_
from nnforge.ir import dequantize, run_float, run_int
from nnforge.ir.ops import op_module
from nnforge.passes import QuantizeError
from nnforge.sim.native import run_c
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import find_tool

SHAPE = (3, 4, 5)


def model(nodes, out_shape, inits=(), opset=13, in_shape=SHAPE, ir_version=8):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir_version
    return m


def f32(*v):
    return np.array(v, dtype=np.float32).reshape(()) if len(v) == 1 else np.array(v, dtype=np.float32)


def one(op, opset=13, inits=(), inputs=("x",), **attrs):
    return model([helper.make_node(op, list(inputs), ["y"], **attrs)], SHAPE, inits, opset)


# name -> (model, Lipschitz constant of the function, how it quantizes)
ACTS = {
    "leakyrelu": (one("LeakyRelu", alpha=0.1), 1.0),
    "leakyrelu_default": (one("LeakyRelu", opset=6), 1.0),
    "leakyrelu_big_alpha": (one("LeakyRelu", alpha=1.7), 1.7),
    "clip_opset6": (one("Clip", opset=6, min=-0.5, max=1.25), 1.0),
    "clip_opset11": (one("Clip", opset=11, inputs=("x", "lo", "hi"), inits=[("lo", f32(-1.0)), ("hi", f32(0.7))]), 1.0),
    "clip_min_only": (one("Clip", opset=13, inputs=("x", "lo"), inits=[("lo", f32(-0.3))]), 1.0),
    "clip_max_only": (one("Clip", opset=13, inputs=("x", "", "hi"), inits=[("hi", f32(0.4))]), 1.0),
    "relu6": (one("Clip", opset=13, inputs=("x", "lo", "hi"), inits=[("lo", f32(0.0)), ("hi", f32(6.0))]), 1.0),
    "sigmoid": (one("Sigmoid"), 0.25),
    "sigmoid_opset6": (one("Sigmoid", opset=6), 0.25),
    "tanh": (one("Tanh"), 1.0),
    "hardsigmoid": (one("HardSigmoid", alpha=0.3, beta=0.45), 0.3),
    "hardsigmoid_default": (one("HardSigmoid", opset=6), 0.2),
    "hardswish": (one("HardSwish", opset=14), 1.5),
}


def data(n=256, seed=0, scale=2.5):
    return np.random.default_rng(seed).normal(0, scale, (n, *SHAPE)).astype(np.float32)


def ort_run(m, x):
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("name", list(ACTS))
def test_float_matches_onnxruntime(name):
    m, _ = ACTS[name]
    x = data()
    g = nnforge.frontend.import_onnx(m)
    np.testing.assert_allclose(run_float(g, x)[0], ort_run(m, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bits", [6, 8, 12])
@pytest.mark.parametrize("name", list(ACTS))
def test_integer_within_quantization_bound(name, bits):
    """|y_int - f(x)| <= L * (input step / 2) + output step / 2 (+ alpha's rounding for
    LeakyRelu), on the calibration data itself (so the input never saturates)."""
    m, lip = ACTS[name]
    x = data(seed=1)
    design = nnforge.compile(m, calibration=x, bits=bits)
    in_t, out_t = design.input_type, design.output_type
    y = dequantize(design.predict(x), out_t)
    ref = design.predict_float(x).astype(np.float64)
    bound = lip * in_t.scale / 2 + out_t.scale / 2
    node = design.qgraph.topo()[0]
    if node.op == "LeakyRelu":
        alpha_err = abs(node.attr("alpha") - node.attr("mult") * 2.0 ** -node.attr("mult_frac"))
        bound += alpha_err * np.abs(x).max() + in_t.scale * abs(node.attr("alpha")) / 2
    over = ref > dequantize(out_t.hi, out_t)  # outputs above the type's top (e.g. exactly 1.0)
    err = np.abs(y - ref)[~over]
    assert err.max() <= bound * (1 + 1e-9), (err.max(), bound, in_t, out_t)
    assert np.all(y[over] == dequantize(out_t.hi, out_t))


def test_output_types():
    x = data()
    types = {name: nnforge.compile(ACTS[name][0], calibration=x, bits=8).output_type
             for name in ("sigmoid", "tanh", "hardsigmoid", "relu6", "clip_opset11", "hardswish")}
    assert str(types["sigmoid"]) == "u8.7" and str(types["hardsigmoid"]) == "u8.7"
    assert str(types["tanh"]) == "s8.6"
    assert not types["relu6"].signed and types["clip_opset11"].signed and types["hardswish"].signed


# ---- C == golden, exactly, over every integer of the input type ------------------------

def c_run(design, tmp_path, x_int):
    out = design.write(tmp_path / "out", targets=["c"])
    return run_c(design.lowered("c"), out / "c", out / "build" / "c",
                 x_int.reshape(len(x_int), -1), QUIET).y, out


def all_integers(design):
    """Every value of the input type, spread over the input's cells, shuffled."""
    t = design.input_type
    values = np.arange(t.lo, t.hi + 1)
    size = int(np.prod(design.input_shape))
    n = -(-len(values) // size) + 1
    x = np.resize(np.random.default_rng(len(values)).permutation(values), n * size)
    return x.reshape(n, *design.input_shape)


C_CASES = [(name, bits) for name in ("sigmoid", "tanh", "hardsigmoid", "hardswish") for bits in (2, 5, 8, 12)]
C_CASES += [(name, bits) for name in ("leakyrelu", "leakyrelu_big_alpha", "clip_opset11", "relu6", "clip_max_only")
            for bits in (6, 8, 16)]


@pytest.mark.parametrize("name, bits", C_CASES)
def test_c_equals_golden(name, bits, tmp_path):
    design = nnforge.compile(ACTS[name][0], calibration=data(64), bits=bits)
    x_int = all_integers(design)
    golden = design.predict_int(x_int).reshape(len(x_int), -1)
    c_y, _ = c_run(design, tmp_path, x_int)
    assert np.array_equal(c_y, golden)
    assert np.ptp(golden) > 0


def test_table_refused_above_12_bits():
    with pytest.raises(QuantizeError, match=r"Sigmoid is computed by a lookup table .* limited to 12-bit"):
        nnforge.compile(ACTS["sigmoid"][0], calibration=data(16), bits=13)


def test_table_is_the_one_function():
    """The table the golden model reads is the float function quantized, entry by entry."""
    design = nnforge.compile(ACTS["tanh"][0], calibration=data(64), bits=8)
    q = design.qgraph
    node = q.topo()[0]
    table = q.consts[node.inputs[1]]
    in_t, out_t = q.qtype(node.inputs[0]), q.qtype(node.outputs[0])
    xs = np.arange(in_t.lo, in_t.hi + 1)
    want = np.floor(np.tanh(xs * in_t.scale) / out_t.scale + 0.5).clip(out_t.lo, out_t.hi)
    assert np.array_equal(table, want)
    assert np.array_equal(run_int(q, xs.reshape(-1, 1, 1, 1).repeat(60, 1).reshape(-1, *SHAPE))[0][:, 0, 0, 0],
                          want)


def test_corrupted_table_in_c_is_caught(tmp_path):
    design = nnforge.compile(ACTS["sigmoid"][0], calibration=data(64), bits=8)
    x_int = all_integers(design)
    golden = design.predict_int(x_int).reshape(len(x_int), -1)
    c_y, out = c_run(design, tmp_path, x_int)
    assert np.array_equal(c_y, golden)
    src = out / "c" / "nnforge_model.c"
    text = src.read_text()
    m = re.search(r"_table\[256\] = \{\n(    [^\n]*\n){4}    (\d+),", text)
    entry = int(m.group(2))
    src.write_text(text[:m.start(2)] + str(entry ^ 1) + text[m.end(2):])
    c_bad = run_c(design.lowered("c"), out / "c", tmp_path / "rebuild", x_int.reshape(len(x_int), -1), QUIET).y
    assert (c_bad != golden).sum() > 0


# ---- Resize / Upsample -------------------------------------------------------------------

def resize_model(opset, scales=(1, 1, 2, 3), in_shape=SHAPE, **attrs):
    attrs.setdefault("mode", "nearest")
    inits = [("s", np.asarray(scales, np.float32))]
    if opset >= 11:
        attrs.setdefault("coordinate_transformation_mode", "asymmetric")
        attrs.setdefault("nearest_mode", "floor")
        roi = "roi" if opset < 13 else ""  # roi is optional from opset 13 on
        if roi:
            inits.append(("roi", np.zeros(0, np.float32)))
        node = helper.make_node("Resize", ["x", roi, "s"], ["y"], **attrs)
    else:
        node = helper.make_node("Upsample", ["x", "s"], ["y"], **attrs)
    out = tuple(int(d * f) for d, f in zip(in_shape, scales[1:]))
    return model([node], out, inits, opset, in_shape)


def resize_sizes_model():
    node = helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return model([node], (3, 12, 5), [("sz", np.array([1, 3, 12, 5], np.int64))], 13)


RESIZES = {
    "resize13": resize_model(13),
    "resize11": resize_model(11, (1, 1, 3, 1)),
    "resize_sizes": resize_sizes_model(),
    "upsample9": resize_model(9, (1, 1, 2, 2)),
    "resize_1d": resize_model(13, (1, 1, 4), in_shape=(2, 5)),
}


@pytest.mark.parametrize("name", list(RESIZES))
def test_resize_float_and_c(name, tmp_path):
    m = RESIZES[name]
    in_shape = (2, 5) if name == "resize_1d" else SHAPE
    x = np.random.default_rng(0).normal(size=(8, *in_shape)).astype(np.float32)
    g = nnforge.frontend.import_onnx(m)
    # `sizes` includes the batch axis: onnxruntime runs such a model one sample at a time
    ref = np.concatenate([ort_run(m, x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(run_float(g, x)[0], ref)
    design = nnforge.compile(m, calibration=x, bits=8)
    assert design.output_type == design.input_type
    xq = dequantize(design.quantize_input(x), design.input_type).astype(np.float32)
    ref_q = np.concatenate([ort_run(m, xq[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(dequantize(design.predict(x), design.output_type), ref_q)
    x_int = np.random.default_rng(1).integers(design.input_type.lo, design.input_type.hi + 1, (5, *in_shape))
    c_y, _ = c_run(design, tmp_path, x_int)
    assert np.array_equal(c_y, design.predict_int(x_int).reshape(5, -1))


# ---- Pad folded into Conv ----------------------------------------------------------------

def pad_conv_model(pads, opset=13, value=None, conv_pads=(1, 0, 0, 1), mode=None, then="Conv"):
    rng = np.random.default_rng(3)
    inits = [("w", rng.normal(size=(4, 3, 3, 2)).astype(np.float32)), ("p", np.array(pads, np.int64))]
    pad_in = ["x", "p"]
    if value is not None:
        inits.append(("v", f32(value)))
        pad_in.append("v")
    kw = {"mode": mode} if mode else {}
    nodes = [helper.make_node("Pad", pad_in, ["xp"], **kw)]
    sp = [SHAPE[1] + pads[2] + pads[6], SHAPE[2] + pads[3] + pads[7]]
    if then == "Conv":
        nodes.append(helper.make_node("Conv", ["xp", "w"], ["y"], pads=list(conv_pads)))
        out = (4, sp[0] + conv_pads[0] + conv_pads[2] - 2, sp[1] + conv_pads[1] + conv_pads[3] - 1)
    else:
        nodes.append(helper.make_node("Relu", ["xp"], ["y"]))
        out = (3 + pads[1] + pads[5], *sp)
    return model(nodes, out, inits, opset)


@pytest.mark.parametrize("pads, opset", [((0, 0, 1, 2, 0, 0, 0, 1), 13), ((0, 0, 2, 0, 0, 0, 1, 3), 11),
                                         ((0, 0, 0, 1, 0, 0, 1, 0), 18)])
def test_pad_folds_into_conv(pads, opset, tmp_path):
    m = pad_conv_model(pads, opset)
    x = data(32)
    design = nnforge.compile(m, calibration=x, bits=8)
    assert [n.op for n in design.qgraph.topo()] == ["Conv"]
    conv = design.qgraph.topo()[0]
    assert tuple(conv.attr("pads")) == (1 + pads[2], pads[3], pads[6], 1 + pads[7])
    np.testing.assert_allclose(design.predict_float(x), ort_run(m, x), rtol=1e-5, atol=1e-5)
    g = nnforge.frontend.import_onnx(m)
    assert [n.op for n in g.topo()] == ["Pad", "Conv"]
    np.testing.assert_allclose(run_float(g, x)[0], ort_run(m, x), rtol=1e-5, atol=1e-5)
    x_int = np.random.default_rng(1).integers(design.input_type.lo, design.input_type.hi + 1, (6, *SHAPE))
    c_y, _ = c_run(design, tmp_path, x_int)
    assert np.array_equal(c_y, design.predict_int(x_int).reshape(6, -1))


def test_pad_not_folded_is_refused():
    x = data(16)
    for m in (pad_conv_model((0, 0, 1, 1, 0, 0, 1, 1), value=1.5), pad_conv_model((0, 0, 1, 1, 0, 0, 1, 1), then="Relu"),
              pad_conv_model((0, 1, 0, 0, 0, 0, 0, 0), then="Relu")):
        g = nnforge.frontend.import_onnx(m)
        np.testing.assert_allclose(run_float(g, x)[0], ort_run(m, x), rtol=1e-5, atol=1e-5)  # float still works
        with pytest.raises(QuantizeError, match="Pad could not be folded into a following Conv"):
            nnforge.compile(m, calibration=x)
    with pytest.raises(ImportError_, match="only mode 'constant'"):
        nnforge.frontend.import_onnx(pad_conv_model((0, 0, 1, 1, 0, 0, 1, 1), mode="reflect"))
    with pytest.raises(ImportError_, match="negative pads"):
        nnforge.frontend.import_onnx(pad_conv_model((0, 0, -1, 0, 0, 0, 0, 0)))


# ---- a small MobileNet-style CNN ---------------------------------------------------------

def mobile_cnn(seed=0):
    rng = np.random.default_rng(seed)
    c = 6
    inits = [("w1", rng.normal(0, 0.4, (c, 3, 3, 3))), ("b1", rng.normal(0, 0.2, c)),
             ("lo", f32(0.0)), ("hi", f32(6.0)),
             ("w2", rng.normal(0, 0.5, (c, 1, 3, 3))), ("b2", rng.normal(0, 0.2, c)),
             ("gw", rng.normal(0, 0.5, (c, 1))), ("gb", rng.normal(0, 0.1, 1))]
    inits = [(k, np.asarray(v, np.float32)) for k, v in inits]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("HardSwish", ["c2"], ["h"]),
             helper.make_node("GlobalAveragePool", ["h"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["y"])]
    return model(nodes, (1,), inits, opset=14, in_shape=(3, 8, 8))


@pytest.mark.parametrize("bits", [8, 10])
def test_mobile_cnn_in_c(bits, tmp_path):
    m = mobile_cnn()
    x = np.random.default_rng(5).normal(0, 1.5, (200, 3, 8, 8)).astype(np.float32)
    design = nnforge.compile(m, calibration=x[:100], bits=bits)
    np.testing.assert_allclose(design.predict_float(x), ort_run(m, x), rtol=1e-5, atol=1e-5)
    assert [n.op for n in design.qgraph.topo()] == ["Conv", "Clip", "Conv", "HardSwish", "GlobalAveragePool",
                                                    "Reshape", "Dense", "Sigmoid"]
    res = design.verify(x, backends=["golden", "c"], outdir=design.write(tmp_path / "out", targets=["c"]))
    assert res.ok and res.backends["c"].mismatches == 0 and res.backends["c"].samples == len(x)
    y = dequantize(design.predict(x), design.output_type)
    assert np.abs(y - design.predict_float(x)).max() < (0.05 if bits == 8 else 0.02)
    # stricter than the harness: no implicit narrowing anywhere in the generated C
    subprocess.run([find_tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-c",
                    str(tmp_path / "out" / "c" / "nnforge_model.c"), "-o", str(tmp_path / "m.o")], check=True)


def test_table_ops_share_one_function():
    """Float reference and table come from the same ``function`` of each op module."""
    for op in ("Sigmoid", "Tanh", "HardSigmoid", "HardSwish"):
        mod = op_module(op)
        v = np.linspace(-8, 8, 101)
        np.testing.assert_array_equal(mod.float_ref({}, [v.astype(np.float32)])[0],
                                      mod.function({}, v.astype(np.float32)).astype(np.float32))
