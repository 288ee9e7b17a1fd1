"""Files the writers and runners leave behind: a log's last lines for an error message, a
finished folder moved into place whole and crash-safely, and the marker that says which
folders are nnforge outputs (and so may be replaced)."""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
from contextlib import contextmanager
from pathlib import Path

from ..ir.text import printable


def log_tail(path: Path, n: int = 60) -> str:
    """The last ``n`` lines of a log (or a note that there is none)."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(lines[-n:])


# ---- moving a finished folder into place -------------------------------------------------
# A folder is built under a temporary name beside its destination and swapped in whole.
# Temporary names are short (the destination's name may be near NAME_MAX) and carry the
# writer's pid, so a later write beside them can tell a leftover of a dead process:
#   .nnforge-<pid>-<random>.tmp   a folder being built, or the old folder being removed
#   .nnforge-<tag>-<pid>.old      the old folder between the two renames of the fallback
#                                 (<tag>: 8 hex digits of the SHA-256 of the destination's name)

_TMP = re.compile(r"\.nnforge-([0-9]{1,10})-[0-9a-f]{6}\.tmp")
_OLD = re.compile(r"\.nnforge-([0-9a-f]{8})-([0-9]{1,10})\.old")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}


def temp_dir(parent: Path) -> Path:
    """A new empty folder ``parent/.nnforge-<pid>-<random>.tmp``; its mode follows the
    umask. A later :func:`replace_dir` beside it removes it once this process is gone."""
    for _ in range(100):
        path = Path(parent) / f".nnforge-{os.getpid()}-{secrets.token_hex(3)}.tmp"
        try:
            os.mkdir(path, 0o777)  # the umask applies (tempfile.mkdtemp would make 0700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))


def _tag(name: str) -> str:
    return hashlib.sha256(os.fsencode(name)).hexdigest()[:8]


def _leftover_pid(name: str) -> int | None:
    """The pid in a temporary name of ours, or None."""
    m = _TMP.fullmatch(name) or _OLD.fullmatch(name)
    if m is None:
        return None
    pid = int(m.group(m.lastindex))
    return pid if 0 < pid < 1 << 22 else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _rmtree(path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(parent: Path, name: str) -> None:
    """Remove the temporary folders of dead nnforge processes in ``parent``, and put back
    an old folder of ``parent/name`` that an interrupted swap left without its name."""
    parent = Path(parent)
    try:
        with os.scandir(parent) as it:
            entries = [e for e in it if e.name.startswith(".nnforge-") and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    tag = _tag(name)
    for e in entries:
        pid = _leftover_pid(e.name)
        if pid is None or _alive(pid):
            continue
        m = _OLD.fullmatch(e.name)
        if m is None:
            _rmtree(e.path)
        elif m.group(1) == tag:
            if os.path.lexists(parent / name):
                _rmtree(e.path)  # the swap was finished: this is the replaced folder
            else:
                os.rename(e.path, parent / name)


class _Critical:
    """Signals that arrive while a folder is being swapped are handled right after."""

    depth = 0
    pending: tuple | None = None


def defer_during_swap(handler):
    """``handler`` (for :func:`signal.signal`) made to wait while :func:`replace_dir`
    swaps folders, so an interrupt never lands between two renames."""
    def deferred(signum, frame):
        if _Critical.depth:
            _Critical.pending = (handler, signum)
            return None
        return handler(signum, frame)

    return deferred


@contextmanager
def _critical():
    _Critical.depth += 1
    try:
        yield
    finally:
        _Critical.depth -= 1
    pending, _Critical.pending = _Critical.pending, None
    if pending is not None and _Critical.depth == 0:
        handler, signum = pending
        handler(signum, None)


@functools.lru_cache(maxsize=None)
def _renameat2():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return fn
    nr = _SYS_RENAMEAT2.get(os.uname().machine)
    if nr is None:
        return None
    libc.syscall.restype = ctypes.c_long
    return lambda *a: libc.syscall(ctypes.c_long(nr), *(ctypes.c_int(a[0]), a[1], ctypes.c_int(a[2]), a[3],
                                                         ctypes.c_uint(a[4])))


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux renameat2 RENAME_EXCHANGE);
    False when the system or the file system cannot."""
    if sys.platform != "linux":
        return False
    try:
        fn = _renameat2()
    except OSError:
        return False
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(new: Path, dest: Path, check=None) -> None:
    """Move the finished folder ``new`` (from :func:`temp_dir` beside ``dest``) to ``dest``.

    An existing ``dest`` is swapped with ``new`` in one step, so that killed at any
    instant, ``dest`` is the complete old or the complete new folder; ``check(old)`` then
    runs on the folder swapped out (it raises to undo the swap) and that folder is removed.
    Where the system cannot swap, ``dest`` is renamed aside to ``.nnforge-<tag>-<pid>.old``
    and ``new`` renamed in: a process killed between the two leaves the old folder there,
    and the next write of ``dest`` (:func:`clean_leftovers`) puts it back first."""
    new, dest = Path(new), Path(dest)
    clean_leftovers(dest.parent, dest.name)
    old = None
    try:
        with _critical():  # a signal is handled after the swap, and the old folder still removed
            if not os.path.lexists(dest):
                os.rename(new, dest)
                return
            if os.path.islink(dest) or not dest.is_dir():
                raise OutputFolderError(f"{printable(dest)} exists and is not a folder; refusing to replace it")
            old = _swap_in(new, dest, check or (lambda p: None))
    finally:
        if old is not None:
            _rmtree(old)


