"""Pruning (passes/prune.py) and what it saves: magnitude pruning sets exactly the share of
weights asked to 0, structured pruning removes channels (tied across a residual Add), the
one-shot refit keeps accuracy a fixed weight mask loses, and the C backend skips the zeros
(compressed sparse loops) with every output equal to golden."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT
from nnforge.codegen import program
from nnforge.design import Design
from nnforge.frontend import import_onnx
from nnforge.ir.interp import run_float
from nnforge.passes import run_float_pipeline
from nnforge.passes.prune import channel_groups, prune_magnitude, prune_structured

EX = ROOT / "examples"


def _float(example):
    return run_float_pipeline(import_onnx(EX / example / "model.onnx"))


def _accuracy(g, example):
    t = np.load(EX / example / "test.npz")
    out = run_float(g, t["x"])[0]
    return float(np.mean(out.reshape(len(out), -1).argmax(axis=1) == t["y"]))


def _linear(g):
    return [n for n in g.topo() if n.op in ("Dense", "Conv")]


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.75, 0.9])
def test_magnitude_sets_the_share_asked(sparsity):
    g = _float("digits_cnn")
    before = {n.name: np.asarray(g.consts[n.inputs[1]]).copy() for n in _linear(g)}
    rep = prune_magnitude(g, sparsity)
    g.verify()
    for n in _linear(g):
        w, w0 = np.asarray(g.consts[n.inputs[1]]), before[n.name]
        k = int(np.floor(sparsity * w.size))
        assert np.sum(w == 0) == k == rep.layers[n.name]["zeros"]
        kept = w != 0  # the largest magnitudes stay, unchanged
        assert np.array_equal(w[kept], w0[kept])
        if k and kept.any():
            assert np.abs(w0[~kept]).max() <= np.abs(w0[kept]).min()
    with pytest.raises(ValueError):
        prune_magnitude(g, 1.0)


def test_refit_keeps_the_accuracy_a_mask_loses():
    """One-shot pruning with the calibration data: each output channel keeps the share of
    weights asked, and the refitted CNN at 50% stays close to float where plain magnitude
    pruning collapses."""
    x_cal = np.load(EX / "digits_cnn" / "calibration.npz")["x"][:256]
    base = _accuracy(_float("digits_cnn"), "digits_cnn")
    plain, fitted = _float("digits_cnn"), _float("digits_cnn")
    prune_magnitude(plain, 0.5)
    rep = prune_magnitude(fitted, 0.5, x_cal)
    fitted.verify()
    for n in _linear(fitted):
        w = np.asarray(fitted.consts[n.inputs[1]]).reshape(len(fitted.consts[n.inputs[1]]), -1)
        assert all(np.sum(r == 0) >= int(np.floor(0.5 * w.shape[1])) for r in w)
        assert rep.layers[n.name]["zeros"] == int(np.sum(w == 0))
    assert _accuracy(fitted, "digits_cnn") > base - 0.08
    assert _accuracy(fitted, "digits_cnn") > _accuracy(plain, "digits_cnn") + 0.3


def test_structured_removes_channels_tied_across_add():
    g = _float("digits_resnet")
    groups = channel_groups(g)
    tied = next(grp for grp in groups if len(grp["producers"]) == 3)
    assert tied["prunable"] and len(tied["channelwise"]) == 2  # the two depthwise convs
    assert not next(grp for grp in groups if "node_linear" in grp["producers"])["prunable"]  # the output
    x_cal = np.load(EX / "digits_resnet" / "calibration.npz")["x"][:256]
    rep = prune_structured(g, 0.5, x_cal)
    g.verify()
    for n in _linear(g):
        w = np.asarray(g.consts[n.inputs[1]])
        if n.name == "node_linear":
            assert w.shape == (10, 8)
        else:  # every conv of the tied group keeps the same 8 of 16 channels
            assert w.shape[0] == 8 and rep.layers[n.name] == {"weights": w.size, "zeros": 0, "channels": 16, "kept": 8}
            assert int(n.attr("groups", 1)) in (1, 8)
    assert g.shape("relu_4") == (8, 4, 4) and g.shape("view") == (8,)
    assert _accuracy(g, "digits_resnet") > 0.5


def _conv_model(rng):
    """Strided, dilated and padded convolutions (and a grouped one) ending in a Dense."""
    inits = {"w1": rng.normal(0, .5, (6, 2, 3, 3)), "b1": rng.normal(0, .1, 6),
             "w2": rng.normal(0, .3, (6, 3, 3, 3)), "b2": rng.normal(0, .1, 6),
             "w3": rng.normal(0, .5, (4, 6 * 3 * 4)), "b3": rng.normal(0, .1, 4)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[2, 1, 0, 2],
                              strides=[1, 2]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              dilations=[2, 1], group=2, strides=[2, 1]),
             helper.make_node("Flatten", ["c2"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 7, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("sparsity", [0.6, 0.95])
def test_sparse_c_is_exact_on_odd_geometry(tmp_path, sparsity):
    """Pads, strides, dilation and groups; at 95% some rows hold no weight at all."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (64, 2, 7, 6)).astype(np.float32)
    d = nnforge.compile(_conv_model(rng), calibration=x, bits=8, prune=sparsity)
    steps = [s for s in d.lowered("c").steps if s.kind in ("conv", "dense")]
    assert all(s.params["sparse"] for s in steps if s.kind == "conv")
    if sparsity > 0.9:
        assert all(s.params["sparse"] for s in steps)
    d.write(tmp_path / "o", targets=["c", "hls"])
    res = d.verify(x, backends=["golden", "c", "hls"], outdir=tmp_path / "o")
    assert all(b.mismatches == 0 for b in res.backends.values())
    assert "_sv[" in (tmp_path / "o" / "c" / "nnforge_model.c").read_text()


