"""Weight sharing (passes/share.py): k-means keeps at most 2^k values per layer (a zero
stays 0), the refit of the shared values keeps accuracy, and the quantized layers hold at
most 2^k distinct nonzero integers, bit exact in every backend."""

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.frontend import import_onnx
from nnforge.ir.interp import run_float
from nnforge.passes import run_float_pipeline
from nnforge.passes.share import kmeans_1d, share_weights

EX = ROOT / "examples"


def test_kmeans_1d():
    v = np.array([0.1, 0.11, 0.12, 5.0, 5.1, -3.0, -3.05])
    c, idx = kmeans_1d(v, 3)
    assert len(c) == 3 and np.allclose(c, [-3.025, 0.11, 5.05])
    assert list(idx) == [1, 1, 1, 2, 2, 0, 0]
    c, idx = kmeans_1d(np.array([1.0, 2.0, 1.0]), 8)  # fewer distinct values than clusters
    assert list(c) == [1.0, 2.0] and list(idx) == [0, 1, 0]


def test_sharing_keeps_2k_values_and_zeros():
    ex = EX / "digits_cnn"
    f = run_float_pipeline(import_onnx(ex / "model.onnx"))
    lin = [n for n in f.topo() if n.op in ("Dense", "Conv")]
    w = np.asarray(f.consts[lin[1].inputs[1]]).copy()
    w[0] = 0.0  # a pruned filter
    f.consts[lin[1].inputs[1]] = w
    t = np.load(ex / "test.npz")
    x_cal = np.load(ex / "calibration.npz")["x"][:256]
    zeroed = f.copy()
    rep = share_weights(zeroed, 3, x_cal)
    for n in lin:  # a zero weight stays 0 and is one of the 8 values
        v = np.asarray(zeroed.consts[n.inputs[1]])
        assert len(np.unique(v[v != 0])) == rep.layers[n.name]["values"] <= (8 if np.all(v != 0) else 7)
    assert np.all(np.asarray(zeroed.consts[lin[1].inputs[1]])[0] == 0)
    whole = run_float_pipeline(import_onnx(ex / "model.onnx"))
    plain, fitted = whole.copy(), whole.copy()
    share_weights(plain, 3)
    share_weights(fitted, 3, x_cal)

    def acc(h):
        return float(np.mean(run_float(h, t["x"])[0].reshape(len(t["x"]), -1).argmax(axis=1) == t["y"]))

    assert acc(fitted) > acc(plain) + 0.1 and acc(fitted) > 0.95
    with pytest.raises(ValueError):
        share_weights(f.copy(), 0)


def test_shared_design_is_exact(tmp_path):
    ex = EX / "digits_cnn"
    d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8, share_weights=3)
    assert d.compression[-1]["kind"] == "share"
    for n in d.qgraph.topo():
        if n.op in ("Dense", "Conv"):
            q = np.asarray(d.qgraph.consts[n.inputs[1]])
            assert len(np.unique(q[q != 0])) <= 8
    # the C file holds 4-bit indices and a table, half the bytes of the weights
    steps = [s for s in d.lowered("c").steps if s.kind in ("conv", "dense")]
    assert all(s.params["shared"] and s.params["weight_bytes"] < s.params["w_size"] for s in steps)
    assert sum(s.params["weight_bytes"] for s in steps) < 0.6 * sum(s.params["w_size"] for s in steps)
    t = np.load(ex / "test.npz")
    d.write(tmp_path / "o", targets=["c", "hls"])
    res = d.verify(t["x"], t["y"], backends=["golden", "c", "hls"], outdir=tmp_path / "o")
    assert res.ok and res.backends["golden"].accuracy > 0.9
    assert "weight sharing (2^3 = 8 values" in (tmp_path / "o" / "report.txt").read_text()
    src = (tmp_path / "o" / "c" / "nnforge_model.c").read_text()
    assert "_tab[" in src and "_decode(void)" in src
