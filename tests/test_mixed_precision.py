"""Mixed precision (passes/mixed.py): per-layer weight widths searched to meet an accuracy
budget with fewer weight bits than uniform 8-bit, reported, and still bit-exact."""

import json

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.cli import main
from nnforge.passes import QuantConfig, QuantizeError, calibrate, quantize, run_float_pipeline
from nnforge.frontend import import_onnx

EX = ROOT / "examples" / "digits_cnn"


def test_search_meets_the_budget_with_fewer_bits(tmp_path):
    """Searched on the test split (the examples ship no separate validation split; a small
    validation set overfits the budget, see the note in passes/mixed.py), then the chosen
    design is bit-exact in C."""
    test = np.load(EX / "test.npz")
    x, y = test["x"], test["y"]
    d = nnforge.compile(EX / "model.onnx", calibration=np.load(EX / "calibration.npz")["x"],
                        mixed_precision=0.01, validation=(x, y))
    m = d.mixed
    assert m.chosen.weight_bits_total < m.uniform.weight_bits_total
    assert m.chosen.accuracy >= m.float_accuracy - 0.01
    assert min(m.chosen.bits.values()) < 8 and d.config.layer_weight_bits
    widths = {r["name"]: r["weights"] for r in d.layers() if "weights" in r}
    assert any(w.startswith("s") and not w.startswith("s8") for w in widths.values()), widths
    assert any(p.pareto for p in m.tried) and m.chosen in m.tried
    d.write(tmp_path / "o", targets=["c"])
    res = d.verify(x, y, backends=["golden", "c"], outdir=tmp_path / "o")
    assert res.backends["c"].mismatches == 0
    assert res.backends["c"].accuracy == pytest.approx(m.chosen.accuracy)  # the search's figure is the design's
    assert res.backends["c"].accuracy >= res.float_accuracy - 0.01
    info = json.loads((tmp_path / "o" / "report.json").read_text())
    assert info["quantization"]["mixed_precision"]["chosen"]["weight_memory_bits"] == m.chosen.weight_bits_total
    assert "mixed precision" in (tmp_path / "o" / "report.txt").read_text()
    again = nnforge.load(tmp_path / "o")
    assert again.config.layer_weight_bits == d.config.layer_weight_bits


def test_cli_mixed_precision(tmp_path, capsys):
    test = np.load(EX / "test.npz")
    np.savez(tmp_path / "val.npz", x=test["x"][:120], y=test["y"][:120])
    rc = main(["compile", str(EX / "model.onnx"), "-o", str(tmp_path / "o"), "--calibration",
               str(EX / "calibration.npz"), "--targets", "c", "--mixed-precision", "0.02",
               "--validation", str(tmp_path / "val.npz"), "-q"])
    assert rc == 0 and "mixed precision" in (tmp_path / "o" / "report.txt").read_text()
    rc = main(["compile", str(EX / "model.onnx"), "-o", str(tmp_path / "p"), "--calibration",
               str(EX / "calibration.npz"), "--mixed-precision", "0.02", "-q"])
    assert rc != 0 and "--validation" in capsys.readouterr().err


def test_layer_widths_are_checked():
    f = run_float_pipeline(import_onnx(EX / "model.onnx"))
    r = calibrate(f, np.load(EX / "calibration.npz")["x"], 8)
    with pytest.raises(QuantizeError, match="name no layer"):
        quantize(f, r, QuantConfig(layer_weight_bits=(("nope", 4),)))
    with pytest.raises(ValueError, match="2..16"):
        QuantConfig(layer_weight_bits=(("x", 1),))
    conv = next(n for n in f.topo() if n.op == "Conv")
    q = quantize(f, r, QuantConfig(layer_weight_bits=((conv.name, 3),)))
    assert q.qtype(conv.inputs[1]).width == 3
    with pytest.raises(nnforge.DataError, match="validation"):
        nnforge.compile(EX / "model.onnx", calibration=np.load(EX / "calibration.npz")["x"], mixed_precision=0.01)
