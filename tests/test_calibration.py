"""Calibration methods (passes/calibrate.py): min-max, percentile, MSE and KL ranges on
known distributions, per-tensor overrides, and the compiled designs they give (still
bit-exact on every backend; better accuracy than min-max where outliers dominate)."""

import json

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.ir import FixedType
from nnforge.ir.fixed import frac_for_range
from nnforge.passes.calibrate import Stats, _quant_error, calibrate, choose_range, observe, parse_method
from nnforge.passes import run_float_pipeline
from nnforge.frontend import import_onnx


def test_parse_method():
    assert parse_method("minmax") == ("minmax", None)
    assert parse_method("percentile:99.99") == ("percentile", 99.99)
    assert parse_method(" MSE ") == ("mse", None) and parse_method("kl") == ("kl", None)
    for bad in ("median", "percentile", "percentile:40", "percentile:x", "kl:3", ""):
        with pytest.raises(ValueError, match="calibration method"):
            parse_method(bad)


def outliers(signed=True, n=60000, seed=0):
    rng = np.random.default_rng(seed)
    core = rng.normal(0, 1, n) if signed else np.abs(rng.normal(0, 1, n))
    v = np.concatenate([core, [40.0, -35.0] if signed else [40.0, 0.0]]).astype(np.float32)
    return Stats(float(v.min()), float(v.max()), v)


@pytest.mark.parametrize("signed", [True, False])
def test_methods_on_a_distribution_with_outliers(signed):
    s = outliers(signed)
    mm = choose_range(s, "minmax", 8)
    assert (mm.lo, mm.hi) == (s.lo, s.hi)
    for m in ("percentile:99.9", "percentile:99.99", "mse", "kl"):
        r = choose_range(s, m, 8)
        assert (r.lo < 0) == signed, m  # the method never changes the sign
        assert r.max_abs < mm.max_abs, m  # every method clips the two outliers
    p = choose_range(s, "percentile:99.9", 8)
    core = np.abs(s.sample[:-2])
    assert np.quantile(core, 0.99) < p.max_abs < 5.0
    # MSE: the best power-of-two scale among its candidates, exhaustively
    v = s.sample.astype(np.float64)
    err = {f: _quant_error(v, FixedType(8, f, signed)) for f in range(-2, 12)}
    got = frac_for_range(choose_range(s, "mse", 8).max_abs, 8, signed)
    base = frac_for_range(mm.max_abs, 8, signed)
    assert err[got] == min(err[f] for f in range(base, base + 9)) and err[got] < err[base]


def test_kl_keeps_a_range_without_outliers():
    """On a uniform distribution nothing is an outlier: KL keeps (nearly) the whole range."""
    v = np.random.default_rng(1).uniform(-1, 1, 50000).astype(np.float32)
    r = choose_range(Stats(float(v.min()), float(v.max()), v), "kl", 8)
    assert r.max_abs > 0.9


def test_observe_samples_uniformly_with_exact_extremes(digits_data):
    ex = ROOT / "examples" / "digits_cnn"
    f = run_float_pipeline(import_onnx(ex / "model.onnx"))
    x = np.load(ex / "calibration.npz")["x"]
    st = observe(f, x, batch=37, sample_size=500)
    mm = nnforge.passes.calibrate_minmax(f, x)
    assert set(st) == set(mm)
    for name, s in st.items():
        assert (s.lo, s.hi) == (mm[name].lo, mm[name].hi)
        assert s.sample.size <= 500 and s.lo <= s.sample.min() and s.sample.max() <= s.hi
    inp = f.inputs[0]
    assert abs(st[inp].sample.mean() - x.mean()) < 0.05  # a uniform sample of the pixels


def test_overrides_by_node_or_tensor_name():
    ex = ROOT / "examples" / "digits_cnn"
    f = run_float_pipeline(import_onnx(ex / "model.onnx"))
    x = np.load(ex / "calibration.npz")["x"]
    conv = next(n for n in f.topo() if n.op == "Conv")
    r = calibrate(f, x, 4, "minmax", {conv.name: "percentile:99"})
    mm = calibrate(f, x, 4, "minmax")
    assert r[conv.outputs[0]].hi < mm[conv.outputs[0]].hi
    assert all(r[t] == mm[t] for t in mm if t != conv.outputs[0])
    with pytest.raises(ValueError, match="no tensor or node"):
        calibrate(f, x, 4, "minmax", {"nonexistent": "mse"})


@pytest.mark.parametrize("method", ["percentile:99.9", "mse", "kl"])
def test_designs_stay_bit_exact(method, tmp_path):
    """The method changes types only: C still equals golden in every integer (4-bit
    activations, where the choice matters)."""
    ex = ROOT / "examples" / "digits_cnn"
    test = np.load(ex / "test.npz")
    d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], act_bits=4,
                        calibration_method=method)
    d.write(tmp_path / "o", targets=["c"])
    res = d.verify(test["x"][:120], backends=["golden", "c"], outdir=tmp_path / "o")
    assert res.backends["c"].mismatches == 0
    info = json.loads((tmp_path / "o" / "report.json").read_text())
    assert info["quantization"]["calibration"] == method
    assert nnforge.load(tmp_path / "o").config.calibration == method


def test_mse_beats_minmax_at_4_bit_activations():
    """Measured on the digits CNN: min-max keeps rare large activations and loses
    resolution at 4 bits; MSE trades them for finer steps."""
    ex = ROOT / "examples" / "digits_cnn"
    test = np.load(ex / "test.npz")
    cal = np.load(ex / "calibration.npz")["x"]
    acc = {}
    for m in ("minmax", "mse"):
        d = nnforge.compile(ex / "model.onnx", calibration=cal, act_bits=4, calibration_method=m)
        acc[m] = float((d.predict(test["x"]).reshape(len(test["x"]), -1).argmax(1) == test["y"]).mean())
    assert acc["mse"] >= acc["minmax"] + 0.05, acc
