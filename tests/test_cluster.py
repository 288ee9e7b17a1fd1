"""nnforge verify --scheduler: the Verilog simulation's samples sharded over the workers of
a Dask scheduler started here; the shard bounds; a shard's failure named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnforge.cluster import MIN_SHARD, cluster_bounds, run_shard, source_files

from dask_cluster import Cluster

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "examples" / "digits_cnn"


def nnforge(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnforge", *map(str, argv)], capture_output=True, text=True,
                          timeout=900)


def compiled(tmp_path: Path) -> Path:
    """The digits CNN's Verilog, compiled into ``tmp_path/out``."""
    out = tmp_path / "out"
    r = nnforge("compile", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--targets", "verilog",
                "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("n, shards", [(1, 4), (2, 4), (7, 2), (20, 3), (100, 7), (5, 1)])
def test_cluster_bounds(n, shards):
    b = cluster_bounds(n, shards)
    assert b[0][0] == 0 and b[-1][1] == n and all(a[1] == c[0] for a, c in zip(b, b[1:]))
    assert len(b) <= shards and (len(b) == 1 or min(hi - lo for lo, hi in b) >= MIN_SHARD)
    assert max(hi - lo for lo, hi in b) - min(hi - lo for lo, hi in b) <= 1


def test_shard_refuses_paths_leaving_its_folder():
    with pytest.raises(ValueError, match="leaves its folder"):
        run_shard("c", None, {"../evil.c": b"int x;"}, np.zeros((1, 1), np.int64))
    with pytest.raises(ValueError, match="leaves its folder"):
        run_shard("c", None, {"/tmp/evil.c": b"int x;"}, np.zeros((1, 1), np.int64))


def test_source_files_skip_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.v").write_text("module x; endmodule\n")
    (tmp_path / "link.v").symlink_to(tmp_path / "a" / "x.v")
    assert source_files(tmp_path) == {"a/x.v": b"module x; endmodule\n"}


@pytest.mark.slow
def test_verify_verilog_on_a_dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    out = compiled(tmp_path)
    cluster = Cluster(tmp_path)
    try:
        r = nnforge("verify", out, "--data", CNN / "test.npz", "--backends", "golden,verilog", "--limit", "12",
                    "--scheduler", cluster.address, "--json")
    finally:
        cluster.close()
    assert r.returncode == 0, r.stderr
    assert "verilog: 12 samples in 2 shard(s) on 2 Dask worker thread(s)" in r.stderr
    assert "samples 0..5 done on the cluster" in r.stderr and "samples 6..11 done on the cluster" in r.stderr
    doc = json.loads(r.stdout)
    v = doc["backends"]["verilog"]
    assert v["samples"] == 12 and v["mismatches"] == 0
    assert v["accuracy"] == doc["backends"]["golden"]["accuracy"]
    assert v["cycles_per_inference"] > 0 and v["latency_cycles"] > 0
    r = nnforge("verify", out, "--data", CNN / "test.npz", "--backends", "golden,verilog", "--limit", "12",
                "--jobs", "1", "--json", "-q")
    assert r.returncode == 0, r.stderr
    here = json.loads(r.stdout)["backends"]["verilog"]
    for k in ("samples", "mismatches", "accuracy", "first_mismatch", "latency_cycles", "cycles_per_inference"):
        assert v.get(k) == here.get(k), k  # the same figures as one process on this machine


@pytest.mark.slow
def test_verify_scheduler_unreachable_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    out = compiled(tmp_path)
    r = nnforge("verify", out, "--data", CNN / "test.npz", "--backends", "verilog", "--limit", "4",
                "--scheduler", "tcp://127.0.0.1:9", "-q")
    assert r.returncode == 2, r.stderr
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr and "Traceback" not in r.stderr
