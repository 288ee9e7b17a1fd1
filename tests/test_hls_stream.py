"""The HLS C++ stream form (codegen/hls_stream.py): the MLPerf Tiny shapes folded for an
xc7z020 (``--fit xc7z020``) are bit-exact with golden under g++; the generated C++ is
walked to check that no pipelined loop does more multiplies than its layer's PE x SIMD
and that every DATAFLOW connection is a stream with a stated depth; the HLS report gives
the Verilog's multipliers and, within a few cycles, its period."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest

import nnforge
from conftest import bench_module
from nnforge.sim.fpga import fit_budget, resolve_part
from nnforge.sim.native import CXX_FLAGS
from nnforge.sim.tools import find_tool

shapes = bench_module("mlperf_tiny")

_FOR = re.compile(r"^\s*for \(int (\w+) = 0; \1 < (\d+); \1\+\+\) \{")


def _functions(text: str) -> dict[str, list[str]]:
    """Each top-level function's body lines (by name), from its signature to its closing brace."""
    out, name, depth = {}, None, 0
    for line in text.splitlines():
        m = re.match(r"^(?:static )?(?:inline )?\w[\w:<>, ]* (\w+)\(.*\)\s*$", line)
        if name is None and m and not line.rstrip().endswith(";"):
            name, depth, out[m.group(1)] = m.group(1), 0, []
            continue
        if name is not None:
            out[name].append(line)
            depth += line.count("{") - line.count("}")
            if depth == 0 and "}" in line:
                name = None
    return out


def pipelined_multiplies(body: list[str]) -> list[int]:
    """For every pipelined loop of a function body: the weight products (``*`` with a
    ``_w[`` operand) one iteration does, unrolled loops inside it counted by their trip
    counts; a product outside any pipelined loop fails."""
    stack, counts = [], []  # stack of [trip, pragma, depth at open, index into counts]
    depth = 0
    for i, line in enumerate(body):
        m = _FOR.match(line)
        if m:
            stack.append([int(m.group(2)), None, depth, None])
            nxt = body[i + 1].strip() if i + 1 < len(body) else ""
            if nxt.startswith("#pragma HLS PIPELINE"):
                stack[-1][1] = "pipeline"
                counts.append(0)
                stack[-1][3] = len(counts) - 1
            elif nxt.startswith("#pragma HLS UNROLL"):
                stack[-1][1] = "unroll"
        n = len(re.findall(r"\*\s*\([^)]*\)\s*\w+_w\[", line))
        if n:
            pipe = [k for k, f in enumerate(stack) if f[1] == "pipeline"]
            assert pipe, f"a weight product outside a pipelined loop: {line.strip()}"
            unroll = 1
            for f in stack[pipe[-1] + 1:]:
                assert f[1] == "unroll", f"a rolled loop inside a pipelined one: {line.strip()}"
                unroll *= f[0]
            counts[stack[pipe[-1]][3]] += n * unroll
        depth += line.count("{") - line.count("}")
        while stack and depth <= stack[-1][2]:
            stack.pop()
    return counts


def check_dataflow(text: str, top_name: str = "nnforge_top", ports=("in", "out")) -> dict[str, int]:
    """Every connection of a top's DATAFLOW region is an hls::stream with a stated depth,
    and every process call passes streams only (besides the top's ``ports``). Returns the
    depth of each stream."""
    top = _functions(text)[top_name]
    assert any("#pragma HLS DATAFLOW" in ln for ln in top)
    depths, declared = {}, []
    for i, line in enumerate(top):
        m = re.match(r"^\s*hls::stream<[\w:]+> (\w+)\(\"\1\"\);", line)
        if m:
            declared.append(m.group(1))
            d = re.match(rf"^#pragma HLS STREAM variable={m.group(1)} depth=(\d+)", top[i + 1])
            assert d, f"stream {m.group(1)} has no stated depth"
            depths[m.group(1)] = int(d.group(1))
        assert "NNF_BUF" not in line and not re.search(r"\w+\s+\w+\[\d+\];", line), line
    calls = [re.match(r"^\s*(\w+)\((.*)\);", ln) for ln in top]
    calls = [c for c in calls if c and not c.group(1).startswith("hls")]
    assert len(calls) >= 3
    for c in calls:
        args = [a.strip() for a in c.group(2).split(",")]
        assert all(a in depths or a in ports for a in args), c.group(0)
    return depths


