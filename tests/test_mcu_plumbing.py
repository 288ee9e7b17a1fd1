"""The microcontroller choice end to end: ``QuantConfig.mcu`` through compile, design.json,
the command line and the C target, and ``c/c_info.json`` / report.json's ``c`` section."""

import json
import shutil
import subprocess
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import nnforge
from nnforge import cli
from nnforge.codegen.arena import live_maximum
from nnforge.codegen.c import live_values
from nnforge.codegen.mcu import MCUS
from nnforge.codegen.program import Step
from nnforge.ir.serialize import DesignFileError
from nnforge.passes import QuantConfig
from nnforge.sim import native
from nnforge.targets import TARGETS, ir_order, memory_line
from conftest import ROOT

MLP = ROOT / "examples" / "digits_mlp"
CNN = ROOT / "examples" / "digits_cnn"
ARENA_KEYS = {"activations_bytes", "live_max_bytes", "scratch_bytes", "total_bytes"}


# the tests that build and run a microcontroller program: expected to fail (not strictly)
# while its kernels' templates are not all in the tree

def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def rodata_bytes(obj) -> int:
    """The bytes of the read-only data symbols of an object file (nm -S)."""
    out = subprocess.run(["nm", "-S", str(obj)], capture_output=True, text=True, check=True).stdout
    return sum(int(f[1], 16) for f in (line.split() for line in out.splitlines()) if len(f) == 4 and f[2] in "rR")


# ---- the config and design.json -------------------------------------------------------

def test_config_round_trip_and_old_design_json(tmp_path, digits_design):
    d = digits_design
    for name in ("cortex-m4", "cortex-m0plus", "generic"):
        nnforge.Design(d.float_graph, d.qgraph, replace(d.config, mcu=name)).save(tmp_path / name)
        assert json.loads((tmp_path / name / "design.json").read_text())["config"]["mcu"] == name
        assert nnforge.Design.load(tmp_path / name).config.mcu == name
    # a design.json written before the field existed loads as generic
    path = tmp_path / "cortex-m4" / "design.json"
    doc = json.loads(path.read_text())
    del doc["config"]["mcu"]
    path.write_text(json.dumps(doc))
    assert nnforge.Design.load(tmp_path / "cortex-m4").config.mcu == "generic"
    # an unknown name is refused, naming the choices
    doc["config"]["mcu"] = "cortex-m99"
    path.write_text(json.dumps(doc))
    with pytest.raises(DesignFileError, match="cortex-m99.*cortex-m4.*cortex-m0plus"):
        nnforge.Design.load(tmp_path / "cortex-m4")
    doc["config"]["mcu"] = 4
    path.write_text(json.dumps(doc))
    with pytest.raises(DesignFileError, match="mcu: expected a string"):
        nnforge.Design.load(tmp_path / "cortex-m4")


def test_report_quantization_leaves_the_mcu_to_the_c_section(digits_design):
    from nnforge.persist import report_quantization

    assert "mcu" not in report_quantization(replace(digits_design.config, mcu="cortex-m4"))


def test_compile_refuses_unknown_and_float_combinations(digits_data):
    cal = digits_data[0]
    with pytest.raises(ValueError, match="unknown MCU 'bogus'; choose from " + ", ".join(MCUS)):
        nnforge.compile(MLP / "model.onnx", calibration=cal, mcu="bogus")
    with pytest.raises(nnforge.DataError, match="--mcu cortex-m4 selects integer kernels"):
        nnforge.compile(MLP / "model.onnx", float_format="fp16", mcu="cortex-m4")
    with pytest.raises(ValueError, match="integer kernels"):
        QuantConfig(float_format="bf16", mcu="cortex-m7")
    assert nnforge.compile(MLP / "model.onnx", calibration=cal, mcu="cortex-m4").config.mcu == "cortex-m4"


# ---- the command line -----------------------------------------------------------------

