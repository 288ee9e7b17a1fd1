"""C (gcc) and HLS C++ (g++) against the golden model on random MLPs, at every width,
with exact equality of every output integer."""

import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import extremes, run_c_float_wrapper

import nnforge
from nnforge.ir import run_int
from nnforge.sim.tools import find_tool


def mlp_model(sizes, seed, relu=True, softmax=False, weights=None):
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = weights[i] if weights is not None else rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32)
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, b).astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"], name=f"mm{i}"))
        nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"add{i}"))
        prev = f"a{i}"
        if relu and i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
    if softmax:
        nodes.append(helper.make_node("Softmax", [prev], ["p"], name="sm", axis=-1))
        prev = "p"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def native_outputs(design, tmp_path, x_int):
    from nnforge.sim.native import run_c, run_hls
    from nnforge.sim.progress import QUIET

    out = design.write(tmp_path / "out", targets=["c", "hls"])
    hw = design.hardware()
    flat = x_int.reshape(len(x_int), -1)
    return (run_c(hw, out / "c", out / "build" / "c", flat, QUIET).y,
            run_hls(hw, out / "hls", out / "build" / "hls", flat, QUIET).y)


@pytest.mark.parametrize("wbits, abits", [(2, 2), (3, 8), (4, 4), (8, 8), (8, 16), (12, 12), (16, 16), (16, 4)])
def test_random_mlp_bit_exact(tmp_path, wbits, abits):
    sizes = (13, 7, 5, 3)
    model = mlp_model(sizes, seed=wbits * 100 + abits)
    rng = np.random.default_rng(1)
    cal = rng.normal(0, 1, (200, sizes[0])).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, weight_bits=wbits, act_bits=abits)
    x_int = extremes(design, 300, seed=abits)
    golden = design.predict_int(x_int)
    c_y, hls_y = native_outputs(design, tmp_path, x_int)
    assert np.array_equal(c_y, golden)
    assert np.array_equal(hls_y, golden)
    # the extremes must actually exercise saturation somewhere, or the test proves less
    env = run_int(design.qgraph, x_int, keep=True)
    q = design.qgraph
    saturated = [n.name for n in q.topo() if n.op == "Dense"
                 and np.isin(env[n.outputs[0]], [q.qtype(n.outputs[0]).hi]).any()]
    assert saturated


def test_wide_accumulator_uses_64_bits(tmp_path):
    """16-bit weights and activations over many inputs need an accumulator above 32 bits."""
    model = mlp_model((300, 4), seed=3)
    cal = np.random.default_rng(0).normal(0, 1, (50, 300)).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, bits=16)
    acc = [r["acc_width"] for r in design.layers() if r["op"] == "Dense"]
    assert max(acc) > 32
    x_int = extremes(design, 50, seed=4)
    c_y, hls_y = native_outputs(design, tmp_path, x_int)
    assert np.array_equal(c_y, design.predict_int(x_int))
    assert np.array_equal(hls_y, design.predict_int(x_int))


def test_negative_shift(tmp_path):
    """Rows that cancel give a tiny output range, so the requantize is a left shift."""
    w = np.array([[4.0, 3.0], [-4.0, -3.001]], dtype=np.float32)
    model = mlp_model((2, 2), seed=0, weights=[w])
    cal = np.repeat(np.array([[1.0, 1.0], [0.9, 0.9]], dtype=np.float32), 5, axis=0)
    design = nnforge.compile(model, calibration=cal, bits=8)
    hw = design.hardware()
    assert hw.layers[0].shift < 0
    x_int = extremes(design, 100, seed=5)
    c_y, hls_y = native_outputs(design, tmp_path, x_int)
    assert np.array_equal(c_y, design.predict_int(x_int))
    assert np.array_equal(hls_y, design.predict_int(x_int))


def test_float_wrapper_matches_golden(tmp_path, digits_design, digits_data):
    """nnforge_run_float quantizes like golden, and applies the final softmax."""
    _, x, _ = digits_data
    x = x[:40]
    got = run_c_float_wrapper(digits_design, tmp_path, x)
    logits = digits_design.predict_dequantized(x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    want = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.array_equal(got.argmax(axis=1), digits_design.predict(x).argmax(axis=1))


def test_c_compiles_pedantic(tmp_path, digits_design):
    out = digits_design.write(tmp_path / "out", targets=["c"])
    subprocess.run([find_tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion",
                    "-c", str(out / "c" / "nnforge_model.c"), "-o", str(tmp_path / "m.o")], check=True)
    text = (out / "c" / "nnforge_model.c").read_text()
    assert "malloc" not in text
    assert "static const int8_t fc0_w[32][64]" in text


def test_hls_csim_testbench(tmp_path, digits_design):
    """The Vitis HLS testbench written beside the sources passes under plain g++."""
    out = digits_design.write(tmp_path / "out", targets=["hls"])
    hls = out / "hls"
    exe = tmp_path / "tb"
    subprocess.run([find_tool("g++"), "-std=c++14", "-Wall", "-Wextra", "-Werror", "-Wno-unknown-pragmas",
                    "-Wno-unused-label", "-I", str(hls), str(hls / "tb_nnforge_hls.cpp"),
                    str(hls / "nnforge_hls.cpp"), "-o", str(exe)], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert "16 samples, 0 mismatching outputs" in res.stdout
    tcl = (hls / "run_hls.tcl").read_text()
    for cmd in ("set_top nnforge_top", "csim_design", "csynth_design", "create_clock"):
        assert cmd in tcl
    src = (hls / "nnforge_hls.cpp").read_text()
    assert "#pragma HLS PIPELINE II=1" in src and "#pragma HLS INTERFACE" in src