def _swap_in(new: Path, dest: Path, check) -> Path:
    """Put ``new`` in the place of ``dest``; returns where the old folder is now."""
    if _exchange(new, dest):
        try:
            check(new)  # ``new`` now names the old folder
        except BaseException:
            _exchange(new, dest)
            raise
        return new
    old = dest.with_name(f".nnforge-{_tag(dest.name)}-{os.getpid()}.old")
    os.rename(dest, old)
    try:
        check(old)
        os.rename(new, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    return old

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
        files = _hash_tree(folder)
    _write_marker(folder, files)
    return dict(sorted(files.items()))


def _hash_tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink() and p.name != MARKER}


def _write_marker(folder: Path, files: dict[str, str], pending: dict[str, str] | None = None) -> None:
    """Replace ``folder/MARKER`` in one step: killed at any instant, the marker is the old
    or the new one."""
    doc = {"format": MARKER_FORMAT, "version": MARKER_VERSION, "files": dict(sorted(files.items()))}
    if pending:
        doc["pending"] = dict(sorted(pending.items()))
    write_file_atomic(Path(folder) / MARKER, json.dumps(doc, indent=1) + "\n")


def write_file_atomic(path: Path, text: str | bytes) -> None:
    """Replace the file ``path`` with ``text`` in one step: the text (or bytes, written as
    they are) goes to a new file beside it (``.<name>.<pid>-<random>.tmp``, created
    exclusively and never through a symbolic link, so nothing a folder holds can redirect
    the write), is synced, and is renamed over ``path`` (which replaces a link or a hard
    link, never writes into it). Its mode follows the umask."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_manifest(folder: Path) -> dict[str, str]:
    """The listing of ``folder/MARKER`` (relative path -> SHA-256), validated; raises
    :class:`OutputFolderError` when the folder has no valid marker."""
    return _read_marker(folder)[0]


def _read_marker(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The listing and the pending listing (files being moved in, see
    :func:`publish_in_output`) of ``folder/MARKER``."""
    folder = Path(folder)
    path = folder / MARKER
    if not path.is_file() or path.is_symlink():
        raise OutputFolderError(f"{printable(folder)} is not an nnforge output folder (no {MARKER})")
    try:
        if path.stat().st_size > 64 << 20:
            raise ValueError("too large")
        doc = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise OutputFolderError(f"{printable(path)}: not a valid nnforge output marker ({printable(e, 200)})") from None
    if (not isinstance(doc, dict) or doc.get("format") != MARKER_FORMAT or doc.get("version") != MARKER_VERSION
            or not {"format", "version", "files"} <= set(doc) <= {"format", "version", "files", "pending"}
            or not _listing(doc["files"]) or not _listing(doc.get("pending", {}))):
        raise OutputFolderError(f"{printable(path)}: not a valid nnforge output marker (format {MARKER_FORMAT} "
                                f"version {MARKER_VERSION} expected)")
    return doc["files"], doc.get("pending", {})


def _listing(files) -> bool:
    return isinstance(files, dict) and all(
        isinstance(k, str) and _safe_relpath(k) and isinstance(v, str) and len(v) == 64
        and all(c in "0123456789abcdef" for c in v) for k, v in files.items())


def _safe_relpath(p: str) -> bool:
    parts = p.split("/")
    return bool(p) and not p.startswith("/") and "\\" not in p and "\0" not in p and all(
        part not in ("", ".", "..") for part in parts)


def modified_files(folder: Path, files: dict[str, str] | None = None, under: str = "") -> list[str]:
    """Files of the manifest (those under ``under``, a relative folder, when given) that are
    missing, not regular files, or whose contents differ from what nnforge wrote."""
    folder = Path(folder)
    files, pending = _read_marker(folder) if files is None else (files, {})
    prefix = under.rstrip("/") + "/" if under else ""
    bad = []
    for rel, digest in files.items():
        if not rel.startswith(prefix):
            continue
        p = folder / rel
        if p.is_symlink() or not p.is_file() or file_sha256(p) not in (digest, pending.get(rel)):
            bad.append(rel)
    return bad


