"""The harness itself: a case that outlives its timeout fails, and whatever it started (a
compiler, a simulator) ends with it, in a fresh interpreter and in a fork of the server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from . import harness

# starts a grandchild that would sleep for minutes, writes its pid, then outlives the timeout
SPAWN = """
import subprocess, sys, time
p = subprocess.Popen(["sleep", "300"])
open({pidfile!r}, "w").write(str(p.pid))
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("fresh", [False, True], ids=["forked", "fresh"])
def test_timeout_ends_the_grandchildren(tmp_path, monkeypatch, fresh):
    if fresh:
        monkeypatch.setenv("NNFORGE_HOSTILE_FRESH", "1")
    else:
        monkeypatch.delenv("NNFORGE_HOSTILE_FRESH", raising=False)
    pidfile = tmp_path / "grandchild.pid"
    t0 = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="did not end within"):
        harness.python(SPAWN.format(pidfile=str(pidfile)), cwd=tmp_path, timeout=6)
    assert time.monotonic() - t0 < 30
    assert pidfile.exists(), "the case did not start its grandchild within the timeout"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, 9)  # do not leave it behind, then fail
        pytest.fail(f"the case's grandchild {pid} outlived the case's timeout")
