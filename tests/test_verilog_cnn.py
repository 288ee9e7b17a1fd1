"""Verilog on CNN chains (codegen/verilog_cnn.py): line engines for Conv, MaxPool,
GlobalAveragePool and Dense, channels-last streams; Verilator/cocotb == golden in every integer,
lint-clean, Yosys-clean."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT, verilog_exact
from nnforge.codegen.verilog_cnn import write_cnn
from nnforge.sim import verilog as sim_verilog


def _model(rng, c_in=1, hw=6, depthwise=False, pad2=1, relu2=True):
    c1 = 4
    inits = {"w1": rng.normal(0, .5, (c1, c_in, 3, 3)), "b1": rng.normal(0, .1, c1),
             "w2": rng.normal(0, .3, (c1, 1 if depthwise else c1, 3, 3)), "b2": rng.normal(0, .1, c1),
             "w3": rng.normal(0, .5, (3, c1)), "b3": rng.normal(0, .1, 3)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[pad2] * 4,
                              group=c1 if depthwise else 1),
             *([helper.make_node("Relu", ["c2"], ["r2"])] if relu2 else []),
             helper.make_node("GlobalAveragePool", ["r2" if relu2 else "c2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c_in, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), (c_in, hw, hw)


def _inputs(design, rng, n):
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (n, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    return x


@pytest.mark.slow
@pytest.mark.parametrize("seed,bits,depthwise,backpressure",
                         [(1, 8, False, 0.0), (2, 4, True, 0.3), (3, 6, False, 0.0)])
def test_random_cnn_exact(seed, bits, depthwise, backpressure, tmp_path):
    rng = np.random.default_rng(seed)
    model, shape = _model(rng, c_in=1 + seed % 2, hw=6 + seed % 2 * 2, depthwise=depthwise, pad2=(seed + 1) % 2,
                           relu2=seed != 3)  # seed 3: a signed GAP input (the divider's offset path)
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (64, *shape)).astype(np.float32), bits=bits)
    x = _inputs(design, rng, 24)
    info, res = verilog_exact(design, tmp_path, x, backpressure)
    assert [ly["op"] for ly in info["layers"]] == ["Conv", "MaxPool", "Conv", "GlobalAveragePool", "Dense"]
    if not backpressure:  # the analytic frame time is close to the measured one
        gap = res.extra["output_gaps"][-1]
        assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap


@pytest.mark.slow
def test_random_cnn_synthesizes(tmp_path):
    rng = np.random.default_rng(5)
    model, shape = _model(rng)
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (64, *shape)).astype(np.float32), bits=4)
    write_cnn(design.qgraph, tmp_path / "v")
    stats = sim_verilog.synth_check(tmp_path / "v")
    assert stats["cells"] > 0 and stats["flipflops"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("parallelism,mults", [("sequential", 3), ("balanced", 41), ("parallel", 25)])
def test_digits_cnn_verilog(parallelism, mults, tmp_path):
    """Through the public API at each folding (one multiplier per engine / the fewest that
    keep up with the streams / all input channels of a Conv or Dense): write (lint-clean), then verify test images (the whole split at the
default folding), 0 mismatches, and
    the analytic period is the measured one."""
    ex = ROOT / "examples" / "digits_cnn"
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    test = np.load(ex / "test.npz")
    out = design.write(tmp_path / "o", targets=["verilog"], parallelism=parallelism)
    sim_verilog.lint(out / "verilog")
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    assert [ly["op"] for ly in info["layers"]] == ["Conv", "MaxPool", "Conv", "GlobalAveragePool", "Dense"]
    assert info["totals"]["multipliers"] == mults and info["parallelism"] == parallelism
    n = len(test["x"]) if parallelism == "balanced" else 40  # the default: the whole test split
    res = design.verify(test["x"][:n], test["y"][:n], backends=["golden", "verilog"], outdir=out)
    v = res.backends["verilog"]
    assert v.samples == n and v.mismatches == 0 and v.accuracy > 0.9
    assert abs(v.cycles_per_inference - info["totals"]["ii_cycles"]) <= 0.05 * v.cycles_per_inference


@pytest.mark.slow
def test_gap_divider_exact(tmp_path):
    """GlobalAveragePool alone on signed inputs over the whole type: (2*sum + n) // (2*n)
    with an odd count (n = 9) and negative sums, against golden on every channel."""
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])],
        "gap", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(np.eye(6, dtype=np.float32).reshape(6, 6, 1, 1), "w"),
         numpy_helper.from_array(np.zeros(6, np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    rng = np.random.default_rng(9)
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (64, 6, 3, 3)).astype(np.float32), bits=6)
    x = _inputs(design, rng, 200)
    x[2:40] = rng.integers(-3, 4, (38, 6, 3, 3))  # small sums: every rounding boundary near 0
    verilog_exact(design, tmp_path, x)


def test_strided_conv_writes(tmp_path):
    """(What Verilog still refuses is tested in test_c_cnn.py::test_one_c_path_and_refusals.)"""
    rng = np.random.default_rng(0)
    model, shape = _model(rng)
    model.graph.node[0].attribute.append(helper.make_attribute("strides", [2, 2]))
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (16, *shape)).astype(np.float32), bits=8)
    # a strided Conv is no longer refused (tests/test_verilog_window.py simulates it)
    design.write(tmp_path / "s", targets=["c", "verilog"])
    assert (tmp_path / "s" / "verilog" / "verilog_info.json").exists()