# ---- which folders nnforge may replace ---------------------------------------------------

_REFUSE = "refusing to replace it: move that file out or choose another output folder"
# a marker being written (:func:`write_file_atomic`), or left by a process killed meanwhile
_MARKER_TMP = re.compile(re.escape(f".{MARKER}.") + r"[0-9]{1,10}-[0-9a-f]{6}\.tmp")


def check_replaceable(folder: Path, under: str = "", shown=None) -> None:
    """Raise :class:`OutputFolderError` (naming ``shown``, default ``folder``, and the first
    offending file) unless ``folder`` (or its subfolder ``under``) is empty or holds only
    files nnforge wrote there, unchanged: a valid marker lists every file with its SHA-256.
    Temporary folders of dead nnforge processes are leftovers and do not count."""
    folder = Path(folder)
    shown = printable(folder if shown is None else shown)
    linked = _linked_part(folder, under)
    if linked is not None:
        raise OutputFolderError(f"{shown} holds {printable(linked)}, which is not a file nnforge wrote: {_REFUSE}")
    top = folder / under if under else folder
    if (under and not top.is_dir()) or not any(_entries(top, shown)):
        return
    try:
        files, pending = _read_marker(folder)
    except OutputFolderError as e:
        first = next((r for r, _ in _entries(top, shown) if r != MARKER), MARKER)
        why = "no" if not (folder / MARKER).exists() else "not a valid"
        raise OutputFolderError(f"{shown} is not an nnforge output folder ({why} {MARKER}; it holds "
                                f"{printable(first)}): refusing to replace it: remove it yourself or choose "
                                f"another output folder") from e
    bad = _first_offence(top, files, pending, under.rstrip("/") + "/" if under else "", shown)
    if bad is not None:
        raise OutputFolderError(f"{shown} {bad}: {_REFUSE}")


def _first_offence(top: Path, files: dict, pending: dict, prefix: str, shown: str) -> str | None:
    """What is wrong with the first file under ``top`` (listed as ``prefix`` + its relative
    path) that the listing does not hold unchanged, or None."""
    for rel, entry in _entries(top, shown):
        regular = not entry.is_symlink() and entry.is_file(follow_symlinks=False)
        if regular and not prefix and (rel == MARKER or _MARKER_TMP.fullmatch(rel)):
            continue
        bad = _offence(prefix + rel, regular, entry.path, files, pending)
        if bad is not None:
            return bad
    return None


def _offence(key: str, regular: bool, path, files: dict, pending: dict) -> str | None:
    """What is wrong with the file at ``path``, listed as ``key`` (``regular``: a regular
    file, not a link): not a file nnforge wrote, not listed, or changed; else None."""
    if not regular:
        return f"holds {printable(key)}, which is not a file nnforge wrote"
    if key not in files and key not in pending:
        return f"holds {printable(key)}, which nnforge did not write"
    if file_sha256(path) not in (files.get(key), pending.get(key)):
        return f"holds {printable(key)}, which was changed since nnforge wrote it"
    return None


