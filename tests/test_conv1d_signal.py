"""A 1-D convolutional model on a synthetic signal task, exported from PyTorch: golden, C,
HLS C++ and Verilog bit-exact on the whole test set, 8-bit accuracy within 2 points of
float."""

import numpy as np
import pytest
import torch
from torch import nn

import nnforge
from conftest import train_classifier

LENGTH, CLASSES = 64, 4


def signals(n, rng):
    """Class k: a tone of frequency 2 + 3k cycles per window, random phase and amplitude,
    plus noise and a random offset."""
    y = rng.integers(0, CLASSES, n)
    t = np.arange(LENGTH) / LENGTH
    phase = rng.uniform(0, 2 * np.pi, n)[:, None]
    amp = rng.uniform(0.5, 1.5, n)[:, None]
    x = amp * np.sin(2 * np.pi * (2 + 3 * y)[:, None] * t + phase)
    x += rng.normal(0, 1.2, x.shape) + rng.uniform(-0.5, 0.5, (n, 1))
    return x[:, None, :].astype(np.float32), y


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    rng = np.random.default_rng(0)
    x_train, y_train = signals(1200, rng)
    x_test, y_test = signals(400, rng)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: more threads only spin on a busy machine
    try:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv1d(1, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(8, 8, 5, padding=4, dilation=2, groups=8), nn.ReLU(),
            nn.Conv1d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, CLASSES))
        xt = torch.from_numpy(x_train)
        train_classifier(model, xt, torch.from_numpy(y_train), steps=25, lr=1e-2, batch=100)
        path = tmp_path_factory.mktemp("conv1d") / "model.onnx"
        torch.onnx.export(model, (xt[:1],), str(path), dynamic_shapes={"input": {0: torch.export.Dim("batch")}},
                          input_names=["signal"], external_data=False)
    finally:
        torch.set_num_threads(threads)
    return path, x_train[:400], x_test, y_test


def test_conv1d_signal_model_bit_exact_in_c(exported, tmp_path):
    path, cal, x, y = exported
    design = nnforge.compile(path, calibration=cal, bits=8)
    assert any(r["op"] == "Conv" for r in design.layers())
    assert design.input_shape == (1, LENGTH)
    result = design.verify(x, y, backends=["golden", "c", "hls"])
    assert result.float_accuracy > 0.8, "training failed; the test would prove nothing"
    for name in ("golden", "c", "hls"):
        b = result.backends[name]
        assert b.samples == len(x) and b.mismatches == 0
        assert b.accuracy >= result.float_accuracy - 0.02


@pytest.mark.slow
def test_conv1d_signal_model_bit_exact_in_verilog(exported, tmp_path):
    path, cal, x, y = exported
    design = nnforge.compile(path, calibration=cal, bits=8)
    result = design.verify(x, y, backends=["golden", "verilog"])
    v = result.backends["verilog"]
    assert v.samples == len(x) and v.mismatches == 0
    assert v.accuracy >= result.float_accuracy - 0.02
