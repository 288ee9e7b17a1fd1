"""Bias correction: each Dense / Conv bias absorbs the mean error its quantized weights
make on the calibration data's mean input."""

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.frontend import import_onnx
from nnforge.ir import dequantize, quantize_float, run_float, run_int
from nnforge.passes import QuantConfig, calibrate, quantize, run_float_pipeline
from nnforge.passes.calibrate import channel_means


def _setup(name):
    ex = ROOT / "examples" / name
    f = run_float_pipeline(import_onnx(ex / "model.onnx"))
    cal = np.load(ex / "calibration.npz")["x"]
    return f, cal, np.load(ex / "test.npz")


def _gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u): a sum of k + 1 float64 terms, in any order, is within
    gamma_k * sum|x| of the exact sum (u the unit roundoff, eps / 2)."""
    u = np.finfo(np.float64).eps / 2
    return k * u / (1 - k * u)


def test_channel_means(digits_data):
    """channel_means, accumulated over batches of 33 (which do not divide the 500 samples),
    is the float64 mean over all samples of the same activations, to within the rounding of
    float64 sums. The activations come from run_float on the same batches: float32 matrix
    products depend on the batch size (BLAS blocks them differently; the digits CNN's logits
    move by up to 2.9e-6 between a batch of 33 and one of 500), which is not channel_means'
    doing. Per channel both sides add the same n float64 values in different orders and divide
    (channel_means per sample, then per batch), so each is within gamma_(n+1) * sum|x| of the
    exact mean times n: they differ by at most gamma_(2n+2) * mean|x|."""
    f, cal, _ = _setup("digits_cnn")
    batch = 33
    m = channel_means(f, cal, batch=batch)
    runs = [run_float(f, cal[s:s + batch], keep=True) for s in range(0, len(cal), batch)]
    for t, first in runs[0].items():
        if t in f.consts:
            continue
        v = np.concatenate([np.asarray(r[t], np.float64) for r in runs]).reshape(len(cal), first.shape[1], -1)
        n = v.shape[0] * v.shape[2]
        bound = _gamma(2 * n + 2) * np.abs(v).mean(axis=(0, 2))
        err = np.abs(m[t] - v.mean(axis=(0, 2)))
        assert np.all(err <= bound), (t, float(err.max()), float(bound.min()))


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_mean_output_error_shrinks(name):
    """On the calibration data, the mean error of the first layer's output (before any
    later rounding adds its own) is smaller with the correction."""
    f, cal, _ = _setup(name)
    r = calibrate(f, cal, 8)
    means = channel_means(f, cal)
    first = next(n for n in f.topo() if n.op in ("Dense", "Conv"))
    ref = run_float(f, cal, keep=True)[first.outputs[0]]
    err = {}
    for bc in (False, True):
        q = quantize(f, r, QuantConfig(weight_bits=3, bias_correction=bc), means)
        out = run_int(q, quantize_float(cal, q.qtype(q.inputs[0])), keep=True)[first.outputs[0]]
        d = dequantize(out, q.qtype(first.outputs[0])) - ref
        err[bc] = float(np.abs(d.reshape(len(cal), d.shape[1], -1).mean(axis=(0, 2))).mean())
    assert err[True] < err[False], err


def test_accuracy_at_4_bit_weights_and_default():
    """Measured: the digits CNN at 4-bit weights goes from about 64% to about 86%."""
    ex = ROOT / "examples" / "digits_cnn"
    cal, test = np.load(ex / "calibration.npz")["x"], np.load(ex / "test.npz")
    acc = {}
    for bc in (False, True, None):
        d = nnforge.compile(ex / "model.onnx", calibration=cal, weight_bits=4, bias_correction=bc)
        acc[bc] = float((d.predict(test["x"]).reshape(len(test["x"]), -1).argmax(1) == test["y"]).mean())
        assert d.config.bias_correction == (bc is not False)  # auto: on below 8 bits
    assert acc[True] >= acc[False] + 0.15 and acc[None] == acc[True], acc
    assert not nnforge.compile(ex / "model.onnx", calibration=cal).config.bias_correction  # 8 bits: off


def test_needs_means():
    f, cal, _ = _setup("digits_mlp")
    with pytest.raises(nnforge.passes.QuantizeError, match="means"):
        quantize(f, calibrate(f, cal, 8), QuantConfig(bias_correction=True))
