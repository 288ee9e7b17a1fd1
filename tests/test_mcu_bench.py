"""The MLPerf Tiny model builders and the Cortex-M benchmark (benchmarks/mcu.py)."""

from __future__ import annotations


import numpy as np
import onnx
import pytest

from conftest import bench_module
import nnforge
from nnforge.codegen.program import lower_program

tiny = bench_module("mlperf_tiny")
bench = bench_module("mcu")

# the reference models' multiply-accumulates, from their layer shapes
EXPECTED_MACS = {
    "resnet8": 32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 144  # stem, stack 1
    + 16 * 16 * 32 * (144 + 288 + 16) + 8 * 8 * 64 * (288 + 576 + 32) + 64 * 10,  # stacks 2, 3, dense
    "ds_cnn": 25 * 5 * 64 * 40 + 4 * 25 * 5 * 64 * (9 + 64) + 64 * 12,
    "fc_autoencoder": 2 * (640 * 128 + 3 * 128 * 128 + 128 * 8),
    # stem, then each depthwise (9 taps) + pointwise block at its output size, dense
    "mobilenet_v1": 48 * 48 * 8 * 27 + 48 * 48 * 8 * (9 + 16) + 24 * 24 * 16 * 9 + 24 * 24 * 16 * 32
    + 24 * 24 * 32 * (9 + 32) + 12 * 12 * 32 * 9 + 12 * 12 * 32 * 64 + 12 * 12 * 64 * (9 + 64)
    + 6 * 6 * 64 * 9 + 6 * 6 * 64 * 128 + 5 * 6 * 6 * 128 * (9 + 128) + 3 * 3 * 128 * 9 + 3 * 3 * 128 * 256
    + 3 * 3 * 256 * (9 + 256) + 256 * 2,
}


@pytest.mark.parametrize("name", sorted(tiny.MODELS))
def test_mlperf_tiny_models_compile_with_their_mac_counts(name):
    model, cal, test = tiny.MODELS[name](n_cal=8, n_test=3)
    onnx.checker.check_model(model)
    assert model.ir_version == tiny.IR_VERSION and model.opset_import[0].version == tiny.OPSET
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in model.graph.initializer)
    design = nnforge.compile(model, calibration=cal)
    assert lower_program(design.qgraph).macs == EXPECTED_MACS[name] == tiny.MACS[name]
    y = np.asarray(design.predict_int(design.quantize_input(test))).reshape(len(test), -1)
    assert len(test) >= 2 and all(len(np.unique(row)) > 1 for row in y)  # not degenerate
    assert len(np.unique(y, axis=0)) == len(test)  # different inputs, different outputs


def test_mlperf_tiny_is_seeded():
    a, b = tiny.fc_autoencoder(seed=3), tiny.fc_autoencoder(seed=3)
    assert a[0].SerializeToString() == b[0].SerializeToString()
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert not np.array_equal(a[1], tiny.fc_autoencoder(seed=4)[1])


def test_targets_and_markdown(tmp_path):
    assert bench.parse_target("generic") == ("generic", "cortex-m4")
    assert bench.parse_target("generic@cortex-m0plus") == ("generic", "cortex-m0plus")
    assert bench.parse_target("cortex-m0plus") == ("cortex-m0plus", "cortex-m0plus")
    for bad in ("cortex-m9", "cortex-m4@cortex-m0plus", "cortex-m55"):  # unknown; mixed; not emulated
        with pytest.raises(ValueError):
            bench.parse_target(bad)
    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{bench.BEGIN}\nold table\n{bench.END}\nlimits\n")
    bench.rewrite_markdown(doc, "| new |")
    assert doc.read_text() == f"intro\n{bench.BEGIN}\n| new |\n{bench.END}\nlimits\n"


def _needs_tools():
    reason = bench.unavailable()
    if reason:
        pytest.skip(reason)


def test_benchmark_table_on_the_smallest_model(tmp_path):
    _needs_tools()
    rows = bench.measure("digits_mlp", ["generic", "cortex-m4"], tmp_path)
    assert [r.mcu for r in rows] == ["generic", "cortex-m4"]
    for r in rows:
        assert r.macs == 2720 and r.instructions > r.macs / 2 and r.code > 0 and r.flash > r.weights >= 2720
        assert r.arena > 0 and r.stack > 0
    m4 = rows[1]
    assert m4.layers and sum(n for *_, n, _ in m4.layers) <= m4.instructions
    assert sum(macs for *_, macs in m4.layers) == m4.macs
    text = bench.table(rows)
    assert text.count("\n| digits_mlp |") == 2 and "| 1.00 |" in text
    lines = bench.layer_table(m4).splitlines()
    assert len(lines) == 2 + len(m4.layers)
    assert all(line.split()[0] == name for line, (name, *_) in zip(lines[2:], m4.layers))


def test_benchmark_refuses_outputs_unlike_golden(tmp_path, monkeypatch):
    _needs_tools()
    h = bench.harness()
    real = h.run

    def off_by_one(b, x, count=True):
        r = real(b, x, count)
        r.outputs = r.outputs + 1
        return r

    monkeypatch.setattr(h, "run", off_by_one)
    with pytest.raises(AssertionError, match="differ from the golden model"):
        bench.measure("digits_mlp", ["generic"], tmp_path)
