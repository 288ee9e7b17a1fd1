"""The FPGA benchmark of the MLPerf Tiny shapes (benchmarks/mlperf_tiny_fpga.py): its
rows, limits, cache and Markdown rewrite, without synthesis or simulation."""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from conftest import bench_module

bench = bench_module("mlperf_tiny_fpga")


def _tiny_mlp(n_test: int = 4, seed: int = 0):
    """A 16-8-4 dense network, its calibration batch and test inputs."""
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(0, 0.35, (8, 16)), rng.normal(0, 0.5, (4, 8))
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in
             ((w1, "w1"), (np.zeros(8), "b1"), (w2, "w2"), (np.zeros(4), "b2"))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = rng.normal(0, 1, (32 + n_test, 16)).astype(np.float32)
    return model, data[:32], data[32:]


def _doc(tmp_path: Path) -> Path:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Title\n\nprose before\n\n{bench.BEGIN}\nold table\n{bench.END}\n\nprose after\n")
    return doc


def _rows_of(text: str, model: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {model} |")]


def test_fc_autoencoder_rows_limits_and_markdown(tmp_path, capsys):
    """The real autoencoder: balanced and --fit ecp5-25k (its 265 k weights cannot fit that
    part's block RAM), the tables written between the markers, the prose kept."""
    doc = _doc(tmp_path)
    rc = bench.main(["--models", "fc_autoencoder", "--parts", "ecp5-25k", "--cache", str(tmp_path / "c.json"),
                     "--markdown", str(doc)])
    assert rc == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nprose before\n\n" + bench.BEGIN + "\n")
    assert text.endswith(bench.END + "\n\nprose after\n")
    assert "old table" not in text and text.count(bench.BEGIN) == 1
    models, balanced, fit = _rows_of(text, "fc_autoencoder")
    assert models[2] == "264,192" and models[3] == f"{2 * (640 * 128 + 3 * 128 * 128 + 128 * 8) + 1672:,}"
    assert models[4:] == ["8", "8"]
    assert balanced[1] == "balanced" and fit[1] == "--fit ecp5-25k"
    assert fit[3].startswith("does not fit: ") and "block RAM" in fit[3]
    cycles, mult = int(balanced[3].replace(",", "")), int(balanced[6].split()[0])
    assert math.isclose(float(balanced[10]), 264_192 / (mult * cycles), abs_tol=0.0015)  # efficiency
    assert balanced[11] == "125 (target)" and float(balanced[13].replace(",", "")) == round(125e6 / cycles)
    assert "(no design synthesized yet)" in text and "(not simulated yet)" in text


def test_fit_goal_cache_and_synth_table(tmp_path, monkeypatch, capsys):
    """A tiny network on ecp5-25k: the --fit goal, a synthesis report cached under the
    Verilog's hash and shown by a later run without --synth, not by one at another clock."""
    tiny = types.SimpleNamespace(MODELS={"tiny": lambda n_test=4: _tiny_mlp(n_test)})
    monkeypatch.setattr(bench, "load_models", lambda: tiny)
    calls = []

    def fake_synth(vdir, part, outdir, clock_mhz, progress, router, seeds, seed):
        assert (Path(vdir) / "nnforge_top.v").is_file()
        calls.append((part, clock_mhz) + ((seeds,) if seeds > 1 else ()) + ((f"from {seed}",) if seed != 1 else ()))
        assert router == "router1"  # the models of this test are not in ROUTER
        util = {"LUT": {"used": 400}, "FF": {"used": 100}, "DSP": {"used": 2}, "BRAM": {"used": 0}}
        runs = [{"seed": s, "fmax_mhz": 90.0 + 10 * (s == seed + 1), "met": False, "seconds": 1.0}
                for s in range(seed, seed + seeds)] if seeds > 1 else []
        return {"part": part, "clock_mhz": clock_mhz, "fmax_mhz": {"clk": 100.0}, "timing_met": False,
                "seed": seed + 1 if seeds > 1 else seed, "seeds": runs,
                "critical_path": {"summary": "engine x: a -> b"}, "utilization": util,
                "synthesized": {"LUT": 380, "FF": 100, "DSP": 2, "BRAM": 0},
                "seconds": {"total": 90.0}, "tools": {"yosys": "Yosys", "nextpnr": "nextpnr", "packages": {}}}

    import nnforge.sim.fpga as fpga
    monkeypatch.setattr(fpga, "synth", fake_synth)
    cache = tmp_path / "c.json"
    args = ["--models", "tiny", "--parts", "ecp5-25k", "--foldings", "fit", "--cache", str(cache)]
    assert bench.main(args + ["--synth"]) == 0
    assert calls == [("ecp5-25k", 125.0)]
    first = capsys.readouterr().out
    (key,) = json.loads(cache.read_text())
    assert key.startswith("synth|tiny|fit|ecp5-25k|125|")

    monkeypatch.setattr(fpga, "synth", None)  # a second run must not synthesize again
    assert bench.main(args) == 0
    again = capsys.readouterr().out
    design, synth = _rows_of(again, "tiny")[1:3]
    assert _rows_of(first, "tiny")[1:3] == [design, synth]
    cycles = int(design[3].replace(",", ""))
    goal = math.floor(1.15 * math.ceil((8 * 16 + 4 * 8) / 28))  # 160 MACs on the part's 28 multipliers
    assert design[4] == f"{goal:,}" + (" met" if cycles <= goal else " **missed**")
    assert design[11] == "100.0" and float(design[13].replace(",", "")) == round(100e6 / cycles)
    assert synth[3] == "100.0 **< 125**" and synth[-2].startswith("1.5 min (")
    est_luts = int(design[7].replace(",", ""))
    # the estimate's error against Yosys's count; nextpnr's placed LUT4s beside it
    assert synth[4] == f"380 ({est_luts:,}, {100 * (est_luts - 380) / 380:+.0f}%" + (
        " **!**)" if abs(est_luts - 380) > 38 else ")")
    assert synth[5] == "400"

    assert bench.main(args + ["--clock", "100"]) == 0  # another clock: another key, nothing cached
    assert "(no design synthesized yet)" in capsys.readouterr().out

    # several seeds: a key of their own, the seed kept named in the part column
    monkeypatch.setattr(fpga, "synth", fake_synth)
    assert bench.main(args + ["--synth", "--seeds", "3"]) == 0
    assert calls[-1] == ("ecp5-25k", 125.0, 3)
    synth = _rows_of(capsys.readouterr().out, "tiny")[2]
    assert synth[2] == "ecp5-25k (seed 2 of 3)"
    assert sorted(json.loads(cache.read_text()))[-1].endswith("|seeds3")

    # another first seed: a key of its own, the seed named
    assert bench.main(args + ["--synth", "--seed", "9"]) == 0
    assert calls[-1] == ("ecp5-25k", 125.0, "from 9")
    synth = _rows_of(capsys.readouterr().out, "tiny")[2]
    assert synth[2] == "ecp5-25k (seed 9)"
    assert any(k.endswith("|seed9") for k in json.loads(cache.read_text()))


def test_cache_keeps_the_results_of_runs_at_the_same_time(tmp_path):
    a, b = bench.Cache(tmp_path / "c.json"), bench.Cache(tmp_path / "c.json")
    a.put("x", 1)
    b.put("y", 2)  # b read the file before a wrote it
    a.put("x", 3)
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 3, "y": 2}
    assert bench.Cache(tmp_path / "c.json").get("y") == 2


