"""The C++ Verilator harness (sim/verilator_cpp.py, sim/harness/verilator_main.cpp): the
whole digits-CNN test split through the RTL, the same outputs and cycle figures as the
cocotb testbench, corrupted and hung designs caught, wide ports refused."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import nnforge
from nnforge.codegen import verilog
from nnforge.sim import verilator_cpp
from nnforge.sim import verilog as sim_verilog
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import ToolError
from conftest import ROOT
from test_verilog import _inputs, golden, mlp, odd

CNN = ROOT / "examples" / "digits_cnn"


@pytest.fixture(scope="module")
def build_base(tmp_path_factory):
    return tmp_path_factory.mktemp("cpp_build")


def _written(tmp_path, hw=None, mode="balanced"):
    hw = hw or mlp()
    verilog.write(hw, tmp_path, mode)
    return hw


# ----------------------------------------------------------------------------- fast

def test_job_file_layout(tmp_path):
    x = np.arange(6, dtype=np.uint64).reshape(2, 3)
    verilator_cpp.write_job(tmp_path / "job.bin", x, 4, (8, 16), max_cycles=99, stall=0.25, seed=7,
                            progress_every=1)
    data = (tmp_path / "job.bin").read_bytes()
    assert data[:8] == b"NNFJOB1\0" and len(data) == 8 + 10 * 8 + 8 + 6 * 8
    head = np.frombuffer(data, "<i8", 10, 8)
    assert list(head) == [2, 3, 4, 8, 16, 99, 4, 7, 1, 0]
    assert np.frombuffer(data, "<f8", 1, 88)[0] == 0.25
    assert np.array_equal(np.frombuffer(data, "<u8", 6, 96), x.reshape(-1))


def test_result_file_layout(tmp_path):
    head = np.array([0, 1234, 2, 2, 8, 1, 2, 2, 250_000_000], dtype="<i8")
    cycles = np.array([5, 9, 600, 1100], dtype="<i8")
    (tmp_path / "r.bin").write_bytes(b"NNFRES1\0" + head.tobytes() + np.array([0.5], "<f8").tobytes()
                                     + cycles.tobytes())
    r = verilator_cpp.read_result(tmp_path / "r.bin")
    assert (r["status"], r["cycles"], r["vectors_out"], r["elements_out"], r["out_last_ok"]) == ("ok", 1234, 2, 8, True)
    assert r["first_in_cycles"] == [5, 9] and r["last_out_cycles"] == [600, 1100]
    assert r["wall_seconds"] == 0.5 and r["cpu_seconds"] == 0.25


def test_same_input_checks_as_run_and_engine_choice(tmp_path):
    hw = _written(tmp_path)
    x = _inputs(np.random.default_rng(1), hw, 2)
    for fn in (sim_verilog.run, verilator_cpp.run_cpp):
        with pytest.raises(ValueError, match="elements"):
            fn(hw, tmp_path, tmp_path / "b", x[:, :-1], QUIET)
        with pytest.raises(ValueError, match="outside the range"):
            fn(hw, tmp_path, tmp_path / "b", x + 1000, QUIET)
        with pytest.raises(ValueError, match="backpressure"):
            fn(hw, tmp_path, tmp_path / "b", x, QUIET, backpressure=1.0)
        with pytest.raises(ValueError, match="no input vectors"):
            fn(hw, tmp_path, tmp_path / "b", x[:0], QUIET)
    with pytest.raises(ValueError, match="engine"):
        sim_verilog.run(hw, tmp_path, tmp_path / "b", x, QUIET, engine="iverilog")
    with pytest.raises(ValueError, match="cocotb"):
        sim_verilog.run(hw, tmp_path, tmp_path / "b", x, QUIET, engine="cpp", axis=True)
    with pytest.raises(ToolError, match="verilog_info.json"):
        sim_verilog.run(hw, tmp_path / "nothing", tmp_path / "b", x, QUIET)
    assert verilator_cpp.supports(tmp_path) and not verilator_cpp.supports(tmp_path / "nothing")


def test_ports_wider_than_64_bits_are_refused(tmp_path):
    _written(tmp_path)
    info_path = tmp_path / "verilog_info.json"
    info = json.loads(info_path.read_text())
    info["out_type"]["width"] = 72
    info_path.write_text(json.dumps(info))
    assert not verilator_cpp.supports(tmp_path)  # auto falls back to cocotb
    with pytest.raises(ToolError, match="up to 64 bits"):
        verilator_cpp.build(tmp_path, tmp_path / "b", QUIET)


def test_build_key_covers_the_compiler_flags(monkeypatch):
    """The model is compiled with OPT_FAST=-O2 (part of the build's arguments, so of its
    cache key), and flags the environment gives make change the key too."""
    from nnforge.sim import rtl

    assert verilator_cpp.BUILD_ARGS[-2:] == ["-MAKEFLAGS", f"OPT_FAST={verilator_cpp.OPT_FAST}"]
    assert "--threads" not in verilator_cpp.BUILD_ARGS
    for var in rtl.MAKE_ENV:
        monkeypatch.delenv(var, raising=False)
    plain = rtl.toolchain()
    assert rtl.toolchain() == plain
    for var, value in (("CXXFLAGS", "-O0"), ("CPPFLAGS", "-DX=1"), ("LDFLAGS", "-static"), ("OPT", "-g")):
        monkeypatch.setenv(var, value)
        assert rtl.toolchain() != plain, var
        monkeypatch.delenv(var)
    assert rtl.toolchain() == plain


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_digits_cnn_whole_test_split(tmp_path, build_base):
    design = nnforge.compile(CNN / "model.onnx", calibration=np.load(CNN / "calibration.npz")["x"], bits=8)
    out = design.write(tmp_path / "out", targets=["verilog"])
    test = np.load(CNN / "test.npz")
    x, labels = test["x"], test["y"]
    assert len(x) == 360
    gold = design.predict(x).reshape(len(x), -1)
    x_int = design.quantize_input(x)
    run = sim_verilog.run(design.lowered("verilog"), out / "verilog", build_base, x_int.reshape(len(x), -1),
                          QUIET, gold)
    assert run.extra["engine"] == "cpp"
    assert run.extra["mismatches"] == 0 and np.array_equal(run.y, gold)
    assert run.extra["out_last_ok"]
    assert run.extra["cycles_per_second"] > 0 and run.extra["cycles"] >= 360 * run.cycles_per_inference
    assert 0 < run.extra["sim_loop_cpu_seconds"] <= run.extra["sim_loop_seconds"] * 1.05 + 0.01
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    assert abs(run.cycles_per_inference - info["totals"]["ii_cycles"]) <= 0.05 * info["totals"]["ii_cycles"]
    assert (run.y.argmax(1) == labels).mean() > 0.85


@pytest.mark.slow
@pytest.mark.parametrize("model", [mlp, odd])
def test_cpp_and_cocotb_agree(tmp_path, build_base, model):
    hw = _written(tmp_path, model())
    x = _inputs(np.random.default_rng(5), hw, 12)
    want = golden(hw, x)
    cpp = sim_verilog.run(hw, tmp_path, build_base, x, QUIET, want, engine="cpp")
    coco = sim_verilog.run(hw, tmp_path, build_base, x, QUIET, want, engine="cocotb")
    assert (cpp.extra["engine"], coco.extra["engine"]) == ("cpp", "cocotb")
    assert cpp.extra["mismatches"] == coco.extra["mismatches"] == 0
    assert np.array_equal(cpp.y, coco.y) and np.array_equal(cpp.y, want)
    assert cpp.cycles_per_inference == coco.cycles_per_inference
    assert cpp.latency_cycles == coco.latency_cycles
    assert cpp.extra["cycles"] == coco.extra["cycles"]
    assert cpp.extra["output_gaps"] == coco.extra["output_gaps"]
    assert cpp.extra["out_last_ok"] and coco.extra["out_last_ok"]
    # under random stalls (different generators): different timing, the same outputs
    cpp_bp = sim_verilog.run(hw, tmp_path, build_base, x, QUIET, want, engine="cpp", backpressure=0.4, seed=3)
    coco_bp = sim_verilog.run(hw, tmp_path, build_base, x, QUIET, want, engine="cocotb", backpressure=0.4, seed=3)
    assert cpp_bp.extra["build_reused"] and coco_bp.extra["build_reused"]
    assert np.array_equal(cpp_bp.y, want) and np.array_equal(coco_bp.y, want)
    assert cpp_bp.extra["out_last_ok"] and cpp_bp.extra["mismatches"] == 0
    assert cpp_bp.extra["backpressure"] == 0.4 and cpp_bp.extra["cycles"] > cpp.extra["cycles"]


@pytest.mark.slow
def test_corrupted_rom_word_gives_mismatches(tmp_path, build_base):
    hw = _written(tmp_path)
    f = tmp_path / "nnforge_layer_fc0.v"
    text = f.read_text()
    m = re.search(r"wrom\[0\] = (\d+)'h([0-9a-f]+);", text)
    width, word = int(m.group(1)), int(m.group(2), 16)
    new = word ^ (1 << (width - 1))  # the top bit of the first ROM word
    f.write_text(text.replace(m.group(0), f"wrom[0] = {width}'h{new:0{(width + 3) // 4}x};"))
    x = _inputs(np.random.default_rng(9), hw, 12)
    run = verilator_cpp.run_cpp(hw, tmp_path, build_base, x, QUIET, golden(hw, x))
    assert run.extra["engine"] == "cpp"
    assert run.extra["mismatches"] > 0 and run.extra["mismatched_vectors"] > 0


@pytest.mark.slow
def test_timeout_hang_and_broken_build_raise(tmp_path, build_base):
    hw = _written(tmp_path / "ok")
    x = _inputs(np.random.default_rng(2), hw, 4)
    with pytest.raises(ToolError, match=r"hung: 0 of 4 output vectors after 11 cycles \(limit 10\)"):
        verilator_cpp.run_cpp(hw, tmp_path / "ok", build_base, x, QUIET, max_cycles=10)
    with pytest.raises(ToolError, match="hung"):
        sim_verilog.run(hw, tmp_path / "ok", build_base, x, QUIET, engine="cpp", max_cycles=10)
    assert verilator_cpp.run_cpp(hw, tmp_path / "ok", build_base, x, QUIET).extra["build_reused"]
    # the per-cycle code got OPT_FAST (-O2), not verilated.mk's -Os: make's own compile lines
    built = verilator_cpp.build(tmp_path / "ok", None, QUIET)
    lines = [ln for ln in (Path(built["dir"]) / "build.log").read_text().splitlines()
             if " -c " in ln and ("Vtop__ALL.cpp" in ln or "Vtop___024root__0.cpp" in ln)]  # small / large
    assert built["reused"] and lines
    assert all(f" {verilator_cpp.OPT_FAST} " in ln and " -Os " not in ln for ln in lines)
    # a design whose output never becomes valid
    shutil.copytree(tmp_path / "ok", tmp_path / "hang")
    top = tmp_path / "hang" / "nnforge_top.v"
    text = top.read_text()
    assert re.search(r"assign out_valid = \w+;", text)
    top.write_text(re.sub(r"assign out_valid = \w+;", "assign out_valid = 1'b0;", text))
    with pytest.raises(ToolError, match="hung"):
        verilator_cpp.run_cpp(hw, tmp_path / "hang", build_base, x, QUIET)
    top.write_text(text.replace("endmodule", "oops\nendmodule"))
    with pytest.raises(ToolError, match="build failed"):
        verilator_cpp.run_cpp(hw, tmp_path / "hang", build_base, x, QUIET)
