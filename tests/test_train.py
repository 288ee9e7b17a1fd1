"""nnforge.train: the PyTorch module of a design computes the golden integers exactly (every
op of the backend grid, the bundled networks in every quantization scheme), its gradients
are the straight-through ones, and fine-tuning gives designs whose every backend agrees
with the training's forward pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nnforge  # noqa: E402
from nnforge.train.module import IntegerModule  # noqa: E402
from nnforge.train.ops import LOWERINGS, TrainLoweringError  # noqa: E402
from nnforge.train.ste import requantize, round_clamp  # noqa: E402
from test_op_grid import CASES, case  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
UNTRAINABLE = {"resize2d", "resize1d", "upsample"}  # Resize has no lowering yet: refused by name


def forward(design, x_int) -> np.ndarray:
    with torch.no_grad():
        return IntegerModule(design.qgraph, design.compression)(torch.as_tensor(x_int)).numpy()


def assert_exact(design, x_int) -> None:
    golden = design.predict_int(x_int)
    y = forward(design, x_int)
    assert y.shape == golden.shape
    bad = np.flatnonzero((y.reshape(len(y), -1) != golden.reshape(len(y), -1)).any(axis=1))
    assert not len(bad), f"{len(bad)} of {len(y)} samples differ from golden, first {bad[0]}"
    assert np.array_equal(y, np.rint(y))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_grid_op_equals_golden(name):
    design, x_int = case(name)
    if name in UNTRAINABLE:
        with pytest.raises(TrainLoweringError, match="node .*cannot be trained"):
            IntegerModule(design.qgraph)
        return
    assert_exact(design, x_int)


def _example(name: str, **options):
    p = EXAMPLES / name
    return nnforge.compile(p / "model.onnx", calibration=np.load(p / "calibration.npz")["x"], **options)


SCHEMES = {
    "8bit": dict(bits=8),
    "4bit": dict(bits=4),
    "w2a4": dict(bits=4, weight_bits=2),
    "per-channel": dict(bits=8, per_channel=True),
    "real": dict(bits=8, scale="real"),
    "real-asym": dict(bits=8, scale="real", asymmetric=True),
    "rounding-search": dict(bits=4, rounding="search"),
    "pruned": dict(bits=8, prune=0.6),
    "shared": dict(bits=8, share_weights=3),
    "low-rank": dict(bits=8, low_rank=0.9),
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn", "digits_resnet"])
def test_examples_equal_golden_in_every_scheme(example, scheme):
    design = _example(example, **SCHEMES[scheme])
    x = np.load(EXAMPLES / example / "test.npz")["x"]
    assert_exact(design, design.quantize_input(x))


def test_requantize_is_the_contract_and_its_gradient_straight_through():
    acc = torch.tensor([-9.0, -8.0, -3.0, -2.0, 2.0, 6.0, 7.0, 100.0], dtype=torch.float64, requires_grad=True)
    y = requantize(acc, torch.tensor(3), 2, -4, 5)  # (acc * 3 + 2) >> 2, clamped to [-4, 5]
    want = np.clip((np.array([-9, -8, -3, -2, 2, 6, 7, 100]) * 3 + 2) >> 2, -4, 5)
    assert y.detach().numpy().tolist() == want.tolist()
    y.sum().backward()
    inside = ((np.array([-9, -8, -3, -2, 2, 6, 7, 100]) * 3 + 2) >> 2)
    inside = (inside >= -4) & (inside <= 5)
    assert acc.grad.numpy().tolist() == (0.75 * inside).tolist()  # ratio 3 * 2^-2 where not saturated


def test_round_clamp_rounds_half_up():
    v = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.49, 2.5, 9.0], dtype=torch.float64, requires_grad=True)
    y = round_clamp(v, -7, 7)
    assert y.detach().numpy().tolist() == [-2.0, -1.0, 0.0, 1.0, 1.0, 3.0, 7.0]
    y.sum().backward()
    assert v.grad.numpy().tolist() == [1, 1, 1, 1, 1, 1, 0]


def test_gradients_through_the_integers_are_the_float_gradients():
    """At 16 bits the quantized network is close to the float one: the weight gradients the
    module gives (in real units, from the integers and the scales) match autograd on the float
    network's own computation."""
    design = _example("digits_mlp", bits=16)
    x = np.load(EXAMPLES / "digits_mlp" / "test.npz")["x"][:64]
    y = np.load(EXAMPLES / "digits_mlp" / "test.npz")["y"][:64]
    m = IntegerModule(design.qgraph, design.compression)
    loss = torch.nn.functional.cross_entropy(m.logits(torch.as_tensor(design.quantize_input(x))), torch.as_tensor(y))
    loss.backward()
    layer = m.layers["l0"]
    g_int = layer.weight.grad.numpy() / layer.w_scale.numpy()[:, None]  # per grid step -> per real unit
    q = design.qgraph
    ws = [torch.tensor(q.consts[n.inputs[1]] * m.layers[f"l{i}"].w_scale.numpy()[:, None], requires_grad=True)
          for i, n in enumerate(q.topo()) if n.op == "Dense"]
    bs = [torch.tensor(q.consts[n.inputs[2]] * (m.layers[f"l{i}"].w_scale.numpy()
                                                 * q.qtype(n.inputs[0]).scale)) for i, n in enumerate(q.topo())
          if n.op == "Dense"]
    h = torch.as_tensor(x, dtype=torch.float64)
    for i, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w.T + b
        if i < len(ws) - 1:
            h = h.clamp(min=0)
    torch.nn.functional.cross_entropy(h, torch.as_tensor(y)).backward()
    ref = ws[0].grad.numpy()
    assert np.abs(g_int - ref).max() < 0.05 * np.abs(ref).max()


