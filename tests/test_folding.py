"""Folding of the Verilog engines (codegen/folding.py, PE x SIMD lanes in the window engines):
the goals (balanced, a target frame rate, a multiplier budget) give designs that meet them,
measured in Verilator; the estimated cycles per inference hold for every bundled example at
three folding settings; the balanced designs use their multipliers efficiently."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

import nnforge
from nnforge.codegen.engines import Timing, WindowEngine
from nnforge.codegen.folding import LUT_LANES, Fold, Geometry, choose, compute_cycles, options
from nnforge.codegen.lower import BackendError
from nnforge.design import folding_goal
from nnforge.sim.fpga import FIT_SHARE

EXAMPLES = Path(nnforge.__file__).resolve().parent / "examples"
_DESIGNS: dict = {}


def _design(name):
    if name not in _DESIGNS:
        ex = EXAMPLES / name
        _DESIGNS[name] = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    return _DESIGNS[name]


def _test_split(name, n=None):
    t = np.load(EXAMPLES / name / "test.npz")
    return (t["x"], t["y"]) if n is None else (t["x"][:n], t["y"][:n])


def _geometry(c=8, cg=8, m=16, mg=16, k=3, o=4, hw=4):
    return Geometry(c=c, h=hw, w=hw, kh=k, kw=k, oh=o, ow=o, m=m, cg=cg, mg=mg)


def _engine():
    """A MAC engine "a": 128 input, 256 output elements."""
    g = _geometry()
    return WindowEngine("line.v.j2", ("in",), g.n_in, g.n_out, Timing(0, 0, 0), kind="mac", geometry=g, name="a")


# ----------------------------------------------------------------------------- fast checks

def test_options_and_cycles():
    g = _geometry()
    opts = options(g)
    assert Fold(1, 1) in opts and Fold(16, 8) in opts and Fold(3, 1) not in opts
    # (m / PE) * pixels * max(taps, PE), taps = cg / SIMD * kh * kw
    assert compute_cycles(g, Fold(1, 1)) == 16 * 16 * 72
    assert compute_cycles(g, Fold(4, 8)) == 4 * 16 * 9
    assert compute_cycles(g, Fold(16, 8)) == 1 * 16 * 16  # more lanes than taps: the output stream limits
    dw = _geometry(cg=1, mg=1, m=8)
    assert Fold(8, 8, True) in options(dw)
    assert Fold(8, 8, True).multipliers == 8 and compute_cycles(dw, Fold(8, 8, True)) == 16 * 9


def test_target_is_met_with_the_fewest_multipliers():
    eng = [_engine()]
    g = eng[0].geometry
    for period in (300, 600, 1200, 5000, 20000):
        f = choose(eng, {"target_cycles": period})[0]["a"]
        assert max(g.n_in, compute_cycles(g, f)) + 3 <= period
        assert not any(max(g.n_in, compute_cycles(g, h)) + 3 <= period and h.multipliers < f.multipliers
                       for h in options(g))
    with pytest.raises(BackendError, match="out of reach"):
        choose(eng, {"target_cycles": 100})  # faster than the 128-element input stream


def test_goals():
    assert folding_goal("balanced") == "balanced"
    assert folding_goal("balanced", target_fps=50_000, clock_mhz=100) == {"target_cycles": 2000}
    assert folding_goal("sequential", max_multipliers=12) == {"max_multipliers": 12}
    with pytest.raises(ValueError):
        folding_goal("fast")
    with pytest.raises(ValueError):
        folding_goal("balanced", target_fps=10, max_multipliers=3)
    eng = [_engine()]
    folds, d = choose(eng, {"target_cycles": 1200})
    assert d["period_cycles"] == 1200 and max(128, compute_cycles(eng[0].geometry, folds["a"])) + 3 <= 1200
    with pytest.raises(BackendError, match="out of reach"):
        choose(eng, {"target_cycles": 200})  # the 256 outputs alone take longer
    folds, _ = choose(eng, {"max_multipliers": 5})
    assert folds["a"].multipliers <= 5
    # no multiplier block at all: the engine's one product moves into LUTs
    folds, _ = choose(eng, {"max_multipliers": 0})
    assert folds["a"].lut and folds["a"].multipliers <= LUT_LANES
    # a per-channel multiply needs a block whatever the products
    rq = [dataclasses.replace(eng[0], rq_multipliers=1)]
    with pytest.raises(BackendError, match="no folding fits"):
        choose(rq, {"max_multipliers": 0})
    budget = folding_goal("balanced", max_multipliers=4, max_luts=900, max_bram=2)
    assert budget == {"max_multipliers": 4, "max_luts": 900, "max_bram": 2}
    with pytest.raises(ValueError):
        folding_goal("balanced", target_fps=10, max_luts=3)
    with pytest.raises(ValueError):
        folding_goal("balanced", max_luts=0)


def test_resource_budget_search():
    """A LUT / flip-flop / block RAM budget takes the shortest period whose design's
    estimate fits, checked by bisection over the periods; the answer always fits."""
    eng = [_engine()]
    calls = []

    def estimate(folds):  # LUTs grow with the multipliers
        calls.append(folds["a"].multipliers)
        return {"dsp": folds["a"].multipliers, "luts": 100 + 50 * folds["a"].multipliers, "ffs": 10, "bram": 1}

    fast, _ = choose(eng, "balanced")
    for limit in (100 + 50 * 3, 100 + 50 * 7, 10_000):
        calls.clear()
        folds, d = choose(eng, {"max_luts": limit}, estimate)
        m = folds["a"].multipliers
        assert 100 + 50 * m <= limit and d["estimate"] == {"luts": 100 + 50 * m}
        # the fastest that fits: any shorter period needs more than the limit
        shorter = [o for o in options(eng[0].geometry)
                   if max(eng[0].n_in, compute_cycles(eng[0].geometry, o)) + 3 < d["period_cycles"]]
        assert all(100 + 50 * o.multipliers > limit for o in shorter)
        periods = len({max(eng[0].n_in, compute_cycles(eng[0].geometry, o)) for o in options(eng[0].geometry)})
        # galloping then bisection (each period tried with any folding, then by channel):
        # logarithmic, not a scan of every period
        assert len(calls) <= 4 * math.ceil(math.log2(periods + 1)) < periods, (len(calls), periods)
    assert choose(eng, {"max_luts": 10_000}, estimate)[0] == fast  # no limit: the balanced folding
    with pytest.raises(BackendError, match="no folding fits the budget: the slowest design needs about 150 LUT4s"):
        choose(eng, {"max_luts": 149}, estimate)
    with pytest.raises(BackendError, match="block RAMs"):
        choose(eng, {"max_bram": 0, "max_luts": 10_000}, estimate)
    with pytest.raises(ValueError, match="resource estimate"):
        choose(eng, {"max_luts": 500})  # no estimate to check it on


# ----------------------------------------------------------------------------- measured

@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn", "digits_resnet"])
@pytest.mark.parametrize("mode", ["sequential", "balanced", {"max_multipliers": 16}],
                         ids=["sequential", "balanced", "budget16"])
def test_measured_cycles_match_the_estimate(tmp_path, name, mode):
    """Every bundled example at three folding settings (one multiplier per engine, the
    default, a budget of 16 multipliers; "parallel" is covered per backend in
    test_verilog.py / test_verilog_cnn.py): 0 mismatches, and Verilator's cycles per
    inference within 10% of the estimate."""
    d = _design(name)
    x, y = _test_split(name, 24)
    d.write(tmp_path / "o", targets=["verilog"], parallelism=mode)
    r = d.verify(x, y, backends=["golden", "verilog"], outdir=tmp_path / "o")
    assert r.ok, r
    v = r.backends["verilog"]
    est = (tmp_path / "o" / "verilog" / "verilog_info.json").read_text()
    import json

    info = json.loads(est)
    ii = info["totals"]["ii_cycles"]
    assert abs(v.cycles_per_inference - ii) <= 0.10 * ii, (v.cycles_per_inference, ii)


@pytest.mark.slow
def test_balanced_cnn_is_efficient_and_exact(tmp_path):
    """The balanced digits CNN: every multiplier busy nearly every cycle (MACs per inference
    over multipliers x measured cycles per inference >= 0.8), exact on the whole test split."""
    d = _design("digits_cnn")
    x, y = _test_split("digits_cnn")
    d.write(tmp_path / "o", targets=["verilog"])
    r = d.verify(x, y, backends=["golden", "verilog"], outdir=tmp_path / "o")
    assert r.ok, r
    import json

    info = json.loads((tmp_path / "o" / "verilog" / "verilog_info.json").read_text())
    t = info["totals"]
    measured = t["macs"] / (t["multipliers"] * r.backends["verilog"].cycles_per_inference)
    assert t["efficiency"] >= 0.8 and measured >= 0.8, (t, measured)
    assert any(ly["pe"] > 1 for ly in info["layers"])  # the one-channel first conv needs output lanes


@pytest.mark.slow
@pytest.mark.parametrize("goal", [{"target_cycles": 200}, {"max_multipliers": 20}])
def test_dense_chain_goals_are_met(tmp_path, goal):
    """The dense-chain backend (digits MLP) takes the same goals: measured cycles within the
    target, multipliers within the budget, exact."""
    import json

    d = _design("digits_mlp")
    x, y = _test_split("digits_mlp", 24)
    d.write(tmp_path / "o", targets=["verilog"], parallelism=goal)
    r = d.verify(x, y, backends=["golden", "verilog"], outdir=tmp_path / "o")
    assert r.ok, r
    info = json.loads((tmp_path / "o" / "verilog" / "verilog_info.json").read_text())
    cpi, mults = r.backends["verilog"].cycles_per_inference, info["totals"]["multipliers"]
    assert cpi <= goal.get("target_cycles", cpi) and mults <= goal.get("max_multipliers", mults)
    assert mults < 48  # fewer than the balanced design: the goal, not the default, chose them


@pytest.mark.slow
def test_target_fps_is_met(tmp_path):
    """A frame-rate target, measured: the design runs at least as fast as asked (Verilator
    cycles per inference) with fewer multipliers than balanced."""
    import json

    d = _design("digits_cnn")
    x, y = _test_split("digits_cnn", 8)
    target = folding_goal(target_fps=50_000, clock_mhz=100)["target_cycles"]  # 2,000 cycles
    d.write(tmp_path / "t", targets=["verilog"], parallelism={"target_cycles": target})
    r = d.verify(x, y, backends=["golden", "verilog"], outdir=tmp_path / "t")
    assert r.ok and r.backends["verilog"].cycles_per_inference <= target, r
    t_info = json.loads((tmp_path / "t" / "verilog" / "verilog_info.json").read_text())
    d.write(tmp_path / "b", targets=["verilog"])
    b_info = json.loads((tmp_path / "b" / "verilog" / "verilog_info.json").read_text())
    assert t_info["totals"]["multipliers"] < b_info["totals"]["multipliers"]


@pytest.mark.slow
def test_multiplier_budget_is_met(tmp_path):
    """A multiplier budget, measured: exact in Verilator, within the budget in Yosys's
    multiplier count, and faster than one multiplier per layer."""
    import json

    from nnforge.sim.verilog import synth_check

    d = _design("digits_cnn")
    x, y = _test_split("digits_cnn", 8)
    d.write(tmp_path / "m", targets=["verilog"], parallelism={"max_multipliers": 10})
    r = d.verify(x, y, backends=["golden", "verilog"], outdir=tmp_path / "m")
    assert r.ok, r
    m_info = json.loads((tmp_path / "m" / "verilog" / "verilog_info.json").read_text())
    assert m_info["totals"]["multipliers"] <= 10
    assert synth_check(tmp_path / "m" / "verilog")["multipliers"] <= 10
    # the budget buys speed: faster than one multiplier per layer, measured
    d.write(tmp_path / "s", targets=["verilog"], parallelism="sequential")
    s_info = json.loads((tmp_path / "s" / "verilog" / "verilog_info.json").read_text())
    assert r.backends["verilog"].cycles_per_inference < s_info["totals"]["ii_cycles"] / 2


def test_cli_folding_goals(tmp_path, capsys):
    """``nnforge compile --fit PART`` / ``--target-fps``: the design written meets the goal
    (estimated here; measured in test_target_fps_is_met and test_multiplier_budget_is_met); bad goals exit 2."""
    import json

    from nnforge.cli import main

    ex = EXAMPLES / "digits_cnn"
    base = ["compile", str(ex / "model.onnx"), "--calibration", str(ex / "calibration.npz"), "--targets", "verilog", "-q"]
    assert main(base + ["-o", str(tmp_path / "f"), "--fit", "ecp5-25k"]) == 0
    info = json.loads((tmp_path / "f" / "verilog" / "verilog_info.json").read_text())
    f = info["folding"]
    assert (f["mode"], f["max_multipliers"], f["max_luts"], f["max_ffs"], f["max_bram"]) == \
        ("budget", 28, int(24288 * FIT_SHARE), int(24288 * FIT_SHARE), 56)
    est = info["totals"]["estimate"]
    assert info["totals"]["multipliers"] <= 28 and est["luts"] <= f["max_luts"] and est["bram"] <= 56
    # a LUT budget alone, from the command line
    assert main(base + ["-o", str(tmp_path / "l"), "--max-luts", "4000"]) == 0
    info = json.loads((tmp_path / "l" / "verilog" / "verilog_info.json").read_text())
    assert info["folding"]["max_luts"] == 4000 and info["totals"]["estimate"]["luts"] <= 4000
    assert main(base + ["-o", str(tmp_path / "t"), "--target-fps", "50000", "--clock-mhz", "100"]) == 0
    info = json.loads((tmp_path / "t" / "verilog" / "verilog_info.json").read_text())
    assert info["folding"]["period_cycles"] == 2000 and info["totals"]["ii_cycles"] <= 2000
    capsys.readouterr()
    assert main(base + ["-o", str(tmp_path / "x"), "--target-fps", "10000000"]) == 2  # 10 cycles: out of reach
    assert "out of reach" in capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "y"), "--fit", "nosuchpart"]) == 2
    assert main(base + ["-o", str(tmp_path / "z"), "--fit", "ecp5-25k", "--max-multipliers", "4"]) == 2
    capsys.readouterr()
    assert main(base + ["-o", str(tmp_path / "w"), "--max-luts", "100"]) == 2  # not even the slowest design
    assert "no folding fits the budget" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "xyzw")
