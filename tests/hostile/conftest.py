"""Fixtures of the hostile-input suite (the helpers are in :mod:`harness`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import EXAMPLES, TIMEOUT, nnforge


@pytest.fixture
def canary(tmp_path) -> Path:
    """A path that a planted program creates if it ever runs; the case asserts it does not exist."""
    return tmp_path / "CANARY_planted_code_ran"


@pytest.fixture(scope="session")
def mlp() -> dict[str, Path]:
    d = EXAMPLES / "digits_mlp"
    return {"model": d / "model.onnx", "cal": d / "calibration.npz", "test": d / "test.npz", "dir": d}


def _compiled(tmp_path_factory, mlp, targets: str) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "out"
    nnforge("compile", mlp["model"], "-o", out, "--targets", targets, "--calibration", mlp["cal"], "-q",
            timeout=TIMEOUT).ok()
    return out


def _handed_over(compiled: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(compiled, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def compiled_mlp(tmp_path_factory, mlp) -> Path:
    """One compiled digits MLP (C and HLS C++), shared read-only by the cases: copy it
    (``copy_compiled``) before changing anything."""
    return _compiled(tmp_path_factory, mlp, "c,hls")


@pytest.fixture
def copy_compiled(compiled_mlp, tmp_path) -> Path:
    return _handed_over(compiled_mlp, tmp_path / "handed_over")


@pytest.fixture(scope="session")
def compiled_verilog(tmp_path_factory, mlp) -> Path:
    """One compiled digits MLP with its Verilog, shared read-only: ``copy_verilog`` copies it."""
    return _compiled(tmp_path_factory, mlp, "verilog")


@pytest.fixture
def copy_verilog(compiled_verilog, tmp_path) -> Path:
    return _handed_over(compiled_verilog, tmp_path / "handed_over_v")


@pytest.fixture(autouse=True)
def _case_timeout():
    """The 60 s limit also for what a case does in the test process itself (building
    files, reading results, the few filesystem API cases); nnforge itself always runs in a
    child under the address-space limit as well (harness.run)."""
    import signal

    def expired(signum, frame):
        pytest.fail(f"the case did not end within {TIMEOUT:.0f} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(TIMEOUT) + 30)  # the child's own 60 s, plus the case's own work around it
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
