"""verify spreading each built backend's samples over processes (``jobs``, ``--jobs``):
one build, shards in parallel, outputs back in sample order and equal to one process's,
a failing shard named by its samples, nothing added to the output folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import nnforge
from nnforge import cli, verification
from nnforge.sim.progress import QUIET, Progress
from nnforge.sim.tools import ToolError
from nnforge.targets import TARGETS
from conftest import ROOT

CNN = ROOT / "examples" / "digits_cnn"


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def cnn():
    design = nnforge.compile(CNN / "model.onnx", calibration=np.load(CNN / "calibration.npz")["x"], bits=8)
    test = np.load(CNN / "test.npz")
    return design, test["x"], test["y"]


def _files(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_shard_bounds_cover_every_sample_in_order():
    assert verification.shard_bounds(9, 1) == [(0, 9)]
    assert verification.shard_bounds(4, 8) == [(0, 4)]  # no two shards of MIN_SHARD after sample 0
    assert verification.shard_bounds(5, 2) == [(0, 1), (1, 3), (3, 5)]
    for n in range(1, 40):
        for jobs in (1, 2, 3, 7, 64):
            b = verification.shard_bounds(n, jobs)
            assert b[0][0] == 0 and b[-1][1] == n and all(a[1] == c[0] for a, c in zip(b, b[1:]))
            assert len(b) == 1 or (len(b) - 1 <= jobs and min(z - a for a, z in b[1:]) >= verification.MIN_SHARD)


def test_jobs_are_checked():
    assert verification.check_jobs(None) == max(1, os.cpu_count() or 1)
    assert verification.check_jobs(3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="jobs"):
            verification.check_jobs(bad)


def test_sharded_program_matches_one_process_and_leaves_the_folder_alone(cnn, tmp_path, monkeypatch):
    design, x, y = cnn
    out = design.write(tmp_path / "out", targets=["c"])
    before = _files(out)
    monkeypatch.setattr(verification, "PROGRAM_SHARD_MACS", 0)  # shard even this small program
    x_int = design.quantize_input(x[:23])
    runs = {}
    with verification.staged_sources(design, out, ["c"], "balanced", QUIET) as staged:
        for jobs in (1, 3):
            runs[jobs] = verification.run_sharded("c", design.lowered("c"), staged, x_int, QUIET, jobs)
    assert runs[3].extra["shards"] == [[0, 1], [1, 8], [8, 15], [15, 23]]
    assert np.array_equal(runs[1].y, runs[3].y)
    assert np.array_equal(runs[3].y.reshape(23, -1), design.predict_int(x_int).reshape(23, -1))
    one = design.verify(x[:23], y[:23], backends=["golden", "c"], outdir=out, jobs=1).as_dict()
    three = design.verify(x[:23], y[:23], backends=["golden", "c"], outdir=out, jobs=3).as_dict()
    for d in (one, three):
        for b in d["backends"].values():
            b.pop("seconds")
    assert one == three and three["ok"]
    assert _files(out) == before


def test_a_failing_shard_is_named_by_its_samples(cnn, tmp_path, monkeypatch, capsys):
    design, x, _ = cnn
    out = design.write(tmp_path / "out", targets=["c"])
    monkeypatch.setattr(verification, "PROGRAM_SHARD_MACS", 0)
    x_int = design.quantize_input(x[:9]).reshape(9, -1)
    real = TARGETS["c"].run

    def run(model, src, build, xi, progress):
        if len(xi) and np.array_equal(np.asarray(xi).reshape(len(xi), -1)[0], x_int[5]):
            raise ToolError("the program crashed (signal 11)")
        return real(model, src, build, xi, progress)

    monkeypatch.setattr(TARGETS["c"], "run", run)
    with pytest.raises(ToolError, match=r"c: the run of samples 5\.\.8 failed \(1 of 2 shards\); samples 5\.\.8: "
                                        r"the program crashed \(signal 11\)"):
        design.verify(x[:9], backends=["c"], outdir=out, jobs=2)
    capsys.readouterr()
    assert run_cli("verify", out, "--data", CNN / "test.npz", "--backends", "c", "--limit", "9", "--jobs", "2",
                   "-q") == 2
    assert "samples 5..8" in capsys.readouterr().err
    assert not any(p.name.startswith("c-shard") for p in out.rglob("*"))


def test_cli_jobs_option(cnn, tmp_path, capsys):
    design, _, _ = cnn
    out = design.write(tmp_path / "out", targets=["c"])
    capsys.readouterr()
    assert run_cli("verify", out, "--data", CNN / "test.npz", "--backends", "golden,c", "--limit", "11",
                   "--jobs", "2", "--json", "-q") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["backends"]["c"]["samples"] == 11 and doc["backends"]["c"]["mismatches"] == 0
    assert run_cli("verify", out, "--data", CNN / "test.npz", "--jobs", "0", "-q") == 2
    assert "jobs must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow
def test_verilog_shards_match_one_process(cnn, tmp_path, capsys):
    """The RTL simulation in three harness processes from one build: the same outputs,
    mismatches and cycle figures as one process, and the progress counted over all shards."""
    design, x, y = cnn
    out = design.write(tmp_path / "out", targets=["verilog"])
    before = _files(out)
    x_int = design.quantize_input(x[:25])
    runs = {}
    with verification.staged_sources(design, out, ["verilog"], "balanced", QUIET) as staged:
        for jobs in (1, 3):
            runs[jobs] = verification.run_sharded("verilog", design.lowered("verilog"), staged, x_int,
                                                  Progress(), jobs)
    err = capsys.readouterr().err
    assert "verilog (cpp): vectors: 24/24 (all shards)" in err
    assert err.count("building") <= 1  # built once (or found in the cache), never per shard
    assert np.array_equal(runs[1].y, runs[3].y)
    assert np.array_equal(runs[3].y.reshape(25, -1), design.predict_int(x_int).reshape(25, -1))
    assert runs[3].latency_cycles == runs[1].latency_cycles
    assert runs[3].cycles_per_inference == runs[1].cycles_per_inference
    res = design.verify(x[:25], y[:25], backends=["golden", "verilog"], outdir=out, jobs=3)
    assert res.ok and res.backends["verilog"].samples == 25
    assert _files(out) == before
