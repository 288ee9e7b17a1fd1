"""The bundled CNNs: float interpreter == onnxruntime, the 8-bit golden model keeps the
accuracy, and C matches it on the whole test split (Verilog still refuses them; HLS is
checked in test_hls_cnn.py)."""

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
    if name == "digits_resnet":  # the residual Add is outside the Verilog scope
        for targets in (["verilog"], ["hls", "verilog"], ["c", "verilog"]):
            with pytest.raises(nnforge.BackendError, match=r"\(op Add\)"):
                design.write(tmp_path / "out", targets=targets)
            assert not (tmp_path / "out").exists()
    res = design.verify(x, y, backends=["golden", "c"])
    assert res.backends["c"].samples == len(x) and res.backends["c"].mismatches == 0
    assert res.backends["c"].accuracy >= float_acc - 0.02
