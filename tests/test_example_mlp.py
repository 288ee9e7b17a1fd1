"""The bundled example, examples/digits_mlp: float against onnxruntime, then every
backend (golden, C, HLS C++) bit-exact on the whole test split, with accuracy asserted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import nnforge
from nnforge import Design
from nnforge.frontend import import_onnx
from nnforge.ir import run_float

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_mlp"
MODEL = EXAMPLE / "model.onnx"


@pytest.fixture(scope="module")
def data():
    test = np.load(EXAMPLE / "test.npz")
    cal = np.load(EXAMPLE / "calibration.npz")["x"]
    return cal, test["x"], test["y"]


@pytest.fixture(scope="module")
def ort_probs(data):
    _, x, _ = data
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="module")
def design(data):
    cal, _, _ = data
    return nnforge.compile(MODEL, calibration=cal, bits=8)


def test_example_data_is_the_documented_split(data):
    cal, x, y = data
    assert x.shape == (360, 64) and y.shape == (360,) and cal.shape == (500, 64)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert sorted(set(y.tolist())) == list(range(10))


def test_float_interpreter_matches_onnxruntime(data, ort_probs):
    _, x, y = data
    g = import_onnx(MODEL)
    assert [n.op for n in g.topo()] == ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"]
    mine = run_float(g, x)[0]
    assert mine.shape == ort_probs.shape == (360, 10)
    np.testing.assert_allclose(mine, ort_probs, rtol=1e-5, atol=1e-6)
    assert (mine.argmax(1) == ort_probs.argmax(1)).all()
    assert (ort_probs.argmax(1) == y).mean() > 0.95


def test_compiled_design_shape(design):
    assert design.input_shape == (64,) and design.output_shape == (10,)
    layers = design.layers()
    assert [(r["op"], r.get("relu")) for r in layers] == [("Dense", True), ("Dense", True), ("Dense", False)]
    assert all(r["weights"].startswith("s8.") and r["output"][1:].startswith("8.") for r in layers)
    assert design.qgraph.meta["output_softmax"]
    np.testing.assert_allclose(design.predict_float(np.load(EXAMPLE / "test.npz")["x"][:5]).sum(1), 1.0, rtol=1e-5)


def test_every_backend_is_bit_exact_on_the_test_split(design, data, ort_probs, tmp_path):
    _, x, y = data
    out = design.write(tmp_path / "out", targets=["c", "hls"])
    result = design.verify(x, y, backends=["golden", "c", "hls"], outdir=out)
    float_acc = float((ort_probs.argmax(1) == y).mean())
    assert result.samples == 360
    assert result.float_accuracy == pytest.approx(float_acc)
    for name in ("golden", "c", "hls"):
        b = result.backends[name]
        assert b.samples == 360, name
        assert b.mismatches == 0 and b.first_mismatch is None, f"{name}: {b.mismatches} mismatches"
        assert b.accuracy == result.backends["golden"].accuracy
    golden_acc = result.backends["golden"].accuracy
    assert golden_acc >= float_acc - 0.015, f"8-bit accuracy {golden_acc:.4f} vs float {float_acc:.4f}"
    assert result.ok
    # golden really is what predict() gives
    assert golden_acc == pytest.approx(float((design.predict(x).argmax(1) == y).mean()))


def test_save_load_round_trip(design, data, tmp_path):
    _, x, _ = data
    design.save(tmp_path / "d")
    loaded = Design.load(tmp_path / "d")
    np.testing.assert_array_equal(loaded.predict(x), design.predict(x))
    np.testing.assert_array_equal(loaded.predict_float(x), design.predict_float(x))
    assert loaded.config == design.config
    assert loaded.summary() == design.summary()
    assert loaded.input_type == design.input_type and loaded.output_type == design.output_type
    for name, info in design.qgraph.tensors.items():
        assert loaded.qgraph.tensors[name] == info
    for name, value in design.qgraph.consts.items():
        np.testing.assert_array_equal(loaded.qgraph.consts[name], value)
        assert loaded.qgraph.consts[name].dtype == value.dtype
    assert loaded.qgraph.meta == design.qgraph.meta
    # and nnforge.load is the same entry point, also on a folder written by write()
    out = design.write(tmp_path / "out", targets=["c"])
    np.testing.assert_array_equal(nnforge.load(out).predict(x), design.predict(x))


def test_load_refuses_a_folder_without_a_design(tmp_path):
    with pytest.raises(FileNotFoundError, match="design.json"):
        Design.load(tmp_path)