def test_pruned_design_is_exact_and_remembered(tmp_path, capsys):
    """--prune 0.75 on the digits CNN: the C code's Conv / Dense loops run over the nonzero
    weights only, every output equals golden on the test split, and the folder's design
    and report say what the pruning did."""
    from nnforge.cli import main

    ex = EX / "digits_cnn"
    out = tmp_path / "p"
    assert main(["compile", str(ex / "model.onnx"), "--calibration", str(ex / "calibration.npz"),
                 "--prune", "0.75", "--targets", "c,hls", "-o", str(out), "-q"]) == 0
    d = Design.load(out)
    (rep,) = d.compression
    assert rep["kind"] == "magnitude" and rep["zeros"] >= 0.74 * rep["weights"]
    q_zeros = sum(int(np.sum(np.asarray(d.qgraph.consts[n.inputs[1]]) == 0)) for n in _linear(d.qgraph))
    assert q_zeros >= rep["zeros"]  # quantization keeps a zero weight zero
    c_src = (out / "c" / "nnforge_model.c").read_text()
    for s in d.lowered("c").steps:
        if s.kind in ("conv", "dense") and s.params["sparse"]:
            assert f"{s.name}_sv[{s.params['s_size']}]" in c_src and f"{s.name}_w[" not in c_src
    test = np.load(ex / "test.npz")
    res = d.verify(test["x"], test["y"], backends=["golden", "c", "hls"], outdir=out)
    assert all(b.mismatches == 0 for b in res.backends.values()) and res.backends["c"].samples == len(test["x"])
    assert "pruning (magnitude, 75% weights set to 0)" in (out / "report.txt").read_text()
    assert json.loads((out / "report.json").read_text())["compression"] == d.compression
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "pruning (magnitude" in capsys.readouterr().out


def test_structured_pruning_shrinks_every_backend(tmp_path):
    """Half the channels of the CNN gone: fewer MACs and Verilog multipliers, and the C,
    HLS and Verilog outputs equal golden."""
    ex = EX / "digits_cnn"
    x_cal = np.load(ex / "calibration.npz")["x"]
    full = nnforge.compile(ex / "model.onnx", calibration=x_cal, bits=8)
    half = nnforge.compile(ex / "model.onnx", calibration=x_cal, bits=8, prune_structured=0.5)
    assert half.lowered("c").macs < 0.6 * full.lowered("c").macs
    test = np.load(ex / "test.npz")
    half.write(tmp_path / "o", parallelism="sequential")
    res = half.verify(test["x"][:40], test["y"][:40], backends=["golden", "c", "hls", "verilog"], outdir=tmp_path / "o")
    assert all(b.mismatches == 0 for b in res.backends.values())
    with pytest.raises(ValueError, match="sparsity"):
        nnforge.compile(ex / "model.onnx", calibration=x_cal, prune=1.5)


def test_sparse_rule_follows_density():
    w = np.zeros((4, 10), dtype=np.int64)
    w[:, :2] = 3  # density 0.2: sparse for a Dense layer (<= 0.25)
    p = program._sparse(w, w.nonzero()[1], "int8_t")
    assert p["sparse"] and p["nnz"] == 8 and p["weight_bytes"] < w.size
    w[:, :5] = 3  # density 0.5
    assert not program._sparse(w, w.nonzero()[1], "int8_t")["sparse"]


def test_time_c_runs_the_model(tmp_path):
    """The timing harness (benchmarks/bench_c_sparse.py) builds and runs the C code."""
    from nnforge.sim.native import time_c

    ex = EX / "digits_mlp"
    d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8, prune=0.9)
    out = d.write(tmp_path / "o", targets=["c"])
    ns = time_c(out / "c", tmp_path / "b", d.quantize_input(np.load(ex / "test.npz")["x"][:20]), repeats=2)
    assert 0 < ns < 1e7


