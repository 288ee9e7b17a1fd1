"""Narrow products (an operand of at most 4 bits) are shifts and adds in LUTs, not DSP
blocks: the expression is exact for every operand pair (checked exhaustively against
Verilog's own ``*`` in Verilator), the writers count them apart (``lut_multipliers``),
Yosys finds no multiplier in such a design, and the design stays bit exact."""

import json
import subprocess

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.codegen import verilog
from nnforge.codegen.lower import lower
from nnforge.codegen.rtl import NARROW_BITS, product
from nnforge.codegen.verilog_cnn import write_cnn
from nnforge.sim import verilog as sim_verilog
from nnforge.sim.tools import find_tool, verilator_env


def test_product_choice():
    # both operands wider than NARROW_BITS: one multiplier block
    lines, which = product("p", "xe", "x", 5, True, "we", "w", 5, True, 10)
    assert which is None and lines == ["wire signed [9:0] p = xe * we;"]
    # the narrower operand gives its bits; an input as narrow as the weight: the weight
    lines, which = product("p", "xe", "x", 8, True, "we", "w", 4, True, 12)
    assert which == "w" and all("*" not in ln.replace("(* keep *)", "") for ln in lines)
    assert any("w[3]" in ln and " - " in ln for ln in lines)  # the sign bit is subtracted
    lines, which = product("p", "xe", "x", 3, False, "we", "w", 8, True, 12)
    assert which == "x" and all(" - " not in ln for ln in lines)  # unsigned: every bit adds
    assert product("p", "xe", "x", NARROW_BITS, True, "we", "w", NARROW_BITS, True, 8)[1] == "w"


def _exhaustive_bench(cases) -> str:
    """A Verilog bench that prints, for every (a, b) of each case, the operands, the
    product() result and the simulator's own signed multiply (one initial block per case)."""
    body = []
    for n, (ak, a_signed, bk, b_signed) in enumerate(cases):
        ae, be = ak + (0 if a_signed else 1), bk + (0 if b_signed else 1)
        pw = ae + be
        ext_a = f"{{{{{pw - ak}{{a{n}[{ak - 1}]}}}}, a{n}}}" if a_signed else f"{{{pw - ak}'d0, a{n}}}"
        ext_b = f"{{{{{pw - bk}{{b{n}[{bk - 1}]}}}}, b{n}}}" if b_signed else f"{{{pw - bk}'d0, b{n}}}"
        lines, which = product(f"p{n}", f"xe{n}", f"a{n}", ak, a_signed, f"we{n}", f"b{n}", bk, b_signed, pw)
        assert which is not None
        body += [f"    reg  [{ak - 1}:0] a{n};", f"    reg  [{bk - 1}:0] b{n};",
                 f"    integer i{n}, j{n};",
                 f"    wire signed [{pw - 1}:0] xe{n} = $signed({ext_a});",
                 f"    wire signed [{pw - 1}:0] we{n} = $signed({ext_b});",
                 *(f"    {ln}" for ln in lines),
                 f"    wire signed [{pw - 1}:0] ref{n} = xe{n} * we{n};",
                 f"""    initial begin
        for (i{n} = 0; i{n} < {1 << ak}; i{n} = i{n} + 1) begin
            for (j{n} = 0; j{n} < {1 << bk}; j{n} = j{n} + 1) begin
                a{n} = i{n}[{ak - 1}:0]; b{n} = j{n}[{bk - 1}:0]; #1;
                $display("P {n} %0d %0d %0d %0d", $signed(xe{n}), $signed(we{n}), $signed(p{n}), $signed(ref{n}));
            end
        end
    end"""]
    last = max((1 << ak) * (1 << bk) for ak, _, bk, _ in cases) + 10
    return ("`timescale 1ns/1ps\nmodule bench;\n" + "\n".join(body)
            + f"\n    initial begin\n        #{last};\n        $finish;\n    end\nendmodule\n")


