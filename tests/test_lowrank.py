"""Low-rank approximation (passes/lowrank.py): the rank chosen by energy, an exact split of
a low-rank layer, the 1x1 Conv case with strides and pads, and designs that stay bit exact
in every backend with fewer weights."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT
from nnforge.frontend import import_onnx
from nnforge.ir.interp import run_float
from nnforge.passes import run_float_pipeline
from nnforge.passes.lowrank import low_rank, rank_for


def test_rank_for_energy():
    s = np.array([3.0, 2.0, 1.0])  # squares 9, 4, 1 of 14
    assert rank_for(s, 9 / 14) == 1 and rank_for(s, 0.65) == 2 and rank_for(s, 1.0) == 3
    with pytest.raises(ValueError):
        low_rank(run_float_pipeline(import_onnx(ROOT / "examples" / "digits_mlp" / "model.onnx")), 0.0)


def _model(rng, w1, conv=False):
    """x -> layer(w1) -> relu -> Dense(4): a Dense, or a strided, padded 1x1 Conv."""
    if conv:
        c_out, c_in = w1.shape[:2]
        inits = {"w1": w1, "b1": rng.normal(0, .1, c_out), "w2": rng.normal(0, .5, (4, c_out * 4 * 4)),
                 "b2": rng.normal(0, .1, 4)}
        nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[1, 1], strides=[2, 2], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
                 helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
        shape = [c_in, 6, 6]
    else:
        inits = {"w1": w1.T, "b1": rng.normal(0, .1, w1.shape[0]), "w2": rng.normal(0, .5, (4, w1.shape[0])),
                 "b2": rng.normal(0, .1, 4)}
        nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                 helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
        shape = [w1.shape[1]]
    g = helper.make_graph(nodes, "lr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), shape


@pytest.mark.parametrize("conv", [False, True])
def test_a_low_rank_layer_splits_exactly(conv, tmp_path):
    """A rank-2 layer of 20 x 30 splits into 2 x 30 and 20 x 2 with the same float outputs;
    quantized, every backend equals golden."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, .3, (20, 2)) @ rng.normal(0, .3, (2, 30))
    model, shape = _model(rng, w.reshape(20, 30, 1, 1) if conv else w, conv)
    f = run_float_pipeline(import_onnx(model))
    g = f.copy()
    rep = low_rank(g, 0.999)
    g.verify()
    first = sorted(rep.layers)[0]
    assert rep.layers[first]["rank"] == 2 and rep.layers[first]["weights_after"] == 2 * (20 + 30)
    x = rng.normal(0, 1, (32, *shape)).astype(np.float32)
    np.testing.assert_allclose(run_float(g, x)[0], run_float(f, x)[0], rtol=1e-4, atol=1e-4)
    d = nnforge.compile(model, calibration=x, bits=8, low_rank=0.999)
    assert d.compression[0]["kind"] == "low_rank"
    d.write(tmp_path / "o", targets=["c", "hls"])
    res = d.verify(x, backends=["golden", "c", "hls"], outdir=tmp_path / "o")
    assert all(b.mismatches == 0 for b in res.backends.values())


def test_refit_keeps_accuracy():
    """At 90% energy the digits MLP's refitted split stays within a point of float, where
    the bare SVD truncation loses more than ten."""
    ex = ROOT / "examples" / "digits_mlp"
    t = np.load(ex / "test.npz")
    x_cal = np.load(ex / "calibration.npz")["x"][:512]

    def acc(h):
        return float(np.mean(run_float(h, t["x"])[0].argmax(axis=1) == t["y"]))

    f = run_float_pipeline(import_onnx(ex / "model.onnx"))
    bare, fitted = f.copy(), f.copy()
    low_rank(bare, 0.9)
    rep = low_rank(fitted, 0.9, x_cal)
    assert rep.as_dict()["weights_after"] < 0.8 * rep.as_dict()["weights"]
    assert acc(fitted) >= acc(f) - 0.01 and acc(bare) < acc(f) - 0.1


@pytest.mark.slow
def test_low_rank_mlp_is_exact_everywhere(tmp_path):
    ex = ROOT / "examples" / "digits_mlp"
    d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8, low_rank=0.9)
    assert sum(n.op == "Dense" for n in d.qgraph.topo()) == 5  # fc0 and fc1 split, fc2 kept
    t = np.load(ex / "test.npz")
    d.write(tmp_path / "o")
    res = d.verify(t["x"][:64], t["y"][:64], outdir=tmp_path / "o")
    assert res.ok and res.backends["golden"].accuracy > 0.93
    assert "low rank (90%" in (tmp_path / "o" / "report.txt").read_text()
