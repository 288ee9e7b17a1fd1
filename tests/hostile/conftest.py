"""The hostile-input suite: every case runs nnforge in a child process under a 4 GiB
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


def _limits() -> None:  # runs in the child, before exec
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


def _env(extra: dict | None) -> dict:
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
        p = subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(env), capture_output=True, text=True,
                           errors="replace", timeout=timeout, preexec_fn=_limits, **popen)
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


@pytest.fixture
def canary(tmp_path) -> Path:
    """A path that a planted program creates if it ever runs; the case asserts it does not exist."""
    return tmp_path / "CANARY_planted_code_ran"


@pytest.fixture(scope="session")
def mlp() -> dict[str, Path]:
    d = EXAMPLES / "digits_mlp"
    return {"model": d / "model.onnx", "cal": d / "calibration.npz", "test": d / "test.npz", "dir": d}


@pytest.fixture(scope="session")
def compiled_mlp(tmp_path_factory, mlp) -> Path:
    """One compiled digits MLP (C and HLS C++), shared read-only by the cases: copy it
    (``copy_compiled``) before changing anything."""
    out = tmp_path_factory.mktemp("compiled") / "out"
    nnforge("compile", mlp["model"], "-o", out, "--targets", "c,hls", "--calibration", mlp["cal"], "-q",
            timeout=TIMEOUT).ok()
    return out


@pytest.fixture
def copy_compiled(compiled_mlp, tmp_path) -> Path:
    import shutil

    dest = tmp_path / "handed_over"
    shutil.copytree(compiled_mlp, dest, symlinks=True)
    return dest
