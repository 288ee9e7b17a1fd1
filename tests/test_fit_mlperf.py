"""``--fit PART`` on models of the MLPerf Tiny shapes fills the part: the period lands
within 15% of the ideal ceil(MACs / the part's multipliers) and the design's estimate
fits every budget (the folding search alone: nothing is simulated or synthesized here;
tests/test_row_fold.py checks the estimated periods against Verilator)."""

import json
import math

import pytest

from conftest import bench_module
import nnforge
from nnforge.sim.fpga import fit_budget, resolve_part

@pytest.mark.slow
@pytest.mark.parametrize("name,part", [("resnet8", "ecp5-85k"), ("ds_cnn", "ecp5-25k"), ("fc_autoencoder", "ecp5-85k")])
def test_fit_fills_the_part(name, part, tmp_path):
    tiny = bench_module("mlperf_tiny")
    model, cal, _ = tiny.MODELS[name](n_cal=16, n_test=1)
    design = nnforge.compile(model, calibration=cal, bits=8)
    p = resolve_part(part)
    budget = fit_budget(p)
    out = design.write(tmp_path / "o", targets=["verilog"], **budget)
    info = json.loads((out / "verilog" / "verilog_info.json").read_text())
    t = info["totals"]
    ideal = math.ceil(tiny.MACS[name] / p.resources["DSP"])
    assert t["ii_cycles"] <= 1.15 * ideal, (t["ii_cycles"], ideal)
    est = t["estimate"]
    assert est["dsp"] <= budget["max_multipliers"] and est["luts"] <= budget["max_luts"]
    assert est["ffs"] <= budget["max_ffs"] and est["bram"] <= budget["max_bram"]
    # the report shows the budget's use
    report = (out / "report.txt").read_text()
    assert f"of {budget['max_multipliers']} multipliers" in report