def test_the_lowering_table_names_real_ops():
    from nnforge.ir.ops import OPS

    assert set(LOWERINGS) <= set(OPS)


# ---- fine-tuning ---------------------------------------------------------------------------

def _split(name: str):
    tr = np.load(EXAMPLES / name / "train.npz")
    k = int(len(tr["x"]) * 0.85)
    return (tr["x"][:k], tr["y"][:k]), (tr["x"][k:], tr["y"][k:])


def test_finetune_recovers_4bit_accuracy_and_every_backend_agrees(tmp_path):
    (x, y), val = _split("digits_mlp")
    test = np.load(EXAMPLES / "digits_mlp" / "test.npz")
    design = _example("digits_mlp", bits=4)
    tuned = design.finetune(x, y, validation=val, epochs=8, seed=1)  # the default rate
    acc = lambda d: float(np.mean(d.predict(test["x"]).argmax(axis=1) == test["y"]))  # noqa: E731
    assert acc(tuned) > acc(design) + 0.02
    run = tuned.training[-1]
    assert len(run["history"]) == 8 and run["kept_epoch"] >= 1
    assert run["validation_after"] == run["history"][run["kept_epoch"] - 1]["validation"]
    x_int = tuned.quantize_input(test["x"])
    assert_exact(tuned, x_int)  # the training's forward pass is what ships
    out = tuned.write(tmp_path / "out", targets=["c", "verilog"])
    result = tuned.verify(test["x"][:40], test["y"][:40], backends=["golden", "c", "verilog"], outdir=out)
    assert result.ok
    again = nnforge.Design.load(out)
    assert again.training == tuned.training
    assert "fine-tuned (classification, labels)" in (out / "report.txt").read_text()
    assert json.loads((out / "report.json").read_text())["training"][0]["config"]["seed"] == 1


def test_finetune_is_repeatable_and_keeps_pruning_and_sharing():
    (x, y), val = _split("digits_cnn")
    x, y = x[:400], y[:400]
    pruned = _example("digits_cnn", bits=6, prune=0.75)
    a = pruned.finetune(x, y, epochs=2, seed=3, formats=False)
    b = pruned.finetune(x, y, epochs=2, seed=3, formats=False)
    for n in pruned.qgraph.topo():
        if n.op in ("Conv", "Dense"):
            w0, wa = pruned.qgraph.consts[n.inputs[1]], a.qgraph.consts[n.inputs[1]]
            assert np.all(wa[w0 == 0] == 0)  # pruned weights stay 0
            assert np.array_equal(wa, b.qgraph.consts[n.inputs[1]])  # same seed, same result
    assert any(not np.array_equal(pruned.qgraph.consts[k], a.qgraph.consts[k]) for k in pruned.qgraph.consts)
    shared = _example("digits_cnn", bits=8, share_weights=2)
    s = shared.finetune(x, y, epochs=2, formats=False)
    for n in shared.qgraph.topo():
        if n.op in ("Conv", "Dense"):
            assert len(np.unique(s.qgraph.consts[n.inputs[1]])) <= len(np.unique(shared.qgraph.consts[n.inputs[1]]))
    assert_exact(s, s.quantize_input(val[0]))


