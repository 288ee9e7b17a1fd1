"""Files the writers and runners leave behind: a log's last lines for an error message, and
a finished folder moved into place whole."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


def log_tail(path: Path, n: int = 60) -> str:
    """The last ``n`` lines of a log (or a note that there is none)."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


def replace_dir(new: Path, dest: Path) -> None:
    """Move the finished folder ``new`` to ``dest``; an existing ``dest`` is swapped out
    whole (put back if the move fails), then removed."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        dest.rename(old)
    try:
        new.rename(dest)
    except BaseException:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
