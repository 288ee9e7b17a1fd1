"""The Dask side of a sweep as a user meets it: Ctrl-C (also after a worker was restarted),
a scheduler without workers, workers that all leave mid-sweep, the local cluster's
transport, and data too large for Dask's graph warning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from nnforge import cluster
from nnforge.data import load_npz
from nnforge.explore import explore
from nnforge.sim.progress import QUIET

from dask_cluster import Cluster

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "examples" / "digits_cnn"
RESNET = ROOT / "examples" / "digits_resnet"


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def worker_pids(pid: int) -> list[int]:
    """The Dask worker processes of the local cluster the sweep ``pid`` started."""
    out = []
    for p in descendants(pid):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(p)
    return out


def sweep_argv(out: Path) -> list[str]:
    return [sys.executable, "-m", "nnforge", "explore", str(RESNET / "model.onnx"), "--calibration",
            str(RESNET / "calibration.npz"), "--validation", str(RESNET / "test.npz"), "--bits", "3,4,5,6,7,8",
            "--per-channel", "on,off", "--calibration-method", "minmax,mse",
            "--parallelism", "sequential,balanced,parallel", "--workers", "2", "-o", str(out)]  # 72: minutes


@pytest.mark.slow
def test_ctrl_c_after_a_worker_restart(tmp_path):
    """SIGINT to the whole process group (a terminal's Ctrl-C) mid-sweep, after one worker
    was killed and restarted: exit 130, no traceback, no process left, the results so far
    written."""
    p = subprocess.Popen(sweep_argv(tmp_path / "s"), stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
    reader.start()
    end = time.monotonic() + 120
    while not any("2/" in ln and "done" in ln for ln in lines) and time.monotonic() < end and p.poll() is None:
        time.sleep(0.1)
    first = worker_pids(p.pid)
    assert len(first) == 2, "".join(lines)
    os.kill(first[0], signal.SIGKILL)  # the nanny starts another worker
    while time.monotonic() < end and len(set(worker_pids(p.pid)) - set(first)) < 1:
        time.sleep(0.1)
    time.sleep(3)  # the new worker up and running configurations
    os.killpg(p.pid, signal.SIGINT)
    p.wait(timeout=60)
    reader.join(timeout=30)
    text = "".join(lines)
    assert p.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert text.rstrip().endswith("nnforge: interrupted"), text
    time.sleep(1)
    assert not descendants(p.pid), "processes left behind"
    doc = json.loads((tmp_path / "s" / "results.json").read_text())
    assert 2 <= len(doc["configurations"]) < 72 and (tmp_path / "s" / "explore.html").is_file()


def test_local_cluster_is_tls_on_localhost():
    with cluster.dask_client(None, 1, QUIET) as client:
        assert client.scheduler.address.startswith("tls://127.0.0.1:")
        assert client.submit(sum, [1, 2]).result() == 3


def test_scheduler_without_workers_is_refused(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setattr(cluster, "WORKER_WAIT_S", 2)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as lc, Client(lc):
        x, y = load_npz(CNN / "test.npz")
        t0 = time.monotonic()
        with pytest.raises(OSError, match="has no workers"):
            explore(CNN / "model.onnx", load_npz(CNN / "calibration.npz")[0], (x, y), tmp_path / "s",
                    bits=[8], scheduler=lc.scheduler_address)
        assert time.monotonic() - t0 < 30


@pytest.mark.slow
def test_workers_all_leave_mid_sweep(tmp_path, monkeypatch):
    """Every worker gone: the sweep stops with one error after WORKER_WAIT_S, keeping what
    was measured."""
    monkeypatch.setattr(cluster, "WORKER_WAIT_S", 3)
    c = Cluster(tmp_path)
    x, y = load_npz(RESNET / "test.npz")

    class KillAfterFirst:
        quiet = False

        def __call__(self, msg: str) -> None:
            if "1/" in msg and "done" in msg:
                for w in c.workers:
                    w.kill()

        def warn(self, msg: str) -> None:
            pass

    try:
        with pytest.raises(OSError, match="every Dask worker has left"):
            explore(RESNET / "model.onnx", load_npz(RESNET / "calibration.npz")[0], (x, y), tmp_path / "s",
                    bits=[3, 4, 5, 6, 7, 8], per_channel=[True, False], scheduler=c.address,
                    progress=KillAfterFirst())
    finally:
        c.close()
    doc = json.loads((tmp_path / "s" / "results.json").read_text())
    assert 1 <= len(doc["configurations"]) < 12


def test_large_data_gives_no_dask_warning(tmp_path):
    """Data over Dask's large-graph threshold (10 MB) travels in a task: no warning."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", x=rng.random((45000, 1, 8, 8), dtype=np.float32))
    r = subprocess.run([sys.executable, "-m", "nnforge", "explore", str(CNN / "model.onnx"), "--calibration",
                        str(tmp_path / "cal.npz"), "--validation", str(CNN / "test.npz"), "--bits", "8",
                        "--workers", "1", "-o", str(tmp_path / "s")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cal.npz").stat().st_size > 10 << 20
    assert "Warning" not in r.stderr and "warning" not in r.stderr, r.stderr