def test_gradual_pruning_reaches_its_sparsity_and_records_it():
    from nnforge.train.loop import prune_schedule

    assert prune_schedule(0.75, 1, 10) < prune_schedule(0.75, 3, 10) < prune_schedule(0.75, 6, 10) == 0.75
    (x, y), val = _split("digits_mlp")
    design = _example("digits_mlp", bits=8)
    tuned = design.finetune(x, y, validation=val, epochs=5, prune=0.5, lr=0.006)
    for n in tuned.qgraph.topo():
        if n.op == "Dense":
            w = tuned.qgraph.consts[n.inputs[1]]
            assert abs(np.mean(w == 0) - 0.5) < 0.01, n.name
    record = tuned.compression[-1]
    assert record["kind"] == "magnitude" and record["sparsity"] == 0.5 and record["zeros"] >= record["weights"] // 2
    zeros = sum(int(np.sum(tuned.qgraph.consts[n.inputs[1]] == 0)) for n in tuned.qgraph.topo() if n.op == "Dense")
    assert zeros == record["zeros"]  # the record is the design's
    assert_exact(tuned, tuned.quantize_input(val[0]))


@pytest.mark.parametrize("per_channel", [False, True])
def test_learned_scales_snap_back_to_the_scheme(per_channel, tmp_path):
    """A real-scale design learns its weight scales (one per layer, or one per output
    channel with per-channel scales): the multipliers move, a per-tensor layer keeps one,
    the training's forward pass equals golden on the new design, and the backends agree."""
    from nnforge.train.module import IntegerModule

    (x, y), val = _split("digits_cnn")
    design = _example("digits_cnn", bits=4, weight_bits=2 if per_channel else 4, per_channel=per_channel,
                      scale="real")
    tuned = design.finetune(x[:600], y[:600], validation=val, epochs=4, formats=True)
    assert tuned.training[-1]["kept_epoch"] > 0
    before = {n.name: n.attr("rq_mult") for n in design.qgraph.topo() if n.op in ("Conv", "Dense")}
    moved = 0
    for n in tuned.qgraph.topo():
        if n.op in ("Conv", "Dense") and n.name in before:
            mult = n.attr("rq_mult")
            assert len(mult) == len(before[n.name])
            if not per_channel:
                assert len(set(mult)) == 1  # a per-tensor layer keeps one scale
            moved += tuple(mult) != tuple(before[n.name])
    assert moved  # the scales did move
    assert tuned.training[-1]["learned_scales"] == ("channel" if per_channel else "tensor")
    module = IntegerModule(tuned.qgraph, tuned.compression)
    assert not any(p.numel() == 0 for p in module.parameters())
    assert_exact(tuned, tuned.quantize_input(val[0]))
    out = tuned.write(tmp_path / "o", targets=["c", "hls"])
    assert tuned.verify(val[0][:20], backends=("golden", "c", "hls"), outdir=out).ok


def test_global_pruning_reaches_the_networks_sparsity():
    """``prune_scope="global"``: the network as a whole at the sparsity, its layers at
    different shares, none beyond the cap; the zeros stay zeros and the record says so."""
    from nnforge.train.module import GLOBAL_CAP

    (x, y), val = _split("digits_cnn")
    design = _example("digits_cnn", bits=8)
    tuned = design.finetune(x[:300], y[:300], validation=val, epochs=4, prune=0.75, prune_scope="global",
                            formats=False)
    layers = [n for n in tuned.qgraph.topo() if n.op in ("Conv", "Dense")]
    zeros = [int(np.sum(tuned.qgraph.consts[n.inputs[1]] == 0)) for n in layers]
    sizes = [tuned.qgraph.consts[n.inputs[1]].size for n in layers]
    assert abs(sum(zeros) / sum(sizes) - 0.75) < 0.01
    shares = [z / n for z, n in zip(zeros, sizes)]
    assert max(shares) - min(shares) > 0.1 and max(shares) <= GLOBAL_CAP + 1 / min(sizes), shares
    record = tuned.compression[-1]
    assert record["zeros"] == sum(zeros) and tuned.training[-1]["config"]["prune_scope"] == "global"
    assert_exact(tuned, tuned.quantize_input(val[0]))
    with pytest.raises(ValueError, match="pruning scope"):
        design.finetune(x, y, epochs=1, prune=0.5, prune_scope="everywhere")


