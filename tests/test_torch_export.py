"""Real PyTorch exports: a small MLP trained on scikit-learn's digits, exported with the
dynamo exporter (the default) and the legacy TorchScript one, imported, compared with
onnxruntime and compiled to bit-exact C and HLS C++."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import nnforge
from conftest import train_classifier
from nnforge.frontend import import_onnx
from nnforge.ir import run_float

KINDS = {
    # name: (per-sample input shape, ends in Softmax)
    "vector_softmax": ((64,), True),
    "image_logits": ((1, 8, 8), False),
}


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, d.target, test_size=0.2, random_state=0)
    return x_train, x_test, y_train, y_test


def train(kind: str, x_train: np.ndarray, y_train: np.ndarray) -> nn.Module:
    """A second or so of full-batch Adam; Dropout is in the graph and off after eval()."""
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))
    shape, softmax = KINDS[kind]
    x = torch.from_numpy(x_train.reshape(-1, *shape))
    train_classifier(body, x, torch.from_numpy(y_train), steps=200, lr=1e-2)
    model = nn.Sequential(body, nn.Softmax(dim=1)) if softmax else body
    return model.eval()


@pytest.fixture(scope="module")
def trained(digits):
    x_train, _, y_train, _ = digits
    # one thread: with two, OpenMP spinning on a busy 2-core machine makes this 100x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {kind: train(kind, x_train, y_train) for kind in KINDS}
    finally:
        torch.set_num_threads(threads)


def export(model: nn.Module, shape: tuple[int, ...], path, dynamo: bool) -> None:
    example = (torch.zeros(2, *shape),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, example, str(path), dynamo=True, input_names=["input"],
                              output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            torch.onnx.export(model, example, str(path), dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def legacy_exporter_available(tmp_path) -> str | None:
    """None if torch.onnx.export(dynamo=False) still works, else the reason it does not."""
    try:
        export(nn.Sequential(nn.Linear(2, 2)).eval(), (2,), tmp_path / "probe.onnx", dynamo=False)
    except (TypeError, NotImplementedError, ValueError, RuntimeError) as e:
        if "dynamo" in str(e).lower() or "torchscript" in str(e).lower() or isinstance(e, TypeError):
            return f"torch {torch.__version__} no longer has the legacy exporter: {e}"
        raise
    return None


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_torch_export_compiles_bit_exact(tmp_path, digits, trained, kind, exporter):
    x_train, x_test, _, y_test = digits
    shape, softmax = KINDS[kind]
    if exporter == "legacy":
        reason = legacy_exporter_available(tmp_path)
        if reason:
            pytest.skip(reason)
    model = trained[kind]
    path = tmp_path / "model.onnx"
    export(model, shape, path, dynamo=exporter == "dynamo")
    onnx_ops = [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]
    assert ("Softmax" in onnx_ops) == softmax

    x = x_test.reshape(-1, *shape)
    cal = x_train[:500].reshape(-1, *shape)

    # float: interpreter == onnxruntime == torch
    g = import_onnx(path)
    assert g.shape(g.inputs[0]) == shape
    mine = run_float(g, x)[0]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert mine.shape == ref.shape == (len(x), 10)
    np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
    with torch.no_grad():
        np.testing.assert_allclose(mine, model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
    float_acc = float((ref.argmax(1) == y_test).mean())
    assert float_acc > 0.9, "training failed; the test would prove nothing"

    # integer: compile, every backend bit-exact on the whole test split
    design = nnforge.compile(path, calibration=cal, bits=8)
    assert [layer["op"] for layer in design.layers()].count("Dense") == 3
    assert bool(design.qgraph.meta.get("output_softmax")) == softmax
    result = design.verify(x, y_test, backends=["golden", "c"])
    assert result.samples == len(x) == 360
    assert result.float_accuracy == pytest.approx(float_acc)
    for name in ("golden", "c"):
        b = result.backends[name]
        assert b.samples == 360 and b.mismatches == 0, f"{name}: {b.mismatches} mismatches"
    golden_acc = result.backends["golden"].accuracy
    assert golden_acc >= float_acc - 0.015, f"8-bit accuracy {golden_acc:.4f} vs float {float_acc:.4f}"
    assert float((design.predict(x).argmax(1) == y_test).mean()) == golden_acc

    hls = design.verify(x, y_test, backends=["hls"]).backends["hls"]
    assert hls.samples == 360 and hls.mismatches == 0, f"hls: {hls.mismatches} mismatches"


@pytest.mark.slow
def test_torch_export_verilog_bit_exact(tmp_path, digits, trained):
    """The dynamo-exported MLP with an image input through Verilator: the whole test split."""
    x_train, x_test, _, y_test = digits
    shape, _ = KINDS["image_logits"]
    path = tmp_path / "model.onnx"
    export(trained["image_logits"], shape, path, dynamo=True)
    design = nnforge.compile(path, calibration=x_train[:500].reshape(-1, *shape), bits=8)
    result = design.verify(x_test.reshape(-1, *shape), y_test, backends=["golden", "verilog"])
    v = result.backends["verilog"]
    assert v.samples == 360 and v.mismatches == 0
    assert v.accuracy >= result.float_accuracy - 0.015
    assert v.cycles_per_inference > 0
