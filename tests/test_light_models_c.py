"""The ONNX package's light_* real models (224x224 ImageNet CNNs) through the C backend:
compiled at 8 bits on the runner input, C written, built with gcc, run, and every output
integer equal to the golden model's (scripts/onnx_conformance.py --c does the same for
any model and prints the time of every step).

What runs here is what CI can afford (this file: about 55 s alone on 2 cores, 73 s with
another job beside it). Measured with the script on that machine (seconds for compile /
golden / write C / gcc / run the C on one input):

    shufflenet    0.2 / 0.2 /  0.5 /  2.0 / 0.1   C   5.9 MB   0.12 GMAC   here
    inception_v2  3.4 / 2.1 /  6.7 / 30.3 / 2.0   C  63.7 MB   2.02 GMAC   here
    densenet121   2.9 / 2.0 /  5.7 / 52.5 / 5.1   C 100.9 MB   2.83 GMAC   script only
    resnet50      1.6 / 0.6 /  9.7 / 40.0 / 4.2   C 108.1 MB   4.09 GMAC   script only
    vgg19        13.4 / 1.3 / 82.8 / 227 / 27.7   C 579.8 MB  19.63 GMAC   script only
    squeezenet    0.2 / 0.1 /  0.3 /  1.8 / 0.4   C   5.3 MB   0.35 GMAC   here
    alexnet, zfnet512, inception_v1: refused (LRN has no integer implementation)

All of them pass (C == golden in every integer) except the refused ones. Most of the cost
of the big ones is gcc parsing the weight initialisers; densenet121's C is mostly its
per-channel Add constants, which the C backend stores broadcast to the whole tensor.
"""

import importlib.util
import sys

import numpy as np
import pytest

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("onnx_conformance", ROOT / "scripts" / "onnx_conformance.py")
conformance = importlib.util.module_from_spec(_spec)
sys.modules["onnx_conformance"] = conformance  # dataclasses look their module up there
_spec.loader.exec_module(conformance)

LRN_MODELS = ["bvlc_alexnet", "inception_v1", "zfnet512"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shufflenet", "squeezenet", "inception_v2"])
def test_light_model_c_equals_golden(tmp_path, name):
    r = conformance.check_light_c(name, tmp_path / name)
    assert r.status == "passed", r.reason
    assert r.c_bytes > 0 and set(r.seconds) >= {"golden", "write_c", "gcc", "run_c"}


@pytest.mark.slow
@pytest.mark.parametrize("name", LRN_MODELS)
def test_lrn_models_are_refused_with_reason(tmp_path, name):
    r = conformance.check_light_c(name, tmp_path / name)
    assert r.status == "refused"
    assert "LRN" in r.reason and "integer" in r.reason
    assert not (tmp_path / name).exists()  # refused before anything is written


def test_every_light_model_is_covered():
    """Each light model the onnx package ships is either checked above, refused for LRN, or
    named here as checked by the script only (so a new model does not slip by)."""
    script_only = {"densenet121", "resnet50", "vgg19"}
    checked = {"shufflenet", "inception_v2", "squeezenet"}
    assert set(conformance.light_names()) == checked | set(LRN_MODELS) | script_only


# ---- the golden model's fast exact path (float64 BLAS where exact) ---------------------

def test_exact_dtype_switches_to_int64_beyond_2_53():
    from nnforge.ir.ops.dense import exact_dtype

    x, w = np.array([-128, 127]), np.array([-128, 5])
    assert exact_dtype(x, w, 4608) == np.float64
    big = np.array([-(2**31), 2**31 - 1])
    assert exact_dtype(big, big, 4) == np.int64  # 4 * 2**62 > 2**53
    assert exact_dtype(big, np.array([0]), 10**6) == np.float64


@pytest.mark.parametrize("bits", [8, 29])
def test_int_conv_and_dense_are_exact_on_both_paths(bits, monkeypatch):
    """Conv and Dense integer references equal a plain int64 computation, on 8-bit values
    (float64 path) and on 29-bit values whose products pass 2**53 (int64 path)."""
    from types import SimpleNamespace

    from nnforge.ir.ops import conv, dense

    rng = np.random.default_rng(bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    x = rng.integers(lo, hi, size=(2, 6, 7, 5))
    w = rng.integers(lo, hi, size=(4, 3, 3, 2))
    b = rng.integers(lo, hi, size=4)
    assert dense.exact_dtype(x, w, 18) == (np.float64 if bits == 8 else np.int64)
    attrs = {"groups": 2, "pads": (1, 0, 1, 1), "strides": (2, 1)}
    got = conv._conv(attrs, x, w, b, np.int64)
    assert got.dtype == np.int64
    # reference: explicit int64 sums of products (Python ints, no overflow at these sizes)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 1))).astype(object)
    want = np.zeros(got.shape, dtype=object)
    for m in range(4):
        g = m // 2
        for i in range(got.shape[2]):
            for j in range(got.shape[3]):
                win = xp[:, 3 * g:3 * g + 3, 2 * i:2 * i + 3, j:j + 2]
                want[:, m, i, j] = (win * w[m].astype(object)).sum(axis=(1, 2, 3)) + int(b[m])
    assert np.array_equal(got.astype(object), want)

    xd, wd = x.reshape(2, -1)[:, :18], w.reshape(4, -1)
    node = SimpleNamespace(inputs=["x", "w", "b"], outputs=["y"], attrs={})
    captured = {}
    monkeypatch.setattr(dense, "linear_output", lambda n, g, acc, axis: captured.setdefault("acc", acc))
    dense.int_ref(node, None, [xd, wd, b])
    want_d = xd.astype(object) @ wd.T.astype(object) + b.astype(object)
    assert captured["acc"].dtype == np.int64 and np.array_equal(captured["acc"].astype(object), want_d)
