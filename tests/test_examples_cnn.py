"""The bundled CNNs: float interpreter == onnxruntime, the 8-bit golden model keeps the
accuracy, and C matches it on the whole test split (HLS is checked in test_hls_cnn.py);
the residual network's Verilog (forks, residual joins) matches it in Verilator (the
plain CNN's in test_verilog_cnn.py)."""

import numpy as np
import onnxruntime as ort
import pytest

import nnforge
from conftest import ROOT


@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet"])
def test_cnn_example_golden(name, tmp_path):
    ex = ROOT / "examples" / name
    test = np.load(ex / "test.npz")
    x, y = test["x"], test["y"]
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    sess = ort.InferenceSession(str(ex / "model.onnx"), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    mine = design.predict_float(x)
    np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-4)
    float_acc = float((ref.argmax(1) == y).mean())
    int_acc = float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean())
    assert float_acc > 0.95
    assert int_acc >= float_acc - 0.02
    ops = {r["op"] for r in design.layers()}
    assert "Conv" in ops and "BatchNormalization" not in ops
    res = design.verify(x, y, backends=["golden", "c"])
    assert res.backends["c"].samples == len(x) and res.backends["c"].mismatches == 0
    assert res.backends["c"].accuracy >= float_acc - 0.02


@pytest.mark.slow
def test_resnet_example_verilog(tmp_path):
    """Depthwise-separable residual blocks on Verilog: the skips are forked and joined
    without deadlock, every output integer equals golden on the whole test split."""
    import json

    from nnforge.sim import verilog as sim_verilog
    ex = ROOT / "examples" / "digits_resnet"
    test = np.load(ex / "test.npz")
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    out = design.write(tmp_path / "o", targets=["verilog"])
    sim_verilog.lint(out / "verilog")
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    assert {"Add", "Conv"} <= {ly["op"] for ly in info["layers"]} and info["forks"]
    res = design.verify(test["x"], test["y"], backends=["golden", "verilog"], outdir=out)
    v = res.backends["verilog"]
    assert v.samples == len(test["x"]) and v.mismatches == 0
    assert v.accuracy >= res.float_accuracy - 0.02
    assert abs(v.cycles_per_inference - info["totals"]["ii_cycles"]) <= 0.1 * v.cycles_per_inference