def test_cli_refuses_unknown_mcu_and_mcu_without_c(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli("compile", MLP / "model.onnx", "-o", tmp_path / "o", "--mcu", "bogus")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --mcu: invalid choice: 'bogus'" in err and "cortex-m0plus" in err
    assert run_cli("compile", MLP / "model.onnx", "-o", tmp_path / "o", "--targets", "hls", "--mcu", "cortex-m4",
                   "--calibration", MLP / "calibration.npz", "-q") == 2
    assert "add c to --targets" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    for name in MCUS:  # every name of the table is a choice
        assert cli.build_parser().parse_args(["compile", "m.onnx", "-o", "o", "--mcu", name]).mcu == name


def test_cli_generic_c_info_and_memory_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("compile", MLP / "model.onnx", "-o", out, "--targets", "c",
                   "--calibration", MLP / "calibration.npz") == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "c" / "c_info.json").read_text())
    assert info == json.loads((out / "report.json").read_text())["c"]
    design = nnforge.Design.load(out)
    assert info["mcu"] == design.config.mcu == "generic"
    assert info["input"]["shape"] == list(design.input_shape) == [64]
    assert info["output"]["shape"] == [10]
    for io, t in ((info["input"], design.input_type), (info["output"], design.output_type)):
        assert io["order"].startswith("row-major") and "C, H, W" in io["order"]
        assert io["ctype"] == ("int" if t.signed else "uint") + f"{t.width}_t"
        assert io["frac"] == t.frac and io["scale"] == 2.0 ** -t.frac and io["zero"] == t.zero
    prog = design.lowered("c")
    assert info["arena"]["static_buffers_bytes"] == sum(b.size for b in prog.buffers) > 0  # int8 buffers
    # a chain: the two largest neighbouring values (hidden layers of 32 and 16 bytes) at once
    assert info["arena"]["live_max_bytes"] == 48
    assert [s["name"] for s in info["steps"]] == [s.name for s in prog.steps]
    assert all(s["layout"] == "ir" for s in info["steps"])
    assert sum(s["macs"] for s in info["steps"]) == prog.macs
    line = memory_line(info)
    assert line.startswith("C (generic): static buffers ") and line in printed
    assert line in (out / "report.txt").read_text().splitlines()


@pytest.mark.parametrize("example", [MLP, CNN], ids=["mlp", "cnn"])
def test_flash_bytes_are_the_const_data_gcc_emits(tmp_path, example):
    """weights_bytes (and its split by step) equals the read-only data of the compiled object."""
    gcc = shutil.which("gcc")
    if gcc is None or shutil.which("nm") is None:
        pytest.skip("needs gcc and nm")
    cal = np.load(example / "calibration.npz")["x"][:64]
    design = nnforge.compile(example / "model.onnx", calibration=cal)
    out = design.write(tmp_path / "o", targets=["c"])
    info = json.loads((out / "c" / "c_info.json").read_text())
    obj = tmp_path / "m.o"
    subprocess.run([gcc, "-std=c99", "-O0", "-c", str(out / "c" / "nnforge_model.c"), "-I", str(out / "c"),
                    "-o", str(obj)], check=True)
    assert info["flash"]["weights_bytes"] == rodata_bytes(obj) > 0
    assert sum(s["weights_bytes"] for s in info["steps"]) == info["flash"]["weights_bytes"]
    weights = sum(int(np.prod(design.qgraph.shape(n.inputs[1])))
                  for n in design.qgraph.topo() if n.op in ("Dense", "Conv"))
    assert info["flash"]["weights_bytes"] >= weights  # 8-bit weights at least, plus biases
    from nnforge.codegen.c import flash_bytes

    assert flash_bytes(design.lowered("c")) == flash_bytes(design.lowered("c"), out / "c" / "nnforge_model.c")


# ---- layouts in a trace ---------------------------------------------------------------

