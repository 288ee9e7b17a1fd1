"""The ECP5 flow's row buffer banks (``NNF_ECP5_BRAM``, ``_bram.v.j2``): a bank the writers
place in block RAM is DP16KD tiles with their own output registers. Simulated with a model
of the block (the subset the template uses), the sources match golden in the same cycles
as the portable ones; Yosys keeps the block count and uses the output registers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT, ecp5_branch_exact
from nnforge.codegen import estimate

_PINS = (", ".join(f"input DI{p}{i}" for p in "AB" for i in range(18)) + ", "
         + ", ".join(f"input AD{p}{i}" for p in "AB" for i in range(14)) + ", "
         + ", ".join(f"input CE{p}, OCE{p}, CLK{p}, WE{p}, RST{p}, CS{p}0, CS{p}1, CS{p}2" for p in "AB") + ", "
         + ", ".join(f"output DO{p}{i}" for p in "AB" for i in range(18)))


def _bus(prefix: str, n: int) -> str:
    return "{" + ", ".join(f"{prefix}{i}" for i in reversed(range(n))) + "}"


# a model of the DP16KD for simulation (Yosys's cells_sim_ecp5.v declares its ports and
# parameters, no behaviour): 2048 9-bit bytes, from INITVAL_00..3F at start (parameter xx
# holds 18-bit slots 16 * xx + i at bits 20 * i, slot s bytes 2s and 2s + 1); a port of
# DATA_WIDTH 9 reads and writes byte AD[13:3], of DATA_WIDTH 18 bytes 2a and 2a + 1
# (a = AD[13:4]; on a write, AD0 / AD1 enable the low / high byte). DATA_WIDTH 36 (both
# ports, read only, as the ROMs use it): bytes 4a .. 4a + 3 (a = AD[13:5]), the low half on
# DOA, the high half on DOB; both ports must then read the same address with the same
# enables. CE latches the word read (a write port reads nothing here); with REGMODE
# "OUTREG" the output register loads the latched word on OCE. Chip selects, resets and
# write-through are outside the subset: the model checks them.
_INITVALS = ", ".join(f"INITVAL_{i:02X} = 320'h0" for i in range(64))
_LOADS = " ".join(f"load({i}, INITVAL_{i:02X});" for i in range(64))
_DP16KD_MODEL = """/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off WIDTH */
/* verilator lint_off UNUSEDPARAM */
module DP16KD #(parameter DATA_WIDTH_A = 18, DATA_WIDTH_B = 18, REGMODE_A = "NOREG", REGMODE_B = "NOREG",
    CSDECODE_A = "0b000", CSDECODE_B = "0b000", WRITEMODE_A = "NORMAL", WRITEMODE_B = "NORMAL",
    RESETMODE = "SYNC", ASYNC_RESET_RELEASE = "SYNC", GSR = "ENABLED", parameter [319:0] %s) (%s);
    reg  [8:0] mem [0:2047];
    wire [17:0] dia = %s, dib = %s;
    wire [13:0] ada = %s, adb = %s;
    reg  [17:0] la, lb, oa, ob;
    integer edges = 0;
    wire wide = (DATA_WIDTH_B == 36);
    task automatic load(input integer idx, input [319:0] v);
        integer k;
        for (k = 0; k < 16; k = k + 1) begin
            mem[2 * (16 * idx + k)] = v[20 * k +: 9];
            mem[2 * (16 * idx + k) + 1] = v[20 * k + 9 +: 9];
        end
    endtask
    initial begin
        %s
        if (CSDECODE_A != "0b000" || CSDECODE_B != "0b000"
                || !((DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36)
                     || ((DATA_WIDTH_A == 9 || DATA_WIDTH_A == 18) && (DATA_WIDTH_B == 9 || DATA_WIDTH_B == 18))))
            $fatal(1, "DP16KD: outside the model");
    end
    function automatic [17:0] rd(input integer w, input [13:0] ad);
        rd = (w == 9) ? {9'd0, mem[ad[13:3]]} : {mem[{ad[13:4], 1'b1}], mem[{ad[13:4], 1'b0}]};
    endfunction
    always @(posedge CLKA) begin
        if ({CSA2, CSA1, CSA0} != 3'b000 || RSTA) $fatal(1, "DP16KD: chip select / reset outside the model");
        if (wide) begin  // a read-only block of 36-bit words: port A mirrors port B
            if (WEA || WEB || CEA != CEB || OCEA != OCEB || ada != adb || REGMODE_A != REGMODE_B)
                $fatal(1, "DP16KD: a 36-bit block outside the model");
            if (CEA) la <= {mem[{ada[13:5], 2'd1}], mem[{ada[13:5], 2'd0}]};
        end else if (CEA & WEA) begin
            if (DATA_WIDTH_A == 9) mem[ada[13:3]] <= dia[8:0];
            else begin
                if (ada[0]) mem[{ada[13:4], 1'b0}] <= dia[8:0];
                if (ada[1]) mem[{ada[13:4], 1'b1}] <= dia[17:9];
            end
        end else if (CEA) la <= rd(DATA_WIDTH_A, ada);
        if (OCEA) oa <= la;
    end
    always @(posedge CLKB) begin
        if ({CSB2, CSB1, CSB0} != 3'b000 || RSTB || WEB) $fatal(1, "DP16KD: port B outside the model");
        // the block's data is undefined when port B reads the word port A writes in that cycle
        // (checked once the harness's reset is over: 4 clocks with rst high, one more)
        if (edges < 8) edges <= edges + 1;
        else if (CEB && CEA && WEA && ((DATA_WIDTH_B == 9) ? ada[13:3] == adb[13:3] : ada[13:4] == adb[13:4]))
            $fatal(1, "DP16KD: a read of the word written in the same cycle");
        if (CEB) lb <= wide ? {mem[{adb[13:5], 2'd3}], mem[{adb[13:5], 2'd2}]} : rd(DATA_WIDTH_B, adb);
        if (OCEB) ob <= lb;
    end
    assign %s = (REGMODE_A == "OUTREG") ? oa : la;
    assign %s = (REGMODE_B == "OUTREG") ? ob : lb;
endmodule
""" % (_INITVALS, _PINS, _bus("DIA", 18), _bus("DIB", 18), _bus("ADA", 14), _bus("ADB", 14), _LOADS,
       _bus("DOA", 18), _bus("DOB", 18))


def _wide_model(c: int, w: int) -> tuple:
    """One 3x3 Conv (c -> 4 channels, 6 x ``w``) and a ReLU: a row buffer of c * w words a row."""
    rng = np.random.default_rng(3)
    inits = {"w": rng.normal(0, .3, (4, c, 3, 3)), "b": rng.normal(0, .1, 4)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["h"], ["y"])]
    g = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 6, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, w])],
                          [numpy_helper.from_array(a.astype(np.float32), k) for k, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return m, rng.normal(0, 1, (16, c, 6, w)).astype(np.float32)


def _frame_model() -> tuple:
    """A 3x3 Conv (1 -> 16 channels, 32 x 32) and a ReLU, transposed, then a ReduceMean over
    its rows: the Transpose's and the ReduceMean's frame memories hold 16 x 32 x 32 words."""
    rng = np.random.default_rng(5)
    inits = {"w": rng.normal(0, .3, (16, 1, 3, 3)), "b": rng.normal(0, .1, 16)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("ReduceMean", ["t"], ["y"], axes=[2], keepdims=0)]
    g = helper.make_graph(nodes, "frame", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 32])],
                          [numpy_helper.from_array(a.astype(np.float32), k) for k, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return m, rng.normal(0, 1, (16, 1, 32, 32)).astype(np.float32)


def _dense_model() -> tuple:
    """Gemm 288 -> 24, ReLU, Gemm 24 -> 10: the first layer's input memory (two vectors of
    288 elements) is a block RAM."""
    rng = np.random.default_rng(9)
    inits = {"w1": rng.normal(0, .1, (288, 24)), "b1": rng.normal(0, .1, 24),
             "w2": rng.normal(0, .3, (24, 10)), "b2": rng.normal(0, .1, 10)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"])]
    g = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 288])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
                          [numpy_helper.from_array(a.astype(np.float32), k) for k, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return m, rng.normal(0, 1, (16, 288)).astype(np.float32)


def _design(which: str):
    if which.startswith("dense"):  # simd 1 (9-bit words) or 2 (18-bit)
        m, cal = _dense_model()
        d = nnforge.compile(m, calibration=cal, bits=8)
        return d, d.quantize_input(cal[:3]), "sequential" if which == "dense9" else {"max_multipliers": 3}
    if which == "frames":
        m, cal = _frame_model()
        d = nnforge.compile(m, calibration=cal, bits=8)
        return d, d.quantize_input(cal[:2]), "sequential"
    if which == "digits_cnn":
        ex = ROOT / "examples" / "digits_cnn"
        d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64], bits=8)
        return d, d.quantize_input(np.load(ex / "test.npz")["x"][:2]), "balanced"
    # 2 tiles: 8-bit words, 4 rows of 48 x 16 (2048 < 3072 words); 18-bit words: 12-bit
    # activations, 4 rows of 24 x 16 (1024 < 1536 words)
    m, cal = _wide_model(16, 48) if which == "tiles9" else _wide_model(16, 24)
    d = nnforge.compile(m, calibration=cal, bits=8 if which == "tiles9" else 12)
    return d, d.quantize_input(cal[:2]), "sequential"


@pytest.mark.slow
@pytest.mark.parametrize("which", ["digits_cnn", "tiles9", "word18", "frames", "dense9", "dense18"])
def test_ecp5_bram_branch_is_bit_exact(tmp_path, which):
    """The sources as ``nnforge synth`` reads them for ECP5 (NNF_ECP5_BRAM: the row buffer
    banks in block RAM are DP16KD tiles with their own output registers), simulated with
    the model above: the same outputs as golden, in the same cycles as the portable
    sources (digits_cnn's pools, a Conv whose banks take 2 tiles of 9-bit words, one of
    18-bit words; the frame memories of a Transpose and a ReduceMean, 8 tiles each, and of
    the output's reorder, one tile)."""
    from nnforge.sim import verilog as sim_verilog
    from nnforge.sim.progress import QUIET

    design, x, mode = _design(which)
    out = design.write(tmp_path / "o", targets=["verilog"], **(mode if isinstance(mode, dict) else {"parallelism": mode})) / "verilog"
    bram = tmp_path / "bram"
    texts = ecp5_branch_exact(design, out, bram, "NNF_ECP5_BRAM", ("dp16kd.v", _DP16KD_MODEL), x, tmp_path)
    tiles = {(f, int(w), int(n)) for f, text in texts.items()
             for n, w in re.findall(r"(?<!x )\b(\d+) DP16KD tile\(s\) of \d+ (\d+)-bit words", text)}  # not ROMs
    if which == "digits_cnn":
        assert tiles and {t[1:] for t in tiles} == {(9, 1)}, tiles
    elif which.startswith("dense"):  # the dense chain's input memory
        dense = {t[1:] for t in tiles if "the input memory: " in texts[t[0]]}
        assert dense == {(9 if which == "dense9" else 18, 1)}, tiles
    else:  # the window engines' row buffer banks, the gather and reduce engines' frame memories
        want = {"tiles9": {(9, 2), ("nnf_reorder_y.v", 9, 1)}, "word18": {(18, 2), ("nnf_reorder_y.v", 18, 1)},
                "frames": {("nnf_Transpose_2.v", 9, 8), ("nnf_ReduceMean_3.v", 9, 8), ("nnf_reorder_y.v", 9, 1)}}
        assert {t[1:] if "Conv" in t[0] else t for t in tiles} == want[which], tiles
    if which in ("frames", "dense18"):  # stalls hold the blocks' read and output registers (CEB / OCEB)
        r = sim_verilog.run(design.lowered("verilog"), bram, tmp_path / "b1", x, QUIET, expected=design.predict_int(x),
                            backpressure=0.3)
        assert r.extra["mismatches"] == 0


def test_bank_shapes():
    """A bank takes the narrowest DP16KD shape its words fit, when that is as few blocks as
    Yosys would infer; else it stays an inferred RAM."""
    def shape(xw, depth):
        b = estimate.bram_bank(xw, depth, max(1, (depth - 1).bit_length()))
        return b and (b["w"], b["tiles"], b["tb"])
    assert shape(8, 512) == (9, 1, 0) and shape(8, 3072) == (9, 2, 1) and shape(12, 1536) == (18, 2, 1)
    assert shape(8, 5000) == (9, 3, 2)
    assert shape(8, 16) is None  # LUT RAM
    assert shape(4, 4096) is None  # one 4096 x 4 block, where 9-bit tiles would take 2
    assert shape(20, 1024) is None  # wider than a tile


@pytest.mark.slow
def test_yosys_uses_the_output_registers(tmp_path):
    """Yosys synth_ecp5 of digits_cnn's max pool (a bank of one DP16KD) and of a Conv whose
    banks take 2 tiles, as ``nnforge synth`` reads them (its script, NNF_ECP5_BRAM) and with
    the define dropped (the inferred RAM): the same DP16KD blocks, every
    bank's with its output register (REGMODE_B "OUTREG"), no fabric flip-flop left for the
    memory output register."""
    import dataclasses
    import subprocess

    from nnforge.sim import fpga
    from nnforge.sim.tools import find_tool

    for which, mod in (("digits_cnn", "nnf_node_max_pool2d"), ("tiles9", None)):
        design, _, mode = _design(which)
        out = design.write(tmp_path / which, targets=["verilog"], parallelism=mode) / "verilog"
        info = json.loads((out / "verilog_info.json").read_text())
        mod = mod or next(ly["file"][:-2] for ly in info["layers"] if "DP16KD" in (out / ly["file"]).read_text())
        cells = {}
        for fam in (fpga.ECP5, dataclasses.replace(fpga.ECP5, defines=())):
            tag = "bram" if fam.defines else "inferred"
            script = fpga.synth_script(fam, f"{mod}.v", mod, f"{tag}.json")
            subprocess.run([find_tool("yosys"), "-q", "-p", script], cwd=out, check=True, capture_output=True)
            top = json.loads((out / f"{tag}.json").read_text())["modules"][mod]
            cells[tag] = {n: c for n, c in top["cells"].items() if c["type"] == "DP16KD"}
            ffs = [n for n in top["netnames"] if n.startswith("x_o")]
            if fam.defines:  # x_o: the blocks' outputs (and the tile select), no register of its own
                assert not any(c["type"] == "TRELLIS_FF" and any(
                    b in top["netnames"].get("x_o0", {}).get("bits", []) for b in c["connections"].get("Q", []))
                    for c in top["cells"].values()), (which, ffs)
        # the same blocks (a Conv's weight ROM in block RAM too: an inferred one, as before)
        assert len(cells["bram"]) == len(cells["inferred"]) > 0, which
        banks = [c for n, c in cells["bram"].items() if n.startswith("x_o")]
        assert len(banks) == {"digits_cnn": 1, "tiles9": 2}[which]
        assert all(c["parameters"]["REGMODE_B"] == "OUTREG" for c in banks), which
        assert all(c["parameters"]["REGMODE_B"] == "NOREG" for c in cells["inferred"].values()), which


@pytest.mark.slow
def test_ecp5_bram_skip_fifo_is_bit_exact(tmp_path):
    """The digits residual network with its skip FIFOs made deep enough for block RAM (2
    DP16KD tiles each): in the ECP5 flow the FIFO memory is the blocks, the read and output
    registers theirs; simulated with the model above, the same outputs as golden in the same
    cycles as the portable sources, also under back-pressure (a stall holds both registers)."""
    from nnforge.codegen.verilog_cnn import write_cnn
    from nnforge.sim import verilog as sim_verilog
    from nnforge.sim.progress import QUIET

    ex = ROOT / "examples" / "digits_resnet"
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64], bits=8)
    x = design.quantize_input(np.load(ex / "test.npz")["x"][:2])
    fifos = write_cnn(design.qgraph, tmp_path / "probe")["fifos"]
    deep = {f"{f['join']}.{f['port']}": 2100 for f in fifos}  # 2098 words: 2 tiles of 2048
    out = tmp_path / "o"
    info = write_cnn(design.qgraph, out, _fifo_depths=deep)
    assert fifos and all(f["depth"] == 2100 for f in info["fifos"])
    bram = tmp_path / "bram"
    texts = ecp5_branch_exact(design, out, bram, "NNF_ECP5_BRAM", ("dp16kd.v", _DP16KD_MODEL), x, tmp_path)
    assert "2 DP16KD tile(s) of 2048 9-bit words" in texts["nnf_fifo.v"]
    r = sim_verilog.run(design.lowered("verilog"), bram, tmp_path / "b2", x, QUIET, expected=design.predict_int(x),
                        backpressure=0.3)
    assert r.extra["mismatches"] == 0

    # Yosys (nnforge synth's script) builds a FIFO of that depth of the two blocks, each with
    # its output register, and keeps no fabric flip-flop on the data out
    import subprocess

    from nnforge.sim import fpga
    from nnforge.sim.tools import find_tool

    script = fpga.synth_script(fpga.ECP5, "nnf_fifo.v", "nnf_fifo", "fifo.json").replace(
        "; synth_ecp5", "; chparam -set DEPTH 2100 -set W 8 nnf_fifo; synth_ecp5", 1)
    subprocess.run([find_tool("yosys"), "-q", "-p", script], cwd=out, check=True, capture_output=True)
    top = json.loads((out / "fifo.json").read_text())["modules"]["nnf_fifo"]
    blocks = [c for c in top["cells"].values() if c["type"] == "DP16KD"]
    assert len(blocks) == 2 and all(c["parameters"]["REGMODE_B"] == "OUTREG" for c in blocks), blocks
    data = set(top["netnames"]["out_data"]["bits"])
    assert not [c for c in top["cells"].values() if c["type"] == "TRELLIS_FF" and data & set(c["connections"]["Q"])]


def _rows_model() -> tuple:
    """A 3x3 Conv of 32 -> 64 channels on 4 x 4 and a ReLU: 18,432 weights, a ROM deeper
    than a block at two products a cycle."""
    rng = np.random.default_rng(7)
    inits = {"w": rng.normal(0, .1, (64, 32, 3, 3)), "b": rng.normal(0, .1, 64)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["h"], ["y"])]
    g = helper.make_graph(nodes, "rows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64, 4, 4])],
                          [numpy_helper.from_array(a.astype(np.float32), k) for k, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return m, rng.normal(0, 1, (16, 32, 4, 4)).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["digits_mlp", "digits_cnn", "rows"])
def test_ecp5_weight_rom_branch_is_bit_exact(tmp_path, which):
    """Weight ROMs the writers place in block RAM are, in the ECP5 flow, DP16KD tiles with
    their contents in INITVAL parameters and their own read and output registers: the
    digits MLP folded sequentially (the dense chain: a ROM of 9-bit and one of 36-bit
    words), the digits CNN sequentially (a window engine, 9-bit), and a Conv whose ROM takes
    several rows of 18-bit tiles (a registered row select). Simulated with the model above:
    golden's outputs in the same cycles as the portable sources."""
    if which == "rows":
        m, cal = _rows_model()
        design = nnforge.compile(m, calibration=cal, bits=8)
        x, kw = design.quantize_input(cal[:2]), {"max_multipliers": 2}
    else:
        ex = ROOT / "examples" / which
        design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"][:64], bits=8)
        x, kw = design.quantize_input(np.load(ex / "test.npz")["x"][:2]), {"parallelism": "sequential"}
    out = design.write(tmp_path / "o", targets=["verilog"], **kw) / "verilog"
    texts = ecp5_branch_exact(design, out, tmp_path / "bram", "NNF_ECP5_BRAM", ("dp16kd.v", _DP16KD_MODEL), x, tmp_path)
    roms = sorted((int(r), int(c), int(w)) for text in texts.values()
                  for r, c, _, w in re.findall(r"the weight ROM: (\d+) x (\d+) DP16KD tile\(s\) of (\d+) (\d+)-bit", text))
    want = {"digits_mlp": [(1, 1, 9), (1, 1, 36)], "digits_cnn": [(1, 1, 9)]}
    if which == "rows":
        assert len(roms) == 1 and roms[0][0] > 1 and roms[0][2] == 18, roms
    else:
        assert roms == want[which], roms


def test_rom_initvals_are_yosys_layout(tmp_path):
    """Yosys's own ECP5 mapping of an inferred ROM of one block (9-, 18- and 36-bit words)
    writes the INITVAL parameters ``estimate.dp16kd_initvals`` gives for the same words."""
    import subprocess

    from nnforge.sim.tools import find_tool

    rng = np.random.default_rng(11)
    for w, d in ((9, 2048), (18, 1024), (36, 512)):
        words = [int(v) for v in rng.integers(0, 1 << w, d, dtype=np.uint64)]
        ab = (d - 1).bit_length()
        init = "\n".join(f"        rom[{a}] = {w}'h{v:x};" for a, v in enumerate(words))
        (tmp_path / "t.v").write_text(
            f"module t(input clk, input [{ab - 1}:0] a, output reg [{w - 1}:0] q);\n"
            f"    reg [{w - 1}:0] rom [0:{d - 1}];\n    initial begin\n{init}\n    end\n"
            f"    always @(posedge clk) q <= rom[a];\nendmodule\n")
        subprocess.run([find_tool("yosys"), "-q", "-p", "read_verilog t.v; synth_ecp5 -top t -json t.json"],
                       cwd=tmp_path, check=True, capture_output=True)
        (cell,) = [c for c in json.loads((tmp_path / "t.json").read_text())["modules"]["t"]["cells"].values()
                   if c["type"] == "DP16KD"]
        ours = estimate.dp16kd_initvals(words, 0, w)
        for i in range(64):
            theirs = int(cell["parameters"].get(f"INITVAL_{i:02X}", "0"), 2)
            assert theirs == int(ours.get(f"{i:02X}", "320'h0").split("'h")[1], 16), (w, i)
