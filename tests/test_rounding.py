"""Rounding search (--rounding search): per output channel, weights round down or up as
lowers the layer's output error on calibration inputs."""

import numpy as np
import pytest

import nnforge
from nnforge.passes.rounding import layer_inputs, search_rounding
from conftest import ROOT


def test_search_never_worse_than_nearest_on_its_inputs():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, size=(6, 20))
    x = rng.normal(0.5, 1.0, size=(500, 20))
    s = np.abs(w).max(axis=1) / 7
    nearest = np.clip(np.floor(w / s[:, None] + 0.5), -7, 7).astype(np.int64)
    q, shift = search_rounding(w, nearest, s, -7, 7, [x])
    assert np.all(np.abs(q - w / s[:, None]) < 1)  # still a neighbour of every weight
    xc = x - x.mean(axis=0)
    for n in range(6):
        err = lambda qq: np.sum((xc @ (qq * s[n] - w[n])) ** 2)  # noqa: E731
        assert err(q[n]) <= err(nearest[n]) + 1e-12
        assert np.isclose(shift[n], -np.mean(x @ (q[n] * s[n] - w[n])))
    assert not np.array_equal(q, nearest)  # it found something better


@pytest.mark.parametrize("example,scale", [("digits_cnn", "pow2"), ("digits_resnet", "real")])
def test_search_pays_at_3_bits_and_backends_stay_exact(tmp_path, example, scale):
    d = ROOT / "examples" / example
    cal = np.load(d / "calibration.npz")["x"]
    test = np.load(d / "test.npz")
    x, y = test["x"], test["y"]
    acc = {}
    for r in ("nearest", "search"):
        des = nnforge.compile(d / "model.onnx", calibration=cal, weight_bits=3, act_bits=8, per_channel=True,
                              calibration_method="mse", rounding=r, scale=scale)
        acc[r] = float((des.predict(x).reshape(len(x), -1).argmax(1) == y).mean())
    assert des.config.rounding == "search"
    assert acc["search"] > acc["nearest"] + 0.05, acc
    res = des.verify(x[:40], y[:40], backends=("golden", "c"))
    assert res.ok, str(res)


def test_layer_inputs_follow_weight_order():
    """Conv inputs as im2col rows per group: X @ W[n].reshape(-1) is the conv output."""
    d = ROOT / "examples" / "digits_resnet"
    des = nnforge.compile(d / "model.onnx", calibration=np.load(d / "calibration.npz")["x"][:32])
    f = des._float_passes
    xs = layer_inputs(f, np.load(d / "calibration.npz")["x"][:4])
    from nnforge.ir import run_float
    env = run_float(f, np.load(d / "calibration.npz")["x"][:4].astype(np.float32), keep=True)
    for node in f.topo():
        if node.op != "Conv":
            continue
        w = f.consts[node.inputs[1]].astype(np.float64)
        b = f.consts[node.inputs[2]].astype(np.float64)
        groups = int(node.attr("groups", 1))
        per = len(w) // groups
        out = env[node.outputs[0]]  # (N, M, *sp)
        for n in (0, len(w) - 1):
            got = xs[node.name][n // per] @ w[n].reshape(-1) + b[n]
            want = out[:, n].reshape(-1)
            if node.attr("relu"):
                got = np.maximum(got, 0)
            np.testing.assert_allclose(np.sort(got), np.sort(want), rtol=1e-4, atol=1e-4)