@pytest.mark.parametrize("name", ["resnet8", "ds_cnn", "fc_autoencoder"])
def test_mlperf_shapes_fit_xc7z020(name, tmp_path):
    model, cal, test = getattr(shapes, name)(n_test=20)
    design = nnforge.compile(model, calibration=cal, bits=8)
    part = resolve_part("xc7z020")
    out = design.write(tmp_path / name, targets=["hls", "verilog"], clock_mhz=125.0, **fit_budget(part))
    res = design.verify(test, backends=["golden", "hls"], outdir=out)
    assert res.backends["hls"].samples == 20 and res.backends["hls"].mismatches == 0 and res.ok

    info = json.loads((out / "hls" / "hls_info.json").read_text())
    vinfo = json.loads((out / "verilog" / "verilog_info.json").read_text())
    assert info["form"] == "stream" and info["part"] == "xc7z020clg400-1" and info["clock_ns"] == 8.0
    tcl = (out / "hls" / "run_hls.tcl").read_text()
    assert 'set part "xc7z020clg400-1"' in tcl and "set clock_ns 8.0" in tcl
    # the report: the estimate fits the part; the Verilog's multipliers, its period within a few cycles
    t = info["totals"]
    assert t["estimate"]["dsp"] <= part.resources["DSP"] and t["estimate"]["bram"] <= part.resources["BRAM"]
    assert t["estimate"]["dsp"] == vinfo["totals"]["estimate"]["dsp"]
    assert t["estimate"]["bram"] == vinfo["totals"]["estimate"]["bram"]
    # the same lanes in every layer (these designs have no LUT multipliers or multiplier
    # rescales, so the Verilog's multipliers are its PE x SIMD lanes)
    macs = {ly["name"]: ly for ly in info["layers"] if "pe" in ly}
    vmacs = {ly["name"]: ly for ly in vinfo["layers"] if ly["name"] in macs}
    assert set(vmacs) == set(macs)
    for n, ly in vmacs.items():
        assert (macs[n]["pe"], macs[n]["multipliers"]) == (ly["pe"], ly["multipliers"]), n
    assert t["multipliers"] == vinfo["totals"]["multipliers"]
    # the period: the Verilog's, but for the last block's outputs a frame ends with (at most
    # PE cycles) and the Verilog's 3 cycles of frame overhead
    assert t["verilog_period_cycles"] == vinfo["totals"]["ii_cycles"]
    assert abs(t["period_cycles"] - vinfo["totals"]["ii_cycles"]) <= max(ly["pe"] for ly in macs.values()) + 3
    report = json.loads((out / "report.json").read_text())
    assert report["hls"]["totals"] == t
    assert "HLS C++ (stream form" in (out / "report.txt").read_text()

    # the code: each pipelined loop of a layer does at most its PE x SIMD multiplies (its
    # matrix-vector unit exactly that many); every DATAFLOW connection a stream with a depth
    text = (out / "hls" / "nnforge_hls.cpp").read_text()
    funcs = _functions(text)
    for fname, body in funcs.items():
        counts = pipelined_multiplies(body)
        layer = next((ly for n, ly in macs.items() if fname == f"{n}_mvu"), None)
        if layer is None:
            assert not any(counts), fname
            continue
        assert counts and max(counts) == layer["multipliers"] == layer["pe"] * (
            1 if layer["depthwise"] else layer["simd"]), (fname, counts)
    depths = check_dataflow(text)
    assert all(d >= 2 for d in depths.values())
    assert check_dataflow(text, "nnforge_top_axis", ("s_axis", "m_axis")) == depths
    assert "set_top nnforge_top_axis" in tcl and info["top"] == "nnforge_top_axis"
    # the testbench (Vitis's csim) under g++: both tops, every output and TLAST
    tb = subprocess.run([find_tool("g++"), *CXX_FLAGS, "-I", str(out / "hls"), str(out / "hls" / "tb_nnforge_hls.cpp"),
                         str(out / "hls" / "nnforge_hls.cpp"), "-o", str(tmp_path / "tb")], capture_output=True, text=True)
    assert tb.returncode == 0, tb.stderr[-2000:]
    run = subprocess.run([str(tmp_path / "tb")], capture_output=True, text=True)
    assert run.returncode == 0 and "16 samples, 0 mismatching outputs (array and AXI4-Stream tops)" in run.stdout, run.stdout
    # a skip stream's depth is the Verilog skip FIFO's
    assert sorted(d for d in depths.values() if d > 2) == sorted(f["depth"] for f in vinfo.get("fifos", []))


def test_walker_catches_too_many_multiplies():
    body = """void x_mvu(hls::stream<int> &a)
{
    for (int t = 0; t < 9; t++) {
#pragma HLS PIPELINE II=1
        for (int p = 0; p < 4; p++) {
#pragma HLS UNROLL
            for (int s = 0; s < 8; s++) {
#pragma HLS UNROLL
                a += (acc_t)v.v[s]
                     * (acc_t)x_w[t];
            }
        }
    }
}
""".splitlines()
    assert pipelined_multiplies(body[2:]) == [32]
    rolled = [ln for ln in body[2:] if "#pragma HLS UNROLL" not in ln]
    with pytest.raises(AssertionError, match="rolled loop inside a pipelined one"):
        pipelined_multiplies(rolled)