def _entries(top: Path, shown: str):
    """(relative path, os.DirEntry) of every file, link and special file under ``top``, in
    name order, not following links and skipping leftovers of dead nnforge processes."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(top / rel if rel else top) as it:
            entries = sorted(it, key=lambda e: e.name)
        subdirs = []
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            if not e.is_dir(follow_symlinks=False):
                yield r, e
                continue
            pid = _leftover_pid(e.name)
            if pid is None:
                subdirs.append(r)
            elif _alive(pid):
                raise OutputFolderError(f"{shown}: another nnforge process (pid {pid}) is writing into it "
                                        f"({printable(r)}); wait until it ends")
        stack.extend(reversed(subdirs))


def _linked_part(root: Path, rel: str) -> str | None:
    """The first part of the relative folder ``rel`` under ``root`` that exists but is a
    symbolic link or not a folder, or None."""
    path, parts = Path(root), []
    for part in filter(None, rel.split("/")):
        path, parts = path / part, [*parts, part]
        if not os.path.lexists(path):
            return None
        if os.path.islink(path) or not path.is_dir():
            return "/".join(parts)
    return None


def subfolder(root: Path, rel: str) -> Path:
    """The folder ``root/rel`` (``rel`` relative, '/'-separated), made where missing (its
    mode follows the umask). Refused (:class:`OutputFolderError`) when a part of it is a
    symbolic link or not a folder: what is written there stays inside ``root``, whoever
    made the folder."""
    linked = _linked_part(root, rel)
    if linked is not None:
        raise OutputFolderError(f"{printable(Path(root) / linked)} is a symbolic link or not a folder: refusing to "
                                f"write through it; remove it or choose another output folder")
    path = Path(root) / rel
    path.mkdir(parents=True, exist_ok=True)
    return path


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def output_folder(outdir, inputs: dict | None = None) -> Path:
    """The folder to write for the output folder ``outdir``, checked before anything is
    written. A symbolic link is followed: the folder it points to is replaced, the link
    stays. Refused (:class:`OutputFolderError`): a folder that is or holds the current
    folder (``.``, ``..``, ``/``), one that holds an input file (``inputs``: what -> path),
    something that is not a folder, and a non-empty folder :func:`check_replaceable` refuses."""
    given = printable(outdir)
    dest = os.path.realpath(outdir)
    if os.path.islink(dest):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(outdir))
    cwd = os.path.realpath(os.getcwd())
    if _inside(cwd, dest):
        raise OutputFolderError(f"the output folder '{given}' is or holds the current folder {printable(cwd)}, "
                                f"which it would replace; choose a new folder for the output")
    for what, path in (inputs or {}).items():
        if path and _inside(os.path.realpath(path), dest):
            raise OutputFolderError(f"{printable(path)}: the {what} lies inside the output folder {given}, which "
                                    f"this compile would replace; move it out or choose another output folder")
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return Path(dest)
    if not stat.S_ISDIR(st.st_mode):
        raise OutputFolderError(f"{given} exists and is not a folder: refusing to replace it; "
                                f"choose another output folder")
    check_replaceable(Path(dest), shown=given)
    return Path(dest)


def publish_in_output(new: Path, dest: Path, root: Path) -> None:
    """Move the finished folder ``new`` to ``dest``, a folder inside the output folder
    ``root``, replacing an earlier one, and list its files in root's manifest. Killed at any
    instant, the folder under ``dest`` is the old or the new one and the manifest accepts
    it: the new files are first listed as pending beside the old ones, then ``dest`` is
    swapped, then the listing settled. Refused like :func:`check_replaceable` when ``dest``
    holds files nnforge did not write."""
    new, dest, root = Path(new), Path(dest), Path(root)
    rel = dest.relative_to(root).as_posix()
    prefix = rel + "/"
    files, pending = _settled(root, *_read_marker(root))
    check_replaceable(root, under=rel)
    added = {prefix + k: v for k, v in _hash_tree(new).items()}
    _write_marker(root, files, added)

    def unchanged(old: Path) -> None:
        bad = _first_offence(old, files, {}, prefix, printable(dest))
        if bad is not None:
            raise OutputFolderError(f"{printable(dest)} {bad}: {_REFUSE}")

    replace_dir(new, dest, check=unchanged)
    _write_marker(root, {**{k: v for k, v in files.items() if not k.startswith(prefix)}, **added})


def _settled(root: Path, files: dict, pending: dict) -> tuple[dict, dict]:
    """The listing with the pending files of an interrupted :func:`publish_in_output` that
    did reach the disk moved into it."""
    if not pending:
        return files, pending
    files = dict(files)
    for rel, digest in pending.items():
        p = root / rel
        if not p.is_symlink() and p.is_file() and file_sha256(p) == digest:
            files[rel] = digest
    _write_marker(root, files)
    return files, {}


def write_in_output(root: Path, rel: str, text: str) -> Path:
    """Write ``text`` (UTF-8) to the file ``root/rel`` of the output folder ``root`` and list
    it in root's manifest, so that a later compile still replaces the folder and verify
    accepts it. Refused (:class:`OutputFolderError`, as :func:`check_replaceable` words it)
    when ``root`` has no valid marker, when a part of ``rel``'s folder is a symbolic link
    or not a folder, and when ``root/rel`` exists but is not a file nnforge wrote there
    unchanged (a symbolic link, a special file, a user's own file, an edited one). The file
    is written beside its place and renamed over it (:func:`write_file_atomic`: never
    through a link), listed as pending first and settled after, as
    :func:`publish_in_output` does. Returns the path written."""
    root = Path(root)
    if not _safe_relpath(rel) or rel == MARKER:
        raise ValueError(f"{printable(rel)} is not a file name inside an output folder")
    files, pending = _settled(root, *_read_marker(root))
    folder, _, _ = rel.rpartition("/")
    if folder:
        subfolder(root, folder)
    path = root / rel
    shown = printable(root)
    bad = os.path.lexists(path) and _offence(rel, not path.is_symlink() and path.is_file(), path, files, {})
    if bad:
        raise OutputFolderError(f"{shown} {bad}: {_REFUSE}")
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    _write_marker(root, files, {rel: digest})
    write_file_atomic(path, data)
    _write_marker(root, {**files, rel: digest})
    return path