def test_distillation_without_labels():
    (x, _), val = _split("digits_mlp")
    design = _example("digits_mlp", bits=4)
    tuned = design.finetune(x, None, validation=val, epochs=3, distill=4.0)
    run = tuned.training[-1]
    assert not run["labels"] and run["config"]["distill"] == 4.0
    with pytest.raises(ValueError, match="labels, or distillation"):
        design.finetune(x, None, epochs=1)


@pytest.mark.parametrize("scheme", ["4bit", "real", "per-channel", "pruned"])
@pytest.mark.parametrize("example", ["digits_cnn", "digits_resnet"])
def test_the_type_ranges_quantize_back_to_the_design(example, scheme):
    """The format search starts from ranges that, quantized again by the compiler from the
    float graph, give the design itself: every type, constant and attribute."""
    from nnforge.train.ranges import requantize, type_ranges

    design = _example(example, bias_correction=False, **SCHEMES[scheme])
    q = design.qgraph
    again = requantize(design._float_passes, type_ranges(q), design.config)
    assert all(again.qtype(t) == q.qtype(t) for t in q.tensors)
    assert all(np.array_equal(again.consts[k], q.consts[k]) for k in q.consts)
    assert all(again.node(n.name).attrs == n.attrs for n in q.topo())


@pytest.mark.parametrize("scale", ["pow2", "real"])
def test_format_search_moves_formats_and_stays_exact(scale):
    (x, y), val = _split("digits_cnn")
    design = _example("digits_cnn", bits=4, scale=scale)
    tuned = design.finetune(x[:600], y[:600], epochs=2)  # no validation: the trained design is the result
    moved = tuned.training[-1]["formats_moved"]
    assert moved  # 4-bit min/max formats are far from the best on this network
    changed = {m["tensor"] for m in moved}
    assert all(str(tuned.qgraph.qtype(t)) == m["after"] for m in moved for t in [m["tensor"]])
    assert any(str(design.qgraph.qtype(t)) != str(tuned.qgraph.qtype(t)) for t in changed)
    assert_exact(tuned, tuned.quantize_input(val[0]))


