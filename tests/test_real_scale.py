"""Calibrated real scales (--scale real, --asymmetric) and per-channel weights
(--per-channel) on the bundled CNN: accuracy, zero points, every backend equal to golden,
and the command line."""

import json

import numpy as np
import pytest

import nnforge
from nnforge import cli
from nnforge.ir import FixedType
from nnforge.ir.fixed import dequantize, quantize_float, real_multiplier, requantize_mult
from nnforge.passes import QuantConfig
from conftest import ROOT

EX = ROOT / "examples" / "digits_cnn"


@pytest.fixture(scope="module")
def cnn_data():
    test = np.load(EX / "test.npz")
    return np.load(EX / "calibration.npz")["x"], test["x"], test["y"]


def _acc(design, x, y):
    return float((design.predict(x).reshape(len(x), -1).argmax(1) == y).mean())


def test_per_channel_4bit_weights_within_3_points_of_float(cnn_data):
    """The done-when of per-channel weights: 4-bit weights, 8-bit activations, best method."""
    cal, x, y = cnn_data
    design = nnforge.compile(EX / "model.onnx", calibration=cal, weight_bits=4, act_bits=8, per_channel=True,
                             calibration_method="mse")
    float_acc = float((design.predict_float(x).reshape(len(x), -1).argmax(1) == y).mean())
    per_tensor = nnforge.compile(EX / "model.onnx", calibration=cal, weight_bits=4, act_bits=8,
                                 calibration_method="mse")
    assert _acc(design, x, y) >= float_acc - 0.03
    assert _acc(design, x, y) > _acc(per_tensor, x, y) + 0.05  # what per-channel buys here
    mults = [n.attr("rq_mult") for n in design.qgraph.topo() if n.op in ("Conv", "Dense")]
    assert all(m is not None for m in mults) and any(len(set(m)) > 1 for m in mults)


@pytest.mark.parametrize("kw", [dict(scale="real"), dict(scale="real", asymmetric=True),
                                dict(scale="real", per_channel=True)], ids=["real", "asymmetric", "real_pc"])
def test_real_scales_every_backend(tmp_path, cnn_data, kw):
    cal, x, y = cnn_data
    design = nnforge.compile(EX / "model.onnx", calibration=cal, weight_bits=4, act_bits=8, **kw)
    assert design.input_type.real_scale > 0
    assert _acc(design, x, y) >= 0.95
    res = design.verify(x[:24], y[:24], backends=("golden", "c", "hls", "verilog"))
    assert res.ok, str(res)
    again = nnforge.Design.load(design.write(tmp_path / "o", targets=["c"]))
    assert again.config == design.config
    assert np.array_equal(again.predict(x[:50]), design.predict(x[:50]))


def test_asymmetric_signed_tensor_gets_a_zero_point(cnn_data):
    """The logits are signed: symmetric they get zero point 0, asymmetric the whole
    unsigned grid with a zero point (stored as q - zero in one more bit)."""
    cal, x, y = cnn_data
    sym = nnforge.compile(EX / "model.onnx", calibration=cal, scale="real")
    asym = nnforge.compile(EX / "model.onnx", calibration=cal, scale="real", asymmetric=True)
    assert sym.output_type.zero == 0 and sym.output_type.signed and sym.output_type.width == 8
    t = asym.output_type
    assert 0 < t.zero < 255 and (t.lo, t.hi) == (-t.zero, 255 - t.zero) and t.width == 9
    assert t.scale < sym.output_type.scale  # the grid covers [lo, hi], not [-max, max]
    assert abs(_acc(asym, x, y) - _acc(sym, x, y)) <= 0.01


def test_real_multiplier_is_close_and_bounded():
    ratios = np.array([0.3, 1.7e-3, 2.5, 1e-9])
    mult, shift = real_multiplier(ratios, max_bits=20)
    assert mult.max() < 2**20 and mult.max() >= 2**19
    # one shift for all channels: each is within half a step of 2**-shift
    assert np.all(np.abs(mult * 2.0**-shift - ratios) <= 2.0**-shift / 2)
    assert abs(mult[2] * 2.0**-shift / ratios[2] - 1) < 2**-18
    with pytest.raises(ValueError):
        real_multiplier([0.0, 0.0])
    with pytest.raises(ValueError):
        real_multiplier([1.0, float("nan")])


def test_requantize_mult_rounds_half_up_per_channel():
    acc = np.array([[3, -3, 5], [6, -5, 1]])
    out = FixedType(8, 0)
    got = requantize_mult(acc, [1, 1, 3], 1, out)  # channel 2 times 3, then / 2
    assert got.tolist() == [[2, -1, 8], [3, -2, 2]]


def test_real_scale_type_rules():
    t = FixedType(9, 3, True, (-37, 218), 37, 0.1)
    assert (t.lo, t.hi, t.scale) == (-37, 218, 0.1)
    assert quantize_float(np.array([-10.0, 0.04, 0.05, 100.0]), t).tolist() == [-37, 0, 1, 218]
    assert dequantize(np.array([10]), t).tolist() == [1.0]
    with pytest.raises(ValueError):
        FixedType(8, 0, False, (-1, 3))
    with pytest.raises(ValueError):
        QuantConfig(asymmetric=True)
    with pytest.raises(ValueError):
        QuantConfig(scale="log")


def test_cli_scale_and_per_channel(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([
        "compile", str(EX / "model.onnx"), "-o", str(out), "--targets", "c", "--calibration",
        str(EX / "calibration.npz"), "--weight-bits", "4", "--per-channel", "--scale", "real", "--asymmetric",
        "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["quantization"]["per_channel"] and report["quantization"]["scale"] == "real"
    assert report["quantization"]["asymmetric"]
    capsys.readouterr()
    assert cli.main(["verify", str(out), "--data", str(EX / "test.npz"), "--limit", "40", "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["backends"]["c"]["mismatches"] == 0