def test_ir_order_undoes_a_layout():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert np.array_equal(ir_order(x.transpose(1, 2, 0).reshape(-1), (2, 3, 4), (1, 2, 0)), x.reshape(-1))
    y = np.arange(6).reshape(2, 3)
    assert np.array_equal(ir_order(y.transpose(1, 0).reshape(-1), (2, 3), (1, 0)), y.reshape(-1))
    short = np.arange(5)
    assert ir_order(short, (2, 3), (1, 0)) is short  # a wrong count is left for the comparison to report


def test_c_trace_puts_channels_last_buffers_back(monkeypatch):
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    steps = (Step("mcu_conv", "conv", "Conv", ("in",), "nnf_buf0", ("int8_t",), "int8_t", {}, tensor="t0",
                  size=24, layout=(1, 2, 0)),
             Step("relu", "relu", "Relu", ("nnf_buf0",), "out", ("int8_t",), "int8_t", {}, tensor="t1", size=24))
    stored = {0: x.transpose(1, 2, 0).reshape(-1), 1: x.reshape(-1)}
    monkeypatch.setattr(native, "trace", lambda *a, **k: dict(stored))
    model = SimpleNamespace(steps=steps, n_out=24)
    graph = SimpleNamespace(shape=lambda t: (2, 3, 4))
    names, got = TARGETS["c"].trace(model, graph, None, None, np.zeros((1, 24)), None, None)
    assert [s.tensor for s in names] == ["t0", "t1"]
    assert np.array_equal(got[0], x.reshape(-1)) and np.array_equal(got[1], x.reshape(-1))


# ---- a microcontroller program --------------------------------------------------------

def test_cli_mcu_arg_reaches_the_config(tmp_path):
    args = cli.build_parser().parse_args(["compile", str(MLP / "model.onnx"), "-o", str(tmp_path), "--mcu",
                                          "cortex-m4"])
    assert args.mcu == "cortex-m4"


def test_cli_mcu_compile_writes_the_arena(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("compile", MLP / "model.onnx", "-o", out, "--targets", "c", "--mcu", "cortex-m4",
                   "--calibration", MLP / "calibration.npz") == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "c" / "c_info.json").read_text())
    assert info["mcu"] == "cortex-m4" and set(info["arena"]) == ARENA_KEYS
    a = info["arena"]
    assert a["activations_bytes"] >= a["live_max_bytes"] > 0
    assert a["total_bytes"] == a["activations_bytes"] + a["scratch_bytes"]
    assert info["input"]["shape"] == [64] and info["input"]["order"].startswith("row-major")
    assert "C (cortex-m4): arena " in printed
    assert nnforge.Design.load(out).config.mcu == "cortex-m4"
    assert run_cli("verify", out, "--data", MLP / "test.npz", "--backends", "golden,c", "--limit", "50", "-q") == 0


def test_mcu_trace_of_a_cnn_is_clean(tmp_path):
    """A CNN's channels-last buffers, traced layer by layer, equal golden once put back."""
    cal = np.load(CNN / "calibration.npz")["x"][:64]
    design = nnforge.compile(CNN / "model.onnx", calibration=cal, mcu="cortex-m4")
    out = design.write(tmp_path / "o", targets=["c"])
    prog = design.lowered("c")
    assert prog.mcu == "cortex-m4" and any(s.layout for s in prog.steps)
    info = json.loads((out / "c" / "c_info.json").read_text())
    assert [s["layout"] for s in info["steps"]] == [list(s.layout) or "ir" for s in prog.steps]
    # the lifetimes c_info reports for a generic program give the arena's bound here too
    assert live_maximum(live_values(prog)) == prog.arena.live_max == info["arena"]["live_max_bytes"]
    x = np.load(CNN / "test.npz")["x"][:2]
    layers = design.trace(x, backends=["c"], outdir=out, sample=1)["c"]
    assert layers and all(t.mismatches == 0 and t.values > 0 for t in layers)
