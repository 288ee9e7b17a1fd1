"""A Dask scheduler and two single-threaded workers on localhost, started the way a user
starts them (``dask scheduler`` / ``dask worker``), for the tests that use a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


class Cluster:
    """A Dask scheduler and two single-threaded workers on localhost, as a user starts them."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "scheduler.json"
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env, "cwd": folder}
        self.scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host",
                                           "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                                           str(self.file)], **common)
        self.workers = []
        try:
            self._wait(self._read_address, "the scheduler")
            for i in range(2):
                self.workers.append(subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(self.file),
                     "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"], **common))
            self._wait(lambda: self.n_workers() == 2, "two workers")
        except BaseException:
            self.close()
            raise

    def _read_address(self) -> bool:
        try:
            self.address = json.loads(self.file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            return False  # not written yet, or half written
        return True

    def tasks(self, prefix: str) -> dict[str, list[str]]:
        """The keys starting with ``prefix`` that each worker (by name) is processing."""
        from distributed import Client

        with Client(self.address, timeout=10) as c:
            names = {a: str(w.get("name")) for a, w in c.scheduler_info()["workers"].items()}
            return {names.get(a, a): [str(k) for k in keys if str(k).startswith(prefix)]
                    for a, keys in c.processing().items()}

    def n_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=10) as c:
            return len(c.scheduler_info()["workers"])

    @staticmethod
    def _wait(ready, what: str, seconds: float = 60) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{what} did not start in {seconds} s")

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
