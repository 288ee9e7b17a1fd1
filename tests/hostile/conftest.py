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
