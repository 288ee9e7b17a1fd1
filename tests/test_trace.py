"""nnforge verify --trace: every layer of the C and HLS backends against golden, naming
the first layer that differs."""

import json

import numpy as np

import nnforge
from nnforge import cli
from conftest import ROOT, negate_first_row, verify_trace_json

EX = ROOT / "examples" / "digits_resnet"


def test_trace_of_a_correct_design_is_clean(tmp_path):
    cal = np.load(EX / "calibration.npz")["x"]
    design = nnforge.compile(EX / "model.onnx", calibration=cal)
    x = np.load(EX / "test.npz")["x"][:3]
    traces = design.trace(x, backends=("c", "hls"), sample=2)
    convs = sum(n.op == "Conv" for n in design.qgraph.topo())
    for b in ("c", "hls"):
        assert sum(t.op == "Conv" for t in traces[b]) == convs
        assert all(t.mismatches == 0 and t.values > 0 for t in traces[b])
        assert traces[b][-1].tensor == design.qgraph.outputs[0]


def test_cli_trace_names_the_corrupted_layer(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["compile", str(EX / "model.onnx"), "-o", str(out), "--targets", "c,hls", "--calibration",
                     str(EX / "calibration.npz"), "-q"]) == 0
    design = nnforge.Design.load(out)
    convs = [n for n in design.qgraph.topo() if n.op == "Conv"]
    steps = design.lowered("c").steps
    victim = steps[[s.tensor for s in steps].index(convs[3].outputs[0])]
    negate_first_row(out / "c" / "nnforge_model.c", f"{victim.name}_w")
    rc, doc = verify_trace_json(out, EX / "test.npz", capsys)
    assert rc == 1
    c_layers = doc["trace"]["backends"]["c"]
    first = next(t for t in c_layers if t["mismatches"])
    assert first["step"] == victim.name  # every layer before it equals golden
    assert doc["trace"]["sample"] == doc["backends"]["c"]["first_mismatch"]
    assert all(t["mismatches"] == 0 for t in doc["trace"]["backends"]["hls"])
    rc = cli.main(["verify", str(out), "--data", str(EX / "test.npz"), "--limit", "20", "--trace", "-q"])
    text = capsys.readouterr().out
    assert f"c: first layer that differs: {victim.name}" in text and "hls: all" in text


def test_verilog_trace_names_the_corrupted_engine(tmp_path, capsys):
    """Every engine's output stream is recorded in the simulation, put back into the IR's
    order and compared: a corrupted bias ROM word shows up at its engine, not before."""
    import re

    out = tmp_path / "out"
    assert cli.main(["compile", str(EX / "model.onnx"), "-o", str(out), "--targets", "verilog", "--calibration",
                     str(EX / "calibration.npz"), "-q"]) == 0
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    convs = [ly for ly in info["layers"] if ly["op"] == "Conv"]
    victim = convs[3]
    src = out / "verilog" / victim["file"]
    text = src.read_text()
    m = re.search(r"brom\[0\] = (\d+)'h([0-9a-f]+);", text)
    width, value = int(m.group(1)), int(m.group(2), 16)
    flipped = value ^ (1 << (width - 2))  # a large change of the first channel's bias
    src.write_text(text[:m.start()] + f"brom[0] = {width}'h{flipped:0{(width + 3) // 4}x};" + text[m.end():])
    capsys.readouterr()
    rc = cli.main(["verify", str(out), "--data", str(EX / "test.npz"), "--limit", "3", "--trace", "--json", "-q"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1
    layers = doc["trace"]["backends"]["verilog"]
    assert [t["step"] for t in layers] == [ly["name"] for ly in info["layers"]]
    first = next(t for t in layers if t["mismatches"])
    assert first["step"] == victim["name"]
    assert first["first_index"] is not None


def test_verilog_trace_of_dense_chain_and_layouts_is_clean(tmp_path):
    mlp = ROOT / "examples" / "digits_mlp"
    design = nnforge.compile(mlp / "model.onnx", calibration=np.load(mlp / "calibration.npz")["x"])
    traces = design.trace(np.load(mlp / "test.npz")["x"][:2], backends=["verilog"], sample=1)
    assert [t.op for t in traces["verilog"]] == ["Dense"] * 3
    assert all(t.mismatches == 0 for t in traces["verilog"])