def test_array_form_where_the_stream_form_does_not_apply(tmp_path):
    """An op the stream form does not implement (Sigmoid, a table): the array form, still
    bit-exact, and hls_info.json says which."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["h"]), helper.make_node("Sigmoid", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    design = nnforge.compile(model, calibration=rng.normal(size=(32, 8)).astype(np.float32))
    out = design.write(tmp_path / "o", targets=["hls"])
    info = json.loads((out / "hls" / "hls_info.json").read_text())
    assert info["form"] == "array" and "does not implement Sigmoid" in info["why"]
    assert "array form, one buffer per step: the stream form does not implement Sigmoid" in (out / "report.txt").read_text()
    x = rng.normal(size=(16, 8)).astype(np.float32)
    assert design.verify(x, backends=["golden", "hls"], outdir=out).backends["hls"].mismatches == 0


def test_trace_names_the_corrupted_process(tmp_path, capsys):
    """verify --trace on the stream form: every layer's stream, put back in the IR's
    order, equals golden; a negated weight row in one matrix-vector unit is named."""
    from conftest import ROOT, negate_first_row, verify_trace_json
    from nnforge import cli

    ex = ROOT / "examples" / "digits_resnet"
    out = tmp_path / "out"
    assert cli.main(["compile", str(ex / "model.onnx"), "-o", str(out), "--targets", "hls", "--calibration",
                     str(ex / "calibration.npz"), "-q"]) == 0
    layers = json.loads((out / "hls" / "hls_info.json").read_text())["layers"]
    macs = [ly["name"] for ly in layers if "pe" in ly]
    victim = macs[3]
    negate_first_row(out / "hls" / "nnforge_hls.cpp", f"{victim}_w")
    rc, doc = verify_trace_json(out, ex / "test.npz", capsys)
    assert rc == 1
    traced = doc["trace"]["backends"]["hls"]
    assert [t["step"] for t in traced] == [ly["name"] for ly in layers]
    first = next(t for t in traced if t["mismatches"])
    assert first["step"] == victim  # every layer before it equals golden


@pytest.mark.parametrize("hostile, fragment", [
    ("[1, 2]", "expected a JSON object"),
    ('{"form": "stream"}', "layers: expected a list"),
    ('{"form": "stream", "layers": [{"name": "a", "op": "Conv", "tensor": "nope", "layout": [0]}]}',
     "which is not an integer tensor of the design"),
    ('{"form": "stream", "layers": [{"name": "a", "op": "Conv", "tensor": "@T", "layout": [7, 7, 7]}]}',
     "layout: expected a permutation"),
    ('{"form": "stream", "layers": [{"name": "a", "op": "Conv", "tensor": "@T", "layout": "abc"}]}',
     "layout: expected a permutation"),
    ("{not json", "not readable JSON"),
])
def test_trace_refuses_a_hostile_hls_info(tmp_path, capsys, hostile, fragment):
    """hls_info.json comes with the folder: a malformed one is one error line, no traceback."""
    from conftest import ROOT
    from nnforge import cli

    ex = ROOT / "examples" / "digits_cnn"
    out = tmp_path / "out"
    assert cli.main(["compile", str(ex / "model.onnx"), "-o", str(out), "--targets", "hls", "--calibration",
                     str(ex / "calibration.npz"), "-q"]) == 0
    tensor = json.loads((out / "hls" / "hls_info.json").read_text())["layers"][0]["tensor"]
    (out / "hls" / "hls_info.json").write_text(hostile.replace("@T", tensor))
    capsys.readouterr()
    rc = cli.main(["verify", str(out), "--data", str(ex / "test.npz"), "--limit", "4", "--trace", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and fragment in err, err


def test_write_refuses_a_bad_clock_or_part(tmp_path):
    from conftest import ROOT

    ex = ROOT / "examples" / "digits_mlp"
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"])
    with pytest.raises(ValueError, match="positive frequency"):
        design.write(tmp_path / "a", targets=["hls"], clock_mhz=0)
    with pytest.raises(ValueError, match="not an AMD part's Vivado name"):
        design.write(tmp_path / "b", targets=["hls"], part="xc7z020; exec rm -rf /")
    with pytest.raises(ValueError, match="arch='amd' is the estimate a budget"):
        design.write(tmp_path / "c", targets=["verilog"], arch="amd")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
