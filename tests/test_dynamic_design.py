"""--dynamic through compile, write and verify: run-time scales pay at low widths, and
verify checks the generated nnforge_run_dynamic as 'c-dynamic'."""

import json

import numpy as np
import pytest

import nnforge
from nnforge import cli
from nnforge.ir.dynamic import DYN_RANGE, run_dynamic
from conftest import ROOT


@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn"])
def test_dynamic_pays_at_4_bits(example):
    d = ROOT / "examples" / example
    cal = np.load(d / "calibration.npz")["x"]
    test = np.load(d / "test.npz")
    x, y = test["x"], test["y"]
    design = nnforge.compile(d / "model.onnx", calibration=cal, bits=4, dynamic=True)
    static = float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean())
    dyn = float((design.predict_dynamic(x).reshape(len(x), -1).argmax(1) == y).mean())
    assert dyn > static + 0.03, (dyn, static)


def test_fracs_stay_within_the_dynamic_range():
    d = ROOT / "examples" / "digits_mlp"
    design = nnforge.compile(d / "model.onnx", calibration=np.load(d / "calibration.npz")["x"])
    x = np.load(d / "test.npz")["x"][:8]
    for scale in (1e-30, 1.0, 1e30):
        _, frac = run_dynamic(design.qgraph, x * scale)
        assert np.all(np.abs(frac - design.output_type.frac) <= DYN_RANGE)
    _, f_small = run_dynamic(design.qgraph, x * 1e-3)
    _, f_big = run_dynamic(design.qgraph, x * 1e3)
    assert np.all(f_small > f_big)  # the scale follows the input


def test_cli_dynamic_verify(tmp_path, capsys):
    d = ROOT / "examples" / "digits_cnn"
    out = tmp_path / "out"
    assert cli.main(["compile", str(d / "model.onnx"), "-o", str(out), "--targets", "c", "--calibration",
                     str(d / "calibration.npz"), "--bits", "6", "--dynamic", "-q"]) == 0
    assert (out / "c" / "nnforge_dynamic.c").is_file()
    capsys.readouterr()
    assert cli.main(["verify", str(out), "--data", str(d / "test.npz"), "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backends"]["c-dynamic"]["samples"] == 360 and doc["backends"]["c-dynamic"]["mismatches"] == 0
    assert json.loads((out / "report.json").read_text())["quantization"]["dynamic"]


def test_dynamic_refuses_what_it_does_not_cover():
    d = ROOT / "examples" / "digits_cnn"
    with pytest.raises(ValueError, match="power-of-two scales per tensor"):
        nnforge.compile(d / "model.onnx", calibration=np.load(d / "calibration.npz")["x"], dynamic=True,
                        per_channel=True)
