"""Files the writers and runners leave behind: a log's last lines for an error message, and
a finished folder moved into place whole."""

from __future__ import annotations

import hashlib
import json
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


# ---- the output marker and manifest ------------------------------------------------------
# An nnforge output folder holds MARKER: nnforge's format tag and the SHA-256 of every file
# nnforge wrote there (paths relative to the folder, '/'-separated). It decides what is an
# nnforge output (replaceable by a compile) and lets verify notice edited sources.

MARKER = "nnforge_output.json"
MARKER_FORMAT = "nnforge-output"
MARKER_VERSION = 1


class OutputFolderError(ValueError):
    """An output folder that nnforge may not use or trust (one line for the user)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, files: dict[str, str] | None = None) -> dict[str, str]:
    """Write ``folder/MARKER`` listing every regular file under ``folder`` (or ``files``,
    relative path -> SHA-256) and return that listing."""
    folder = Path(folder)
    if files is None:
        files = {p.relative_to(folder).as_posix(): file_sha256(p)
                 for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink() and p.name != MARKER}
    doc = {"format": MARKER_FORMAT, "version": MARKER_VERSION, "files": dict(sorted(files.items()))}
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, folder / MARKER)
    return doc["files"]


def read_manifest(folder: Path) -> dict[str, str]:
    """The listing of ``folder/MARKER`` (relative path -> SHA-256), validated; raises
    :class:`OutputFolderError` when the folder has no valid marker."""
    folder = Path(folder)
    path = folder / MARKER
    if not path.is_file() or path.is_symlink():
        raise OutputFolderError(f"{folder} is not an nnforge output folder (no {MARKER})")
    try:
        if path.stat().st_size > 64 << 20:
            raise ValueError("too large")
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise OutputFolderError(f"{path}: not a valid nnforge output marker ({e})") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if (not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT or doc.get("version") != MARKER_VERSION
            or set(doc) != {"format", "version", "files"} or not isinstance(files, dict)
            or not all(isinstance(k, str) and _safe_relpath(k) and isinstance(v, str) and len(v) == 64
                       and all(c in "0123456789abcdef" for c in v) for k, v in files.items())):
        raise OutputFolderError(f"{path}: not a valid nnforge output marker (format {MARKER_FORMAT} "
                                f"version {MARKER_VERSION} expected)")
    return files


def _safe_relpath(p: str) -> bool:
    parts = p.split("/")
    return bool(p) and not p.startswith("/") and "\\" not in p and "\0" not in p and all(
        part not in ("", ".", "..") for part in parts)


def modified_files(folder: Path, files: dict[str, str] | None = None, under: str = "") -> list[str]:
    """Files of the manifest (those under ``under``, a relative folder, when given) that are
    missing, not regular files, or whose contents differ from what nnforge wrote."""
    folder = Path(folder)
    files = read_manifest(folder) if files is None else files
    prefix = under.rstrip("/") + "/" if under else ""
    bad = []
    for rel, digest in files.items():
        if not rel.startswith(prefix):
            continue
        p = folder / rel
        if p.is_symlink() or not p.is_file() or file_sha256(p) != digest:
            bad.append(rel)
    return bad
