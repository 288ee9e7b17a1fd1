"""Verilog backend: generated RTL == golden integers, lint-clean, synthesizable, timed as
reported. Models are built directly as HwModels (random weights, accumulator width from
the quantizer's bound) and, end to end, from the bundled digits MLP through the real
quantizer. Tests that need Verilator or Yosys are marked ``slow``; CI runs them too.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nnforge.codegen import rtl, verilog
from nnforge.codegen.lower import BackendError, DenseLayer, HwModel
from nnforge.ir import FixedType
from nnforge.ir.fixed import round_shift, signed_width_for
from nnforge.sim import verilog as sim_verilog
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import ToolError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ----------------------------------------------------------------------------- models

def _acc_width(w: np.ndarray, b: np.ndarray, x_t: FixedType) -> int:
    """The quantizer's bound: max_n(|b[n]| + sum_k |W[n,k]| * max(|x.lo|, |x.hi|))."""
    x_mag = max(abs(x_t.lo), abs(x_t.hi))
    bound = int(np.max(np.abs(b) + np.abs(w).sum(axis=1) * x_mag)) if w.size else 0
    return signed_width_for(-bound, bound)


def _layer(rng, name, n_in, n_out, in_t, w_bits, out_t, *, relu=False, shift=None,
           zero_weights=False, w_signed=True) -> DenseLayer:
    w_t = FixedType(w_bits, 0, w_signed)
    w = np.zeros((n_out, n_in), np.int64) if zero_weights else rng.integers(w_t.lo, w_t.hi + 1, (n_out, n_in))
    x_mag = max(abs(in_t.lo), abs(in_t.hi))
    typical = max(1, int(np.sqrt(n_in)) * x_mag * max(1, (w_t.hi - w_t.lo) // 2))
    b = rng.integers(-typical, typical + 1, n_out)
    aw = _acc_width(w, b, in_t)
    if shift is None:  # put the typical accumulator near the top of the output range
        shift = max(typical.bit_length() - out_t.width + 2, -3)
    lo = max(out_t.lo, 0) if relu else out_t.lo
    return DenseLayer(name=name, n_in=n_in, n_out=n_out, in_t=in_t, w_t=w_t, out_t=out_t,
                      weights=w.astype(np.int64), bias=b.astype(np.int64), acc_width=aw,
                      shift=shift, lo=lo, hi=out_t.hi, relu=relu)


def _model(name, layers) -> HwModel:
    first, last = layers[0], layers[-1]
    return HwModel(name=name, in_t=first.in_t, out_t=last.out_t, n_in=first.n_in, n_out=last.n_out,
                   input_shape=(first.n_in,), output_shape=(last.n_out,), layers=tuple(layers))


def golden(hw: HwModel, x: np.ndarray) -> np.ndarray:
    """The DenseLayer formula restated in numpy with the one rounding rule of ir/fixed.py."""
    y = np.asarray(x, np.int64)
    for ly in hw.layers:
        acc = y @ ly.weights.T + ly.bias
        assert np.abs(acc).max() < (1 << (ly.acc_width - 1)), "test model breaks its acc bound"
        y = np.clip(round_shift(acc, ly.shift), ly.lo, ly.hi)
    return y


def _inputs(rng, hw: HwModel, n: int) -> np.ndarray:
    x = rng.integers(hw.in_t.lo, hw.in_t.hi + 1, (n, hw.n_in))
    x[0] = hw.in_t.hi  # the extremes too
    if n > 1:
        x[1] = hw.in_t.lo
    return x


def mlp(seed=1) -> HwModel:
    """A small signed MLP: s8 -> 12 -> 6 (relu, u8) -> 4 (s8)."""
    rng = np.random.default_rng(seed)
    s8, u8 = FixedType(8, 4, True), FixedType(8, 3, False)
    return _model("mlp", [
        _layer(rng, "fc0", 12, 6, s8, 8, u8, relu=True),
        _layer(rng, "fc1", 6, 4, u8, 8, s8),
    ])


def odd(seed=2) -> HwModel:
    """Odd sizes and widths: 2-bit unsigned input, 7 -> 13 (2-bit weights, 16-bit
    output, negative shift) -> 1 (16-bit weights, relu) -> 5 (2-bit signed output)
    -> 3 (16-bit output, shift 0)."""
    rng = np.random.default_rng(seed)
    u2, s16, u8, s2 = FixedType(2, 1, False), FixedType(16, 8), FixedType(8, 2, False), FixedType(2, 0)
    return _model("odd", [
        _layer(rng, "a", 7, 13, u2, 2, s16, shift=-2),
        _layer(rng, "b", 13, 1, s16, 16, u8, relu=True),
        _layer(rng, "c", 1, 5, u8, 8, s2),
        _layer(rng, "d", 5, 3, s2, 16, s16, shift=0),
    ])


def zero_single(seed=3) -> HwModel:
    """One layer whose weights are all zero (bias only; a 2..few-bit accumulator)."""
    rng = np.random.default_rng(seed)
    s16 = FixedType(16, 8)
    ly = _layer(rng, "only", 5, 2, s16, 16, FixedType(4, 0), zero_weights=True, shift=1)
    ly = replace(ly, bias=np.array([3, -5], np.int64))
    ly = replace(ly, acc_width=_acc_width(ly.weights, ly.bias, ly.in_t))
    return _model("zero", [ly])


MODELS = {"mlp": mlp, "odd": odd, "zero": zero_single}


@pytest.fixture(scope="module")
def build_base(tmp_path_factory) -> Path:
    """One build directory for the whole module: Verilator's runtime compiles once."""
    return tmp_path_factory.mktemp("verilog_build")


def _simulate(hw, src, base, x, **kw):
    return sim_verilog.run(hw, src, base, x, QUIET, **kw)


# ----------------------------------------------------------------------------- fast

def test_choose_parallelism_modes():
    hw = mlp()
    assert verilog.choose_parallelism(hw, "sequential") == [(1, 1), (1, 1)]
    assert verilog.choose_parallelism(hw, "parallel") == [(6, 12), (4, 6)]
    for mode in ("sequential", "balanced", "parallel"):
        for name, make in MODELS.items():
            m = make()
            for ly, (pe, simd) in zip(m.layers, verilog.choose_parallelism(m, mode)):
                assert ly.n_out % pe == 0 and ly.n_in % simd == 0, (name, mode)
    with pytest.raises(ValueError, match="unknown parallelism"):
        verilog.choose_parallelism(hw, "fastest")


def test_balanced_digits_choice():
    hw = _digits()[0]
    par = verilog.choose_parallelism(hw, "balanced")
    assert sum(pe * simd for pe, simd in par) < hw.macs // 10
    # compute never slower than streaming the 64-element input vector, with the fewest
    # multipliers that achieve it
    for ly, (pe, simd) in zip(hw.layers, par):
        assert (ly.n_out // pe) * max(ly.n_in // simd, pe) <= 64
        fewer = [(p, s) for p in range(1, ly.n_out + 1) for s in range(1, ly.n_in + 1)
                 if ly.n_out % p == 0 and ly.n_in % s == 0 and p * s < pe * simd]
        assert all((ly.n_out // p) * max(ly.n_in // s, p) > 64 for p, s in fewer), ly.name


def test_write_files_info_and_timing(tmp_path):
    hw = odd()
    info = verilog.write(hw, tmp_path, "balanced")
    assert json.loads((tmp_path / "verilog_info.json").read_text()) == info
    for f in info["files"]:
        assert (tmp_path / f).exists(), f
    assert info["top"] == "nnforge_top"
    assert info["totals"]["ii_cycles"] == max(ly["ii_cycles"] for ly in info["layers"])
    for ly, hl in zip(info["layers"], hw.layers):
        s, g = hl.n_in // ly["simd"], hl.n_out // ly["pe"]
        narrow = min(hl.in_t.width, hl.w_t.width) <= rtl.NARROW_BITS  # products in LUTs
        lanes = ly["pe"] * ly["simd"]
        if lanes == hl.n_in * hl.n_out:  # unrolled: a constant weight 0 or +-2^k needs no product
            a = np.abs(np.asarray(hl.weights, dtype=np.int64))
            lanes = int(np.count_nonzero((a != 0) & ((a & (a - 1)) != 0)))
        assert (ly["multipliers"], ly["lut_multipliers"]) == ((0, lanes) if narrow else (lanes, 0))
        assert ly["ii_cycles"] == max(hl.n_in, g * max(s, ly["pe"]), hl.n_out)
    readme = (tmp_path / "README.txt").read_text()
    assert "out_last" in readme and str(info["totals"]["ii_cycles"]) in readme
    top = (tmp_path / "nnforge_top.v").read_text()
    assert "module nnforge_top" in top and "logic" not in top and "always_ff" not in top
    # an explicit (PE, SIMD) list is checked
    with pytest.raises(ValueError):
        verilog.write(hw, tmp_path, [(14, 7), (1, 13), (5, 1), (3, 5)])  # 14 neurons at once of 13


def test_refuses_too_narrow_accumulator(tmp_path):
    hw = mlp()
    ly = hw.layers[0]
    bad = replace(hw, layers=(replace(ly, acc_width=ly.acc_width - 1),) + hw.layers[1:])
    with pytest.raises(BackendError, match="acc_width"):
        verilog.write(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written


def test_model_names_stay_out_of_comments(tmp_path):
    hw = mlp()
    hw = replace(hw, name="evil_name", layers=tuple(
        replace(ly, name=f"x{i}") for i, ly in enumerate(hw.layers)))
    verilog.write(hw, tmp_path)
    for f in tmp_path.glob("*.v"):
        text = f.read_text()
        assert "*/" not in text.replace("/* verilator", "")  # no block comments to escape from
        for line in text.splitlines():
            assert "evil_name" not in line


# ----------------------------------------------------------------------------- slow: tools

@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "balanced", "parallel"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_lint_clean(tmp_path, name, mode):
    verilog.write(MODELS[name](), tmp_path, mode)
    sim_verilog.lint(tmp_path)  # raises on any warning


@pytest.mark.slow
def test_lint_reports_warnings(tmp_path):
    verilog.write(mlp(), tmp_path)
    top = tmp_path / "nnforge_top.v"
    top.write_text(top.read_text().replace("endmodule", "    wire dangling_wire;\nendmodule"))
    with pytest.raises(ToolError, match="UNUSED|UNDRIVEN"):
        sim_verilog.lint(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name,mode", [("mlp", "balanced"), ("odd", "sequential"), ("zero", "parallel")])
def test_yosys_accepts(tmp_path, name, mode):
    hw = MODELS[name]()
    info = verilog.write(hw, tmp_path, mode)
    rep = sim_verilog.synth_check(tmp_path)
    assert rep["cells"] > 0 and rep["flipflops"] > 0
    if name != "zero":  # all-zero weights may be optimised away
        assert rep["multipliers"] == info["totals"]["multipliers"]


# ----------------------------------------------------------------------------- slow: simulation

def _check_run(hw, info, run, x):
    assert run.y.shape == (x.shape[0], hw.n_out) and run.y.dtype == np.int64
    exp = golden(hw, x)
    mism = np.argwhere(run.y != exp)
    assert mism.size == 0, f"{len(mism)} mismatches, first at {mism[0]}: {run.y[tuple(mism[0])]} != {exp[tuple(mism[0])]}"
    assert run.extra["out_last_ok"]
    # measured timing is exactly the analytic one
    assert run.cycles_per_inference == info["totals"]["ii_cycles"]
    assert run.latency_cycles == info["totals"]["latency_cycles"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "balanced", "parallel"])
@pytest.mark.parametrize("name", ["mlp", "odd"])
def test_sim_matches_golden(tmp_path, build_base, name, mode):
    hw = MODELS[name]()
    info = verilog.write(hw, tmp_path, mode)
    x = _inputs(np.random.default_rng(7), hw, 24)
    run = _simulate(hw, tmp_path, build_base, x, expected=golden(hw, x))
    assert run.extra["mismatches"] == 0
    _check_run(hw, info, run, x)


@pytest.mark.slow
@pytest.mark.parametrize("name,mode", [("mlp", "parallel"), ("odd", "balanced"), ("mlp", "sequential")])
def test_sim_exact_under_backpressure(tmp_path, build_base, name, mode):
    """Random gaps in in_valid and drops of out_ready change timing, never results."""
    hw = MODELS[name]()
    verilog.write(hw, tmp_path, mode)  # same text as in test_sim_matches_golden: build reused
    x = _inputs(np.random.default_rng(11), hw, 16)
    run = _simulate(hw, tmp_path, build_base, x, backpressure=0.4, seed=5)
    assert np.array_equal(run.y, golden(hw, x))
    assert run.extra["out_last_ok"]


@pytest.mark.slow
@pytest.mark.parametrize("name,par,backpressure", [
    ("odd", [(2, 3), (1, 5), (2, 1), (2, 2)], 0.0),  # a last group of 1 neuron, last steps of 1 and 3 inputs
    ("mlp", [(4, 5), (3, 4)], 0.3),
])
def test_sim_remainders(tmp_path, build_base, name, par, backpressure):
    """PE and SIMD that do not divide the layer: a shorter last group and last step,
    exact, and (no backpressure) the analytic latency and period are the measured ones."""
    hw = MODELS[name]()
    info = verilog.write(hw, tmp_path, par)
    assert [(ly["pe"], ly["simd"]) for ly in info["layers"]] == par
    x = _inputs(np.random.default_rng(12), hw, 16)
    run = _simulate(hw, tmp_path, build_base, x, expected=golden(hw, x), backpressure=backpressure, seed=3)
    assert run.extra["mismatches"] == 0 and np.array_equal(run.y, golden(hw, x))
    if not backpressure:
        _check_run(hw, info, run, x)


@pytest.mark.slow
def test_sim_zero_weights_single_layer_and_custom_parallelism(tmp_path, build_base):
    hw = zero_single()
    info = verilog.write(hw, tmp_path / "a", [(2, 1)])  # PE > steps: the output register stalls
    x = _inputs(np.random.default_rng(8), hw, 6)
    run = _simulate(hw, tmp_path / "a", build_base, x)
    _check_run(hw, info, run, x)
    assert (run.y == golden(hw, x)[0]).all()  # bias only: every vector the same


@pytest.mark.slow
def test_corrupted_rom_weight_is_detected(tmp_path, build_base):
    hw = mlp()
    verilog.write(hw, tmp_path, "balanced")
    # flip the top bit of weight w[0][1] in the generated ROM text (word 0 of layer fc0)
    f = tmp_path / "nnforge_layer_fc0.v"
    text = f.read_text()
    m = re.search(r"wrom\[0\] = (\d+)'h([0-9a-f]+);", text)
    width, word = int(m.group(1)), int(m.group(2), 16)
    ww, simd = hw.layers[0].w_t.width, verilog.choose_parallelism(hw, "balanced")[0][1]
    bit = 1 * ww + ww - 1  # p=0, j=1, sign bit
    assert simd > 1
    new = word ^ (1 << bit)
    f.write_text(text.replace(m.group(0), f"wrom[0] = {width}'h{new:0{(width + 3) // 4}x};"))
    x = _inputs(np.random.default_rng(9), hw, 12)
    run = _simulate(hw, tmp_path, build_base, x, expected=golden(hw, x))
    assert run.extra["mismatches"] > 0
    # and it is exactly the corrupted model's answer
    w = hw.layers[0].weights.copy()
    w[0, 1] = w[0, 1] + (1 << (ww - 1)) if w[0, 1] < 0 else w[0, 1] - (1 << (ww - 1))
    bad = replace(hw, layers=(replace(hw.layers[0], weights=w),) + hw.layers[1:])  # golden checks no overflow
    assert np.array_equal(run.y, golden(bad, x))


@pytest.mark.slow
def test_hung_design_and_broken_build_raise(tmp_path, build_base):
    hw = zero_single()
    verilog.write(hw, tmp_path / "hang")
    top = tmp_path / "hang" / "nnforge_top.v"
    top.write_text(top.read_text().replace("assign out_valid = s1_valid;", "assign out_valid = 1'b0;"))
    x = _inputs(np.random.default_rng(1), hw, 3)
    with pytest.raises(ToolError, match="hung"):
        _simulate(hw, tmp_path / "hang", build_base, x)
    verilog.write(hw, tmp_path / "broken")
    top = tmp_path / "broken" / "nnforge_top.v"
    top.write_text(top.read_text().replace("endmodule", "oops\nendmodule"))
    with pytest.raises(ToolError, match="build failed"):
        _simulate(hw, tmp_path / "broken", build_base, x)


@pytest.mark.slow
def test_reuses_unchanged_build(tmp_path, build_base):
    hw = mlp()
    verilog.write(hw, tmp_path, "balanced")
    x = _inputs(np.random.default_rng(3), hw, 4)
    first = _simulate(hw, tmp_path, build_base, x)
    verilog.write(hw, tmp_path, "balanced")  # same text again
    second = _simulate(hw, tmp_path, build_base, x)
    assert second.extra["build_reused"] and second.extra["build_seconds"] == 0.0
    assert np.array_equal(first.y, second.y)


# ----------------------------------------------------------------------------- digits MLP

def _digits():
    from nnforge.frontend import import_onnx
    from nnforge.ir import quantize_float, run_int
    from nnforge.passes import QuantConfig, calibrate_minmax, quantize, run_float_pipeline
    from nnforge.codegen.lower import lower

    ex = EXAMPLES / "digits_mlp"
    f = run_float_pipeline(import_onnx(str(ex / "model.onnx")))
    q = quantize(f, calibrate_minmax(f, np.load(ex / "calibration.npz")["x"]), QuantConfig())
    d = np.load(ex / "test.npz")
    xi = quantize_float(d["x"], q.qtype(q.inputs[0]))
    return lower(q), xi, run_int(q, xi)[0], d["y"]


@pytest.mark.slow
def test_digits_mlp_bit_exact(tmp_path, build_base):
    hw, xi, yi, labels = _digits()
    assert hw.n_in == 64 and hw.n_out == 10 and len(hw.layers) == 3
    info = verilog.write(hw, tmp_path, "balanced")
    n = 48
    run = _simulate(hw, tmp_path, build_base, xi[:n], expected=yi[:n])
    assert run.extra["mismatches"] == 0
    assert np.array_equal(run.y, yi[:n])
    assert run.cycles_per_inference == info["totals"]["ii_cycles"] == 64
    assert run.latency_cycles == info["totals"]["latency_cycles"]
    assert (run.y.argmax(1) == labels[:n]).mean() > 0.9
