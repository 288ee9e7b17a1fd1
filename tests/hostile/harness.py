"""The hostile-input suite's harness: every case runs nnforge in a child process under a 4 GiB
address-space limit and a 60 s timeout, and asserts the exact outcome (exit status, the
one line on stderr, what is on disk afterwards, that nothing planted ran).

Helpers here, not in the tests: :func:`nnforge` runs the command line, :func:`python`
runs a snippet of Python (for the API), both in a fresh interpreter with the limits set
before it starts."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ADDRESS_SPACE = 4 << 30  # bytes
TIMEOUT = 60.0  # seconds, per case
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    def one_error(self, *fragments: str) -> str:
        """Exit 2 with exactly one line on stderr, ``nnforge: error: ...``, holding every
        fragment (case-insensitive); returns the line."""
        assert self.rc == 2, f"exit {self.rc}, expected 2\nstdout: {self.out[-2000:]}\nstderr: {self.err[-4000:]}"
        assert "Traceback" not in self.err, self.err[-4000:]
        lines = self.err_lines
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{self.err[-4000:]}"
        line = lines[0]
        assert line.startswith("nnforge: error: "), line
        for f in fragments:
            assert f.lower() in line.lower(), f"{f!r} not in {line!r}"
        assert "\x1b" not in line and "\r" not in line
        return line

    def ok(self) -> "Outcome":
        assert self.rc == 0, f"exit {self.rc}\nstdout: {self.out[-2000:]}\nstderr: {self.err[-4000:]}"
        assert "Traceback" not in self.err
        return self


def child_env(extra: dict | None) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "default"  # warnings must not be hidden from the cases
    env.pop("NNFORGE_VERILATOR_CACHE", None)
    env.update(extra or {})
    return env


def run(argv: list, cwd=None, env: dict | None = None, timeout: float = TIMEOUT, **popen) -> Outcome:
    """Run ``argv`` under the suite's limits; a run that outlives ``timeout`` fails the case."""
    t0 = time.monotonic()
    try:
        p = subprocess.run([str(a) for a in argv], cwd=cwd, env=child_env(env), capture_output=True, text=True,
                           errors="replace", timeout=timeout, preexec_fn=limits, **popen)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{argv[2:] if len(argv) > 2 else argv} did not end within {timeout:.0f} s")
    return Outcome(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def nnforge(*args, cwd=None, env: dict | None = None, timeout: float = TIMEOUT) -> Outcome:
    """``python -m nnforge ARGS`` under the limits."""
    return run([sys.executable, "-m", "nnforge", *args], cwd=cwd, env=env, timeout=timeout)


def python(code: str, cwd=None, env: dict | None = None, timeout: float = TIMEOUT) -> Outcome:
    """A snippet of Python (the API) under the limits."""
    return run([sys.executable, "-c", code], cwd=cwd, env=env, timeout=timeout)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> contents), to compare before / after."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def call(module: str, func: str, *args) -> Outcome:
    """``module.func(*args)`` in a child under the limits, for a case whose checks are
    Python assertions (``args`` plain values, passed by their repr); the case passes when
    the child ends with exit 0."""
    code = f"import {module} as m\nm.{func}(*{args!r})\n"
    return run([sys.executable, "-c", code], cwd=ROOT / "tests")


def patch_zip(path: Path, local: dict[int, bytes], central: dict[int, bytes]) -> Path:
    """Overwrite fields of every local header / central directory entry (offset -> bytes)."""
    raw = bytearray(path.read_bytes())
    for sig, fields in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        i = raw.find(sig)
        while i >= 0:
            for off, b in fields.items():
                raw[i + off:i + off + len(b)] = b
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    return path
