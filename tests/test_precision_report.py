"""The precision report: per-layer SQNR of the golden model against float, in the
design, report.txt / report.json and `nnforge report`."""

import json

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.cli import main
from nnforge.ir import dequantize

EX = ROOT / "examples" / "digits_cnn"


@pytest.fixture(scope="module")
def designs():
    cal = np.load(EX / "calibration.npz")["x"]
    return {b: nnforge.compile(EX / "model.onnx", calibration=cal, act_bits=b) for b in (8, 4)}


def test_sqnr_is_the_output_error(designs):
    d = designs[8]
    x = np.load(EX / "test.npz")["x"][:100]
    p = d.precision(x)
    ref = d.predict_float(x).astype(np.float64)  # the float model (its final softmax, if any, is not applied here)
    got = dequantize(d.predict(x), d.output_type).reshape(ref.shape)
    want = 10 * np.log10(np.sum(ref ** 2) / np.sum((got - ref) ** 2))
    assert p["samples"] == 100 and p["output_sqnr_db"] == pytest.approx(want, rel=1e-9)
    assert [r["name"] for r in p["layers"]] == [r["name"] for r in d.layers()]
    assert p["worst_layer"] in {r["name"] for r in p["layers"]}


def test_fewer_bits_less_sqnr(designs):
    x = np.load(EX / "test.npz")["x"][:100]
    s8, s4 = (designs[b].precision(x)["output_sqnr_db"] for b in (8, 4))
    assert s8 > s4 + 10  # about 6 dB per bit


def test_report_files_and_cli(designs, tmp_path, capsys):
    d = designs[8]
    d.write(tmp_path / "o", targets=["c"])
    info = json.loads((tmp_path / "o" / "report.json").read_text())
    assert info["precision"]["output_sqnr_db"] == pytest.approx(d.calibration_precision["output_sqnr_db"])
    assert "SQNR" in (tmp_path / "o" / "report.txt").read_text()
    assert main(["report", str(tmp_path / "o")]) == 0
    assert "largest loss" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "o"), "--data", str(EX / "test.npz"), "--limit", "50", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples"] == 50
    (tmp_path / "o" / "report.json").unlink()
    assert main(["report", str(tmp_path / "o")]) != 0
    assert "--data" in capsys.readouterr().err
