"""Progress lines on stderr for long steps; silenced by ``quiet``."""

from __future__ import annotations

import sys
import time
import warnings


class Progress:
    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self._t0:6.1f}s] {msg}", file=self.stream, flush=True)

    def warn(self, msg: str) -> None:
        """A warning that changes what the result means: one line, shown even when quiet."""
        print(f"nnforge: warning: {msg}", file=self.stream, flush=True)

    def counter(self, what: str, total: int, every: int | None = None):
        """Return ``tick(done)`` that reports every ``every`` items and at the end."""
        every = every or max(1, total // 10)

        def tick(done: int) -> None:
            if done == total or done % every == 0:
                self(f"{what}: {done}/{total}")

        return tick


QUIET = Progress(quiet=True)


def warn(progress: Progress, msg: str, category: type[Warning] = UserWarning, stacklevel: int = 2) -> None:
    """A warning that changes what a result means: one line on the command line (even
    quiet), a ``category`` warning through :mod:`warnings` for the API (``progress`` is
    :data:`QUIET` or has no ``warn``). ``stacklevel`` counts from the caller of this
    function, as :func:`warnings.warn` counts from its own caller."""
    show = getattr(progress, "warn", None)
    if progress is QUIET or show is None:
        warnings.warn(msg, category, stacklevel=stacklevel + 1)
    else:
        show(msg)
