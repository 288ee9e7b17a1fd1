"""The private build cache: every executable nnforge runs to verify a design is compiled
here, never taken from an output folder.

The cache is ``$NNFORGE_CACHE``, else ``$XDG_CACHE_HOME/nnforge``, else
``~/.cache/nnforge``: created with mode 0700, and refused when it is not a folder owned by
the user or when group or others may write to it. An entry is a folder named by a SHA-256
over everything that goes into its binary (the content of every file compiled, the full
command line, the compiler's identity); it is built in a fresh temporary folder inside the
cache and renamed into place when complete, so concurrent builds of the same key never see
half an entry, and an entry is only ever found by its key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

KEEP_ENTRIES = 32  # per kind; older entries unused for PRUNE_AGE seconds are removed
PRUNE_AGE = 3600.0


class CacheError(ValueError):
    """A cache folder nnforge may not use (one line for the user)."""


def cache_root() -> Path:
    """The build cache folder (created, and checked by :func:`checked_folder`)."""
    env = os.environ.get("NNFORGE_CACHE")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "nnforge"
    return checked_folder(root, "the build cache")


def checked_folder(path: Path, what: str) -> Path:
    """``path`` created (mode 0700) if missing; refused unless it is a folder owned by the
    user that neither group nor others may write to."""
    path = Path(path).absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        st = os.stat(path)
    except OSError as e:
        raise CacheError(f"{what} {path} cannot be used: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"{what} {path} is not a folder")
    if st.st_uid != os.getuid():
        raise CacheError(f"{what} {path} is owned by another user (uid {st.st_uid}); refusing to build there")
    if st.st_mode & 0o022:
        raise CacheError(f"{what} {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                         f"refusing to build there (chmod go-w it, or set NNFORGE_CACHE)")
    return path


@lru_cache(maxsize=16)
def tool_identity(exe: str) -> str:
    """A compiler's identity for a cache key: its resolved path and ``--version`` output."""
    real = os.path.realpath(exe)
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
        version = proc.stdout + proc.stderr
    except (OSError, subprocess.SubprocessError) as e:
        version = f"(no version: {e})"
    return f"{real}\n{version}"


def key(*parts: str | bytes, files: Iterable[Path] = ()) -> str:
    """SHA-256 over ``parts`` and the names and contents of ``files``, each length-prefixed
    so that no two different inputs give the same stream."""
    h = hashlib.sha256()

    def put(b: bytes) -> None:
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    for p in parts:
        put(p.encode() if isinstance(p, str) else p)
    for f in files:
        put(Path(f).name.encode())
        put(Path(f).read_bytes())
    return h.hexdigest()


def entry(kind: str, digest: str, populate: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache entry ``kind-digest``: reused if present, else made by ``populate(tmp)`` in a
    fresh folder inside the cache and renamed into place. Returns ``(folder, reused)``."""
    root = cache_root()
    final = root / f"{kind}-{digest}"
    if final.is_dir() and not final.is_symlink():
        _touch(final)
        return final, True
    tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", suffix=".tmp", dir=root))
    try:
        populate(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same key first
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return final, True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune(root, kind, keep=final)
    return final, False


def _touch(p: Path) -> None:
    try:
        os.utime(p)
    except OSError:
        pass


def prune(root: Path, kind: str, keep: Path) -> None:
    """Remove all but the newest ``KEEP_ENTRIES`` entries of ``kind`` (never ``keep``, never
    one used in the last ``PRUNE_AGE`` seconds, which another process may be running)."""
    now = time.time()
    entries = []
    for p in root.glob(f"{kind}-*"):
        try:
            if p.is_dir() and not p.is_symlink() and p != keep:
                entries.append((p.stat().st_mtime, p))
        except OSError:
            continue
    entries.sort(reverse=True)
    for mtime, p in entries[KEEP_ENTRIES - 1:]:
        if now - mtime > PRUNE_AGE:
            shutil.rmtree(p, ignore_errors=True)


def copy_sources(files: Iterable[Path], dest: Path) -> list[Path]:
    """Copy ``files`` (regular files, by name) into ``dest``; returns the copies."""
    out = []
    for f in files:
        f = Path(f)
        if f.is_symlink() or not f.is_file():
            raise CacheError(f"{f} is not a regular file; refusing to compile it")
        d = dest / f.name
        shutil.copyfile(f, d)
        out.append(d)
    return out
