"""Streaming joins and skip FIFOs (codegen/verilog_join.py, codegen/verilog_cnn.py
``_skip_fifos``): a residual Add / Mul of two activations takes one element of each port
per output, no frame memory; the skip path of a fork joined again gets a FIFO sized by
analysis. The residual network runs at its slowest engine's rate, exactly; random
back-pressure stays exact; a FIFO one element below the need deadlocks."""

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import _VerilogPorts
from test_verilog_graph import residual

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "examples" / "digits_resnet"


def _resnet():
    return nnforge.compile(RESNET / "model.onnx", calibration=np.load(RESNET / "calibration.npz")["x"], bits=8)


def _frame_residual(rng):
    """x -> d1 -> r1; y = r1 + d2(r1) on (48,) vectors: d2 (a Dense window engine) reads
    every element of its input before its first output, so the long path holds a whole
    frame of r1 before the join's first element."""
    n = 48
    inits = {"w1": rng.normal(0, 0.2, (n, n)), "b1": rng.normal(0, 0.1, n),
             "w2": rng.normal(0, 0.15, (n, n)), "b2": rng.normal(0, 0.1, n)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["d1"], transB=1),
             helper.make_node("Relu", ["d1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["d2"], transB=1),
             helper.make_node("Add", ["r1", "d2"], ["y"])]
    g = helper.make_graph(nodes, "fr", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), (n,)


def _compile(make, seed, bits=8):
    rng = np.random.default_rng(seed)
    model, shape = make(rng)
    for t in model.graph.initializer:  # (residual() has no int64 shapes; keep the helper general)
        if t.name.startswith("shp"):
            t.CopyFrom(numpy_helper.from_array(np.asarray(numpy_helper.to_array(t), np.int64), t.name))
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (64, *shape)).astype(np.float32), bits=bits)
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (16, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    return design, x


def _run(design, x, out: Path, engine="auto", backpressure=0.0, **write):
    from nnforge.codegen.verilog_cnn import write_cnn
    from nnforge.sim import verilog as sim_verilog
    from nnforge.sim.progress import QUIET

    info = write_cnn(design.qgraph, out / "v", **write)
    sim_verilog.lint(out / "v")
    n = len(x)
    gold = design.predict_int(x).reshape(n, -1)
    res = sim_verilog.run(_VerilogPorts(design, info), out / "v", out / "b", x.reshape(n, -1), QUIET, gold,
                          backpressure=backpressure, engine=engine)
    assert res.extra["mismatches"] == 0 and np.array_equal(res.y, gold)
    return info, res


def test_resnet_plan_streaming_joins_and_fifos(tmp_path):
    """No frame memory in the Adds; one FIFO per skip, sized by the analysis (capped at a
    frame), reported in verilog_info.json and README.txt; the period is the slowest engine's."""
    from nnforge.codegen.verilog_cnn import write_cnn

    info = write_cnn(_resnet().qgraph, tmp_path / "v")
    adds = [ly for ly in info["layers"] if ly["op"] == "Add"]
    assert len(adds) == 2 and all(ly["frame_memory_words"] == 0 and ly["latency_cycles"] == 3 for ly in adds)
    fifos = {f["join"]: f for f in info["fifos"]}
    assert set(fifos) == {ly["name"] for ly in adds}
    for f in fifos.values():
        assert 2 <= f["depth"] <= f["frame"] and f["depth"] == min(f["need"], f["frame"]) and f["why"]
    # the first block's long path (two line engines) holds less than a frame; the second one's more
    first, second = (fifos[ly["name"]] for ly in adds)
    assert first["depth"] == first["need"] < first["frame"] == 1024
    assert second["depth"] == second["frame"] == 256 < second["need"]
    assert info["totals"]["fifo_words"] == first["depth"] + second["depth"]
    assert info["totals"]["ii_cycles"] == max(ly["ii_cycles"] for ly in info["layers"])
    readme = (tmp_path / "v" / "README.txt").read_text()
    assert "skip FIFO" in readme and str(first["depth"]) in readme
    top = (tmp_path / "v" / "nnforge_top.v").read_text()
    assert top.count("nnf_fifo #") == 2 and (tmp_path / "v" / "nnf_fifo.v").exists()
    json.dumps(info)


@pytest.mark.slow
def test_resnet_runs_at_its_slowest_engine(tmp_path):
    """The whole test split: 0 mismatches; measured cycles per inference equal the
    estimate (the slowest engine's frame, 2,307 cycles; 4,174 measured with the
    frame-buffered joins) and the latency is within 10% of its estimate."""
    from nnforge.sim import verilog as sim_verilog

    design = _resnet()
    test = np.load(RESNET / "test.npz")
    out = design.write(tmp_path / "o", targets=["verilog"])
    sim_verilog.lint(out / "verilog")
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    res = design.verify(test["x"], test["y"], backends=["golden", "verilog"], outdir=out)
    v = res.backends["verilog"]
    assert v.samples == len(test["x"]) and v.mismatches == 0
    ii = info["totals"]["ii_cycles"]
    assert ii == max(ly["ii_cycles"] for ly in info["layers"]) < 2400
    assert abs(v.cycles_per_inference - ii) <= 0.01 * v.cycles_per_inference
    # latency: from a direct run (first input beat to the last output beat of sample 0)
    _, r = _run(design, design.quantize_input(test["x"][:4]), tmp_path)
    lat = info["totals"]["latency_cycles"]
    assert abs(r.latency_cycles - lat) <= 0.1 * r.latency_cycles, (r.latency_cycles, lat)


@pytest.mark.slow
@pytest.mark.parametrize("backpressure", [0.3, 0.5])
def test_residual_backpressure_cocotb(backpressure, tmp_path):
    """Random input gaps and output stalls (the cocotb testbench): still exact."""
    design, x = _compile(residual, 3, bits=6)
    info, res = _run(design, x[:8], tmp_path, engine="cocotb", backpressure=backpressure)
    assert info["fifos"] and res.extra["engine"] == "cocotb"


@pytest.mark.slow
def test_residual_period_estimate(tmp_path):
    """Two skips (one capped at a frame): the measured period is the estimate (10%)."""
    design, x = _compile(residual, 8)
    info, res = _run(design, x, tmp_path)
    gap = res.cycles_per_inference
    assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap, (gap, info["totals"])
    assert abs(res.latency_cycles - info["totals"]["latency_cycles"]) <= 0.1 * res.latency_cycles


@pytest.mark.slow
def test_fifo_one_below_need_deadlocks(tmp_path):
    """A window engine on the long path holds a whole frame (n elements of the skip) before
    the join's first element; the skip side holds the FIFO plus SKIP_EXTRA (the join's
    input buffer, the fork's beat): FIFO n - 3 is the least that runs (exact), n - 4 hangs.
    The analysis gives n (its need, more than a frame, capped)."""
    from nnforge.codegen.verilog_cnn import SKIP_EXTRA
    from nnforge.sim.tools import ToolError

    design, x = _compile(_frame_residual, 4)
    x = x[:3]
    info, _ = _run(design, x, tmp_path / "ok")
    (f,) = info["fifos"]
    n = f["frame"]
    assert f["depth"] == n == 48 and f["need"] > n
    key = f"{f['join']}.{f['port']}"
    least = n - SKIP_EXTRA
    info, _ = _run(design, x, tmp_path / "least", _fifo_depths={key: least})
    assert info["fifos"][0]["depth"] == least
    with pytest.raises(ToolError, match="hung"):
        _run(design, x, tmp_path / "small", _fifo_depths={key: least - 1})


@pytest.mark.slow
def test_streaming_join_synthesizes(tmp_path):
    from nnforge.codegen.verilog_cnn import write_cnn
    from nnforge.sim import verilog as sim_verilog

    design, _ = _compile(residual, 5, bits=5)
    info = write_cnn(design.qgraph, tmp_path / "v")
    assert info["fifos"]
    stats = sim_verilog.synth_check(tmp_path / "v")
    assert stats["cells"] > 0 and stats["flipflops"] > 0
