"""The HLS C++ backend on convolutional graphs: the same random per-op grid as the C
tests, the residual DAG and the bundled CNN examples, each with HLS C++ (g++) == golden in
every integer; the Vitis csim testbench passes under g++; a corrupted weight is caught."""

import subprocess

import numpy as np
import pytest

import nnforge
from conftest import ROOT, negate_first_row
from nnforge.sim.native import CXX_FLAGS, run_hls
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import find_tool
from test_c_cnn import BITS, conv_case, extremes, pool_case, residual_model


def assert_hls_exact(model, in_shape, bits, tmp_path, seed, n=64, cal_scale=1.0):
    rng = np.random.default_rng(seed)
    cal = rng.normal(0, cal_scale, (64, *in_shape)).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, bits=bits)
    x_int = extremes(design, n, seed)
    golden = design.predict_int(x_int).reshape(n, -1)
    out = design.write(tmp_path / "out", targets=["hls"])
    y = run_hls(design.lowered("hls"), out / "hls", out / "build" / "hls", x_int.reshape(n, -1), QUIET).y
    assert y.shape == golden.shape
    assert np.array_equal(y, golden), f"first difference at sample {np.flatnonzero((y != golden).any(1))[0]}"
    return design, out


@pytest.mark.parametrize("seed", range(12))
def test_conv_random(seed, tmp_path):
    model, shape = conv_case(seed)
    _, out = assert_hls_exact(model, shape, BITS[seed % 4], tmp_path, seed)
    src = (out / "hls" / "nnforge_hls.cpp").read_text()
    assert "#pragma HLS PIPELINE II=1" in src and "window" in src
    if len(shape) == 3:  # 2-D: the line buffer exists (kernel rows > 1) or the window is one row
        assert "line buffer" in src or "no line buffer" in src


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_random(op, seed, tmp_path):
    model, shape = pool_case(seed, op)
    assert_hls_exact(model, shape, BITS[seed % 4], tmp_path, seed)


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_residual_dag(bits, tmp_path):
    model, shape = residual_model()
    design, out = assert_hls_exact(model, shape, bits, tmp_path, seed=bits, n=100, cal_scale=4.0)
    prog = design.lowered("hls")
    # one producer per buffer (DATAFLOW): no buffer is written twice
    outputs = [s.output for s in prog.steps]
    assert len(outputs) == len(set(outputs))
    src = (out / "hls" / "nnforge_hls.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in src and "ARRAY_PARTITION variable=lb" in src


def _compile_tb(hls, exe):
    subprocess.run([find_tool("g++"), *CXX_FLAGS, "-I", str(hls), str(hls / "tb_nnforge_hls.cpp"),
                    str(hls / "nnforge_hls.cpp"), "-o", str(exe)], check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True)


def test_testbench_and_corruption(tmp_path):
    """The csim testbench passes under g++; negating one conv weight row is caught by
    verify and by the testbench."""
    model, shape = residual_model()
    cal = np.random.default_rng(0).normal(0, 4, (64, *shape)).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, bits=8)
    out = design.write(tmp_path / "out", targets=["hls"])
    hls = out / "hls"
    res = _compile_tb(hls, tmp_path / "tb")
    assert res.returncode == 0 and "16 samples, 0 mismatching outputs" in res.stdout, res.stdout
    assert "set_top nnforge_top" in (hls / "run_hls.tcl").read_text()
    x = np.random.default_rng(1).normal(0, 4, (50, *shape)).astype(np.float32)
    assert design.verify(x, backends=["golden", "hls"], outdir=out).backends["hls"].mismatches == 0
    negate_first_row(hls / "nnforge_hls.cpp", "conv1_w")
    res = design.verify(x, backends=["golden", "hls"], outdir=out)
    assert res.backends["hls"].mismatches > 0 and not res.ok
    assert _compile_tb(hls, tmp_path / "tb2").returncode != 0


@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet"])
def test_cnn_examples_hls(name, tmp_path):
    ex = ROOT / "examples" / name
    test = np.load(ex / "test.npz")
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    out = design.write(tmp_path / "out", targets=["hls"])
    res = design.verify(test["x"], test["y"], backends=["golden", "hls"], outdir=out)
    assert res.ok and res.backends["hls"].mismatches == 0 and res.backends["hls"].samples == len(test["x"])
    assert res.backends["hls"].accuracy >= res.float_accuracy - 0.02
    tb = _compile_tb(out / "hls", tmp_path / "tb")
    assert tb.returncode == 0 and "0 mismatching outputs" in tb.stdout, tb.stdout