def test_a_design_yosys_finds_too_big_is_cached_with_its_counts(tmp_path, monkeypatch, capsys):
    tiny = types.SimpleNamespace(MODELS={"tiny": lambda n_test=4: _tiny_mlp(n_test)})
    monkeypatch.setattr(bench, "load_models", lambda: tiny)
    import nnforge.sim.fpga as fpga

    def too_big(vdir, part, outdir, clock_mhz, progress, router, seeds, seed):
        progress("synth: yosys done in 1.0 s: 400 LUT4s, 100 flip-flops, 0 DP16KD block RAMs (18 kbit), "
                 "40 MULT18X18D multipliers, 23 IO pins")
        raise fpga.FitError(fpga.resolve_part(part), "DSP", 40, 28)

    monkeypatch.setattr(fpga, "synth", too_big)
    args = ["--models", "tiny", "--parts", "ecp5-25k", "--foldings", "fit", "--cache", str(tmp_path / "c.json")]
    assert bench.main(args + ["--synth"]) == 0
    design, synth = _rows_of(capsys.readouterr().out, "tiny")[1:3]
    assert synth[3] == ("does not fit: the design does not fit ecp5-25k: it needs 40 MULT18X18D multipliers, "
                        "the part has 28")
    dsp = int(design[6].split()[0])
    assert synth[7] == f"40 ({dsp}, {100 * (dsp - 40) / 40:+.0f}% **!**)" and synth[4].startswith("400 (")
    assert synth[5] == "-" and synth[9:] == ["-", "-"]