def test_sparse_c_is_exact_on_a_1d_conv(tmp_path):
    rng = np.random.default_rng(4)
    inits = {"w1": rng.normal(0, .5, (4, 2, 5)), "b1": rng.normal(0, .1, 4),
             "w2": rng.normal(0, .5, (3, 4 * 10)), "b2": rng.normal(0, .1, 3)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[5], pads=[3, 1], dilations=[2]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "c1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 14])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.normal(0, 1, (48, 2, 14)).astype(np.float32)
    d = nnforge.compile(model, calibration=x, bits=8, prune=0.8)
    assert all(s.params["sparse"] for s in d.lowered("c").steps if s.kind in ("conv", "dense"))
    d.write(tmp_path / "o", targets=["c", "hls"])
    res = d.verify(x, backends=["golden", "c", "hls"], outdir=tmp_path / "o")
    assert all(b.mismatches == 0 for b in res.backends.values())


def _mlp_model(rng, sizes):
    """Gemm (+ Relu) layers of ``sizes`` (in, hidden..., out), normal random weights."""
    nodes, inits, x = [], {}, "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        inits[f"w{i}"], inits[f"b{i}"] = rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) / 4
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"g{i}"], transB=1))
        x = f"g{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
                          [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", sizes[-1]])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.slow
def test_unrolled_verilog_has_no_multiplier_for_a_zero_weight(tmp_path):
    """Every product at once (the Dense chain's "parallel" folding): the weights are
    constants and a zero (or +-2^k) weight has no multiplier; pruned to 75%, Yosys counts
    at least 2x fewer multipliers, as the writer says, and the outputs equal golden. The
    rule is per weight: a three-layer MLP (the digits MLP's form, smaller) shows it."""
    from nnforge.sim.verilog import synth_check

    rng = np.random.default_rng(5)
    model = _mlp_model(rng, (16, 12, 8, 4))
    x = rng.uniform(-1, 1, (256, 16)).astype(np.float32)
    counts = {}
    for s in (None, 0.75):
        d = nnforge.compile(model, calibration=x, bits=8, prune=s)
        out = d.write(tmp_path / f"p{s}", targets=["verilog"], parallelism="parallel")
        info = json.loads((out / "verilog" / "verilog_info.json").read_text())
        assert info["parallelism"] == "parallel"
        st = synth_check(out / "verilog", full=False)
        assert st["multipliers"] == 0  # no product of two varying operands
        assert st["constant_multipliers"] == info["totals"]["multipliers"]
        counts[s] = st["constant_multipliers"]
    assert counts[None] >= 2 * counts[0.75] > 0
    res = d.verify(x[:24], backends=["golden", "verilog"], outdir=tmp_path / "p0.75")
    assert res.backends["verilog"].mismatches == 0


def test_prune_to_an_accuracy_budget(tmp_path, capsys):
    """--prune-max-drop D: the largest sparsity step whose pruned float model stays within
    D of the unpruned accuracy on the validation data, and nothing beyond the budget."""
    from nnforge.cli import main
    from nnforge.design import DataError

    ex = EX / "digits_mlp"
    out = tmp_path / "b"
    assert main(["compile", str(ex / "model.onnx"), "--calibration", str(ex / "calibration.npz"),
                 "--validation", str(ex / "test.npz"), "--prune-max-drop", "0.02", "--targets", "c",
                 "-o", str(out)]) == 0
    said = capsys.readouterr()
    assert "pruning budget 2.0%" in said.out + said.err
    d = Design.load(out)
    (rep,) = d.compression
    test = np.load(ex / "test.npz")
    f = run_float_pipeline(import_onnx(ex / "model.onnx"))
    acc = lambda h: float(np.mean(run_float(h, test["x"])[0].argmax(1) == test["y"]))  # noqa: E731
    base = acc(f)
    x_cal = np.load(ex / "calibration.npz")["x"]
    h = f.copy()
    prune_magnitude(h, rep["sparsity"], x_cal[:512])
    assert rep["sparsity"] >= 0.3 and base - acc(h) <= 0.02
    nxt = f.copy()  # the next step up breaks the budget
    steps = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    if rep["sparsity"] < steps[-1]:
        prune_magnitude(nxt, steps[steps.index(rep["sparsity"]) + 1], x_cal[:512])
        assert base - acc(nxt) > 0.02
    with pytest.raises(DataError, match="needs validation"):
        nnforge.compile(ex / "model.onnx", calibration=x_cal, prune_max_drop=0.01)
