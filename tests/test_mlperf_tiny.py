"""The MLPerf Tiny shapes (benchmarks/mlperf_tiny.py) and their backend check
(benchmarks/mlperf_tiny_check.py): MAC counts from the layer shapes, and golden, C and
HLS C++ agreeing on the two smallest models (the big models run in the benchmark)."""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from onnx import numpy_helper, shape_inference

from conftest import bench_module

check = bench_module("mlperf_tiny_check")
tiny = check.tiny  # the builders the check runs


def onnx_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of the Conv / Gemm nodes, from ONNX's shape inference: output
    elements times the weights each one reads (a weight tensor's size over its outputs)."""
    m = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(m.graph.value_info) + list(m.graph.output)}
    weights = {t.name: numpy_helper.to_array(t).shape for t in m.graph.initializer}
    total = 0
    for n in m.graph.node:
        if n.op_type in ("Conv", "Gemm"):
            w = weights[n.input[1]]
            total += int(np.prod(shapes[n.output[0]])) * int(np.prod(w)) // w[0]
    return total


def test_mobilenet_v1_macs_by_layer():
    # 96 -> 48 by the stem, then 48, 24, 24, 12, 12, 6 x6, 3, 3 for the 13 blocks
    sides = [48, 24, 24, 12, 12, 6, 6, 6, 6, 6, 6, 3, 3]
    chans = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256]
    want = 48 * 48 * 8 * 27 + 256 * 2
    for side, c_in, c_out in zip(sides, chans, chans[1:]):
        want += side * side * c_in * 9 + side * side * c_in * c_out
    assert [c for c, _ in tiny.MOBILENET_BLOCKS] == chans[1:]
    assert tiny.MACS["mobilenet_v1"] == want == 7_489_664


@pytest.mark.parametrize("name", sorted(tiny.MODELS))
def test_macs_table_matches_the_layers(name):
    model, cal, test = tiny.MODELS[name](n_cal=2, n_test=3)
    assert onnx_macs(model) == tiny.MACS[name]
    assert len(cal) == 2 and len(test) == 3
    assert cal.shape[1:] == tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:])


def test_mobilenet_v1_shape():
    model, _, _ = tiny.mobilenet_v1(n_cal=1, n_test=1)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 27 and ops.count("Relu") == 27 and ops[-1] == "Gemm"
    dw = [n for n in model.graph.node if n.op_type == "Conv"
          and next(a.i for a in n.attribute if a.name == "group") > 1]
    assert len(dw) == 13
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in out] == [1, 2]
    chans = [8] + [c for c, _ in tiny.MOBILENET_BLOCKS]
    params = 27 * 8 + 8 + sum(10 * c + (c + 1) * c_out for c, c_out in zip(chans, chans[1:])) + 257 * 2
    assert check.parameters(model) == params == 210_850  # weights and biases


def test_table_says_no_on_a_mismatch_or_an_error():
    good = {b: check.Check(4, 0, 0.1) for b in check.BACKENDS}
    row = check.Row("m", 10, 5, checks=dict(good))
    assert row.ok and "yes" in check.table([row])
    row.checks["hls"] = check.Check(4, 1, 0.1)
    assert not row.ok and "1 of 4 samples differ" in check.table([row])
    row.checks["hls"] = check.Check(4, error="boom")
    assert not row.ok and "m hls: boom" in check.table([row])
    assert not check.Row("m", 10, 5, checks={"golden": good["golden"]}).ok  # C and HLS missing
    assert not check.Row("m", 10, 5, checks=dict(good), error="MACs").ok


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fc_autoencoder", "ds_cnn"])
def test_golden_c_and_hls_agree(name, tmp_path, monkeypatch):
    row = check.check(name, samples=3, verilog_samples=0, parallelism="balanced", root=tmp_path,
                      log=lambda s: None)
    assert set(row.checks) == {"golden", "c", "hls"}
    assert all(c.samples == 3 and c.error is None and c.mismatches == 0 for c in row.checks.values()), row
    assert row.ok and row.macs == tiny.MACS[name]
    monkeypatch.setitem(tiny.MACS, name, row.macs + 1)  # the program's count is checked against the table
    assert "MACs" in (check.check(name, 1, 0, "balanced", tmp_path / "again", log=lambda s: None).error or "")
