"""The AXI4-Stream wrapper (nnforge_axis.v): byte-wide TDATA, active-low reset, TLAST;
exact results under random back-pressure and input gaps, for the dense chain and a CNN."""

import json

import numpy as np
import pytest

import nnforge
from nnforge.sim import verilog as vsim
from nnforge.sim.progress import QUIET
from conftest import ROOT, extremes

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("example,bits", [("digits_mlp", 6), ("digits_cnn", 8)])
def test_axis_wrapper_exact_under_backpressure(tmp_path, example, bits):
    d = ROOT / "examples" / example
    design = nnforge.compile(d / "model.onnx", calibration=np.load(d / "calibration.npz")["x"], bits=bits)
    out = design.write(tmp_path / "o", targets=["verilog"])
    src = out / "verilog"
    info = json.loads((src / "verilog_info.json").read_text())
    ax = info["axis"]
    assert ax["s_axis_tdata_bits"] % 8 == 0 and ax["m_axis_tdata_bits"] % 8 == 0
    assert ax["file"] in info["files"] and (src / ax["file"]).is_file()
    text = (src / ax["file"]).read_text()
    assert "m_axis_tlast" in text and ".rst(~aresetn)" in text
    vsim.lint(src, axis=True)
    x_int = np.concatenate([design.quantize_input(np.load(d / "test.npz")["x"][:4]), extremes(design, 3, seed=2)])
    run = vsim.run(design.lowered("verilog"), src, tmp_path / "b", x_int.reshape(len(x_int), -1), QUIET,
                   design.predict_int(x_int), backpressure=0.3, seed=4, axis=True)
    assert run.extra["mismatches"] == 0
    assert run.extra["out_last_ok"]
    want = design.predict_int(x_int).reshape(len(x_int), -1)
    assert np.array_equal(run.y.reshape(len(x_int), -1), want)
    # the whole TDATA word is the value, sign-extended (6-bit logits in 8 bits)
    raw = np.load(tmp_path / "b" / "run" / "out.npy").astype(np.int64).reshape(want.shape)
    assert np.array_equal(raw, want % (1 << ax["m_axis_tdata_bits"]))
    if example == "digits_mlp":
        assert design.output_type.width < ax["m_axis_tdata_bits"] and (want < 0).any()