def test_cli_finetune(tmp_path):
    ex = EXAMPLES / "digits_mlp"
    a, b = tmp_path / "a", tmp_path / "b"
    cli = [sys.executable, "-m", "nnforge"]
    subprocess.run([*cli, "compile", str(ex / "model.onnx"), "--calibration", str(ex / "calibration.npz"),
                    "--bits", "4", "--targets", "c,hls", "-o", str(a), "-q"], check=True)
    r = subprocess.run([*cli, "finetune", str(a), "--data", str(ex / "train.npz"), "--validation",
                        str(ex / "test.npz"), "--epochs", "3", "--distill", "-o", str(b)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "epoch 3/3" in r.stderr and "fine-tuned" in r.stdout
    assert json.loads((b / "report.json").read_text())["targets"] == ["c", "hls"]
    v = subprocess.run([*cli, "verify", str(b), "--data", str(ex / "test.npz"), "-q"], capture_output=True, text=True)
    assert v.returncode == 0 and "all backends match golden" in v.stdout
    # data without labels needs --distill; the folders are kept as they were
    np.savez(tmp_path / "x.npz", x=np.load(ex / "train.npz")["x"])
    r = subprocess.run([*cli, "finetune", str(a), "--data", str(tmp_path / "x.npz"), "-o", str(tmp_path / "c")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--distill" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "c").exists()


def test_without_torch_one_line(tmp_path, monkeypatch, capsys):
    """Without PyTorch, 'nnforge finetune' says how to get it in one line (exit 2) and the
    API raises TrainUnavailable; nothing is written."""
    import importlib.util

    from nnforge.cli import main
    from nnforge.train import TrainUnavailable

    ex = EXAMPLES / "digits_mlp"
    design = _example("digits_mlp", bits=8)
    out = design.write(tmp_path / "a", targets=["c"])
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a))
    assert main(["finetune", str(out), "--data", str(ex / "train.npz"), "-o", str(tmp_path / "b"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'nnforge[train]'" in err
    assert not (tmp_path / "b").exists()
    with pytest.raises(TrainUnavailable):
        design.finetune(np.load(ex / "train.npz")["x"][:10], np.load(ex / "train.npz")["y"][:10])


def _regression_model():
    """A 2-layer MLP with 4 real-valued outputs (no Softmax): a regression model."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    w1, w2 = rng.normal(0, 0.4, (16, 8)).astype(np.float32), rng.normal(0, 0.4, (4, 16)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(16, np.float32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(np.zeros(4, np.float32), "b2")]
    g = helper.make_graph(nodes, "reg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m, rng.normal(0, 1, (256, 8)).astype(np.float32)


def test_regression_targets_and_unlabelled_distillation_use_the_squared_error():
    model, x = _regression_model()
    design = nnforge.compile(model, calibration=x, bits=4)
    target = design.predict_float(x) * 1.1  # float targets shaped like the output
    a = design.finetune(x, target, validation=(x[:64], target[:64]), epochs=3)
    assert a.training[-1]["task"] == "regression"
    b = design.finetune(x, None, epochs=2, distill=2.0)  # no labels, no Softmax: match the outputs
    assert b.training[-1]["task"] == "regression" and not b.training[-1]["labels"]
    assert_exact(b, b.quantize_input(x))
    with pytest.raises(nnforge.DataError, match="float targets"):
        design.finetune(x, np.zeros((len(x), 3)), epochs=1)


def test_finetune_keeps_the_folding_and_refuses_a_folder_of_user_files(tmp_path):
    """The new folder is written with OUTDIR's Verilog folding (a multiplier budget here),
    and an output folder holding files nnforge did not write is refused before training."""
    from nnforge.cli import main
    from nnforge.targets import folding_of

    ex = EXAMPLES / "digits_mlp"
    design = _example("digits_mlp", bits=6)
    a = design.write(tmp_path / "a", targets=["verilog"], max_multipliers=3)
    report = json.loads((a / "report.json").read_text())
    assert folding_of(report) == {"max_multipliers": 3}
    assert main(["finetune", str(a), "--data", str(ex / "train.npz"), "--epochs", "1", "-o", str(tmp_path / "b"),
                 "-q"]) == 0
    new = json.loads((tmp_path / "b" / "report.json").read_text())
    assert new["targets"] == ["verilog"] and folding_of(new) == {"max_multipliers": 3}
    assert main(["finetune", str(a), "--data", str(ex / "train.npz"), "--prune-global", "-o",
                 str(tmp_path / "g"), "-q"]) == 2  # (--prune-global without --prune: nothing trained)
    assert not (tmp_path / "g").exists()
    assert new["verilog"]["folding"]["period_cycles"] == report["verilog"]["folding"]["period_cycles"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["finetune", str(a), "--data", str(ex / "train.npz"), "-o", str(mine), "-q"]) == 2
    assert (mine / "notes.txt").read_text() == "keep me"
    assert folding_of({"verilog": {"folding": {"mode": "sequential"}}}) == "sequential"
    with pytest.raises(ValueError, match="folding"):
        folding_of({"verilog": {"folding": {"mode": "target"}}})


def test_the_core_flow_does_not_import_torch():
    """compile, write and the CLI's error path run without importing PyTorch (an optional extra)."""
    ex = EXAMPLES / "digits_mlp"
    code = ("import sys, numpy as np, tempfile, nnforge\n"
            "from nnforge.cli import main\n"
            f"d = nnforge.compile({str(ex / 'model.onnx')!r}, calibration=np.load({str(ex / 'calibration.npz')!r})['x'])\n"
            "d.write(tempfile.mkdtemp() + '/o', targets=['c'])\n"
            "main(['report', '/nonexistent'])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_hostile_training_records_in_design_json(tmp_path):
    """A design.json from elsewhere: a training record of the wrong shape is shown as far as
    it goes (its strings made printable), one that is not a list of objects is one line, exit 2."""
    out = _example("digits_mlp", bits=8).write(tmp_path / "a", targets=["c"])
    doc = json.loads((out / "design.json").read_text())
    doc["training"] = [{"config": 5, "task": "\x1b[31mred", "history": "x", "formats_moved": [3, {"tensor": "\x07"}]}]
    (out / "design.json").write_text(json.dumps(doc))
    r = subprocess.run([sys.executable, "-m", "nnforge", "report", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "fine-tuned (\\x1b[31mred" in r.stdout
    doc["training"] = 5
    (out / "design.json").write_text(json.dumps(doc))
    r = subprocess.run([sys.executable, "-m", "nnforge", "report", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "training" in r.stderr and r.stderr.strip().count("\n") <= 1, r.stderr
