"""The command line and the guarantees of Design.write: atomic output, clear errors."""

import json

import numpy as np
import pytest

import nnforge
from nnforge import cli
from nnforge.codegen import hls as hls_backend


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def test_compile_and_verify_c_hls(tmp_path, example_dir, capsys):
    out = tmp_path / "out"
    assert run_cli("compile", example_dir / "model.onnx", "-o", out, "--targets", "c,hls",
                   "--calibration", example_dir / "calibration.npz", "-q") == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "c", "design.json", "design_arrays.npz", "hls", "nnforge_output.json", "report.json", "report.txt"]
    capsys.readouterr()
    rc = run_cli("verify", out, "--data", example_dir / "test.npz", "--backends", "golden,c,hls", "--json", "-q")
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert set(doc) >= {"float_accuracy", "backends"}
    for b in ("golden", "c", "hls"):
        assert doc["backends"][b]["samples"] == 360
        assert doc["backends"][b]["mismatches"] == 0
        assert doc["float_accuracy"] - doc["backends"][b]["accuracy"] <= 0.015


def test_verify_limit_and_progress(tmp_path, example_dir, capsys):
    out = tmp_path / "out"
    run_cli("compile", example_dir / "model.onnx", "-o", out, "--targets", "c",
            "--calibration", example_dir / "calibration.npz")
    err = capsys.readouterr().err
    assert "writing C" in err  # progress on stderr unless --quiet
    assert run_cli("verify", out, "--data", example_dir / "test.npz", "--backends", "c", "--limit", "7", "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["backends"]["c"]["samples"] == 7
    assert "c: running 7 samples" in captured.err
    run_cli("verify", out, "--data", example_dir / "test.npz", "--backends", "c", "--limit", "7", "-q")
    assert capsys.readouterr().err == ""


def test_verify_reports_mismatch_with_exit_status(tmp_path, example_dir, capsys):
    """Corrupt one generated bias: verify must see it and exit non-zero."""
    out = tmp_path / "out"
    run_cli("compile", example_dir / "model.onnx", "-o", out, "--targets", "c",
            "--calibration", example_dir / "calibration.npz", "-q")
    src = out / "c" / "nnforge_model.c"
    text = src.read_text()
    first = text.index("fc2_b[10] = { ") + len("fc2_b[10] = { ")
    end = text.index(",", first)
    src.write_text(text[:first] + str(int(text[first:end]) + 5000) + text[end:])
    capsys.readouterr()
    rc = run_cli("verify", out, "--data", example_dir / "test.npz", "--backends", "golden,c", "--json", "-q")
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert doc["backends"]["c"]["mismatches"] > 0
    assert doc["backends"]["golden"]["mismatches"] == 0


@pytest.mark.parametrize("argv, message", [
    (["compile", "{ex}/model.onnx", "-o", "{tmp}/o", "--targets", "c,vhdl"], "unknown target vhdl"),
    (["compile", "{ex}/model.onnx", "-o", "{tmp}/o"], "needs calibration data"),
    (["compile", "{tmp}/missing.onnx", "-o", "{tmp}/o", "--calibration", "{ex}/calibration.npz"], "no such model file"),
    (["compile", "{ex}/model.onnx", "-o", "{tmp}/o", "--calibration", "{tmp}/bad.npz"], "the model needs (N, 64)"),
    (["compile", "{ex}/model.onnx", "-o", "{tmp}/o", "--calibration", "{tmp}/nox.npz"], "has no array named 'x'"),
    (["compile", "{ex}/model.onnx", "-o", "{tmp}/o", "--calibration", "{ex}/calibration.npz", "--bits", "1"], "width must be 2..16"),
    (["verify", "{tmp}", "--data", "{ex}/test.npz"], "not an nnforge output folder"),
])
def test_errors_are_clear(tmp_path, example_dir, capsys, argv, message):
    np.savez(tmp_path / "bad.npz", x=np.zeros((5, 8, 8), np.float32))
    np.savez(tmp_path / "nox.npz", data=np.zeros((5, 64), np.float32))
    argv = [a.format(ex=example_dir, tmp=tmp_path) for a in argv]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_failed_write_leaves_nothing_behind(tmp_path, digits_design, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hls_backend, "write", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        digits_design.write(out, targets=["c", "hls"])
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_existing_output_whole(tmp_path, digits_design, monkeypatch):
    out = tmp_path / "out"
    digits_design.write(out, targets=["c"])
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hls_backend, "write", boom)
    with pytest.raises(RuntimeError):
        digits_design.write(out, targets=["c", "hls"])
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_refuses_foreign_folder(tmp_path, digits_design):
    from nnforge.sim.files import OutputFolderError

    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(OutputFolderError, match="mine.txt"):
        digits_design.write(tmp_path, targets=["c"])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_unsupported_op_writes_nothing(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Hardmax", ["x"], ["y"], name="gate")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    np.savez(tmp_path / "cal.npz", x=np.zeros((3, 4), np.float32))
    with pytest.raises(nnforge.UnsupportedOpError) as e:
        nnforge.compile(path, calibration=np.zeros((3, 4), np.float32))
    assert "'gate'" in str(e.value) and "'Hardmax'" in str(e.value) and "Gemm" in str(e.value)
    assert run_cli("compile", path, "-o", tmp_path / "o", "--calibration", tmp_path / "cal.npz", "-q") == 2
    assert not (tmp_path / "o").exists()


def test_verify_defaults_to_the_targets_written(tmp_path, capsys):
    """A CNN written for C only: verify runs golden and C, and matches."""
    from conftest import ROOT

    ex = ROOT / "examples" / "digits_cnn"
    out = tmp_path / "out"
    assert run_cli("compile", ex / "model.onnx", "-o", out, "--targets", "c",
                   "--calibration", ex / "calibration.npz", "-q") == 0
    capsys.readouterr()
    assert run_cli("verify", out, "--data", ex / "test.npz", "--json", "-q") == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["backends"]) == ["golden", "c"]
    assert doc["backends"]["c"]["mismatches"] == 0 and doc["backends"]["c"]["samples"] == 360
    # asking for a backend the folder does not hold is an error, not a silent skip
    assert run_cli("verify", out, "--data", ex / "test.npz", "--backends", "golden,hls", "-q") == 2