def test_lut_product_is_exact_for_every_operand_pair(tmp_path):
    """Every narrow width (1..4 bits, signed or unsigned) against an 8-, 4- and 3-bit other
    operand (signed or unsigned), every pair of values: 0 mismatches."""
    cases = [(ak, a_s, bk, b_s) for ak in (8, 4, 3) for a_s in (True, False)
             for bk in range(1, NARROW_BITS + 1) for b_s in (True, False) if bk <= ak]
    src = tmp_path / "bench.v"
    src.write_text(_exhaustive_bench(cases))
    cmd = [find_tool("verilator"), "--binary", "-Wno-fatal", "-Wno-lint", "-CFLAGS", "-fcoroutines", "--top-module", "bench",
           "--Mdir", str(tmp_path / "obj"), "-o", "bench", str(src)]
    subprocess.run(cmd, cwd=tmp_path, env=verilator_env(), check=True, capture_output=True, text=True)
    out = subprocess.run([str(tmp_path / "obj" / "bench")], capture_output=True, text=True, check=True).stdout
    seen: dict[int, set] = {n: set() for n in range(len(cases))}
    for line in out.splitlines():
        if line.startswith("P "):
            n, a, b, p, ref = map(int, line.split()[1:])
            assert p == a * b == ref, (cases[n], a, b, p, ref)
            seen[n].add((a, b))
    for n, (ak, a_s, bk, b_s) in enumerate(cases):  # every pair of values of each case
        a_vals = range(-(1 << (ak - 1)), 1 << (ak - 1)) if a_s else range(1 << ak)
        b_vals = range(-(1 << (bk - 1)), 1 << (bk - 1)) if b_s else range(1 << bk)
        assert seen[n] == {(a, b) for a in a_vals for b in b_vals}, cases[n]


def _design(example, weight_bits, act_bits):
    ex = ROOT / "examples" / example
    return nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"],
                           weight_bits=weight_bits, act_bits=act_bits)


def test_writers_count_lut_multipliers(tmp_path):
    """Narrow weights or inputs: no multiplier block, as many LUT multipliers as the
    8-bit design's blocks at the same folding; efficiency counts both kinds."""
    wide = _design("digits_cnn", 8, 8)
    w8 = write_cnn(wide.qgraph, tmp_path / "w8")
    for wb, ab in ((4, 8), (8, 4)):
        n = write_cnn(_design("digits_cnn", wb, ab).qgraph, tmp_path / f"n{wb}{ab}")
        assert n["totals"]["multipliers"] == 0
        assert n["totals"]["lut_multipliers"] == w8["totals"]["multipliers"] > 0
        assert n["totals"]["estimate"]["dsp"] == 0
        assert n["totals"]["efficiency"] == w8["totals"]["efficiency"]
        assert "no multiplier block" in (tmp_path / f"n{wb}{ab}" / "nnf_node_Conv_23.v").read_text()
    hw = lower(_design("digits_mlp", 4, 8).qgraph)
    info = verilog.write(hw, tmp_path / "mlp", "balanced")
    assert info["totals"]["multipliers"] == 0
    assert info["totals"]["lut_multipliers"] == sum(ly["pe"] * ly["simd"] for ly in info["layers"])
    assert "LUT multipliers: %d" % info["totals"]["lut_multipliers"] in (tmp_path / "mlp" / "README.txt").read_text()


def test_budget_counts_only_multiplier_blocks(tmp_path):
    """A multiplier budget limits DSP blocks: a 4-bit design's products cost none of it."""
    d = _design("digits_cnn", 4, 8)
    budget = write_cnn(d.qgraph, tmp_path / "b", parallelism={"max_multipliers": 1})
    balanced = write_cnn(d.qgraph, tmp_path / "f")
    assert budget["totals"]["multipliers"] == 0
    assert budget["totals"]["ii_cycles"] <= balanced["totals"]["ii_cycles"]


@pytest.mark.slow
@pytest.mark.parametrize("example,weight_bits,act_bits", [("digits_cnn", 4, 8), ("digits_cnn", 8, 4), ("digits_mlp", 4, 4)])
def test_narrow_designs_are_exact_and_use_no_multiplier(tmp_path, example, weight_bits, act_bits):
    d = _design(example, weight_bits, act_bits)
    test = np.load(ROOT / "examples" / example / "test.npz")
    out = d.write(tmp_path / "o", targets=["verilog"])
    sim_verilog.lint(out / "verilog")
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    assert info["totals"]["multipliers"] == 0 and info["totals"]["lut_multipliers"] > 0
    stats = sim_verilog.synth_check(out / "verilog", full=False)  # the count before techmapping
    assert stats["multipliers"] == 0  # Yosys finds no product of two varying operands
    res = d.verify(test["x"][:48], test["y"][:48], backends=["golden", "verilog"], outdir=out)
    assert res.backends["verilog"].samples == 48 and res.backends["verilog"].mismatches == 0
