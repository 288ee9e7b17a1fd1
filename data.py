"""Data files and the checks every sample array passes before nnforge computes with it.

A data file is a ``.npz`` (``numpy.savez``) holding ``x`` (N samples shaped like the
model input) and optional integer labels ``y`` (N,). :func:`load_npz` reads it as
untrusted input: the zip and each member's ``.npy`` header are checked (kind, shape,
size against what the member holds and against :data:`MAX_ARRAY_BYTES`) before any
array is allocated, object arrays are never unpickled, and every failure is one
:class:`DataError` line naming the file and the member.

:func:`check_values` refuses NaN, infinities and values beyond float32 (the precision the
float model runs in); :func:`check_labels` refuses labels outside the model's classes.
"""

from __future__ import annotations

import math
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from .ir.text import name, printable

MAX_ARRAY_BYTES = 4 << 30  # the largest array read from a data file (bytes, once loaded)
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"


class DataError(ValueError):
    """Input data does not fit the model."""


def load_npz(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (N, ...) and optional integer labels ``y`` (N,) from a ``.npz`` file; raises
    :class:`DataError` (one line) for anything else."""
    path = Path(path)
    where = printable(path)
    if not path.is_file():
        raise DataError(f"{where}: no such data file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a numpy warning about the file is a refusal, not a page of text
            with open(path, "rb") as fh:
                head = fh.read(len(NPY_MAGIC))
            if not head:
                raise DataError(f"{where}: the data file is empty")
            if head.startswith(NPY_MAGIC):
                raise DataError(f"{where}: is a single .npy array, not a .npz; save the data with "
                                f"numpy.savez(path, x=samples, y=labels)")
            if not head.startswith(ZIP_MAGIC):
                raise DataError(f"{where}: is not a .npz file (a zip of .npy arrays from numpy.savez)")
            with zipfile.ZipFile(path) as z:
                members = _members(z, where)
                if "x" not in members:
                    found = ", ".join(name(k) for k in members) or "none"
                    raise DataError(f"{where}: has no array named 'x' (found: {found})")
                x = _read(z, members["x"], where, max_bytes, "fiu")
                y = _read(z, members["y"], where, max_bytes, "iu") if "y" in members else None
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, Warning) as e:
        raise DataError(f"{where}: not a readable .npz file, truncated or corrupt "
                        f"({printable(type(e).__name__)}: {printable(e, 120)})") from None
    except MemoryError:
        raise DataError(f"{where}: not enough memory to load the data") from None
    _check_shapes(x, y, where)
    check_values(x, f"{where}: 'x'")
    return x, y


def _members(z: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """The arrays of a .npz by name (``x`` for ``x.npy``); any other member is refused."""
    out: dict[str, zipfile.ZipInfo] = {}
    for info in z.infolist():
        if info.is_dir() or not info.filename.endswith(".npy"):
            raise DataError(f"{where}: member '{name(info.filename)}' is not a .npy array (a .npz from "
                            f"numpy.savez holds only .npy members)")
        out[info.filename[:-4]] = info
    return out


def _read(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, max_bytes: int, kinds: str) -> np.ndarray:
    """One member, after its header: a numeric dtype of ``kinds``, a size the member
    holds and at most ``max_bytes``."""
    what = f"{where}: '{name(info.filename[:-4])}'"
    with z.open(info) as fh:
        version = npy.read_magic(fh)
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = reader(fh)
        header = fh.tell() if fh.seekable() else None
    if dtype.hasobject:
        raise DataError(f"{what} is an array of Python objects (pickled), which nnforge never loads")
    if dtype.kind not in kinds or dtype.names is not None or dtype.subdtype is not None:
        want = "integers" if kinds == "iu" else "real numbers (integer or float)"
        raise DataError(f"{what} has dtype {printable(dtype)}; it must hold {want}")
    if any(d < 0 for d in shape):
        raise DataError(f"{what}: the header announces a negative dimension in shape {shape}")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    held = info.file_size - (header or 0)
    if nbytes > held:
        raise DataError(f"{what}: the header announces {count} values of {dtype} ({_size(nbytes)}) but the member "
                        f"holds {_size(max(held, 0))}; the file is truncated or corrupt")
    if nbytes > max_bytes:
        raise DataError(f"{what} holds {count} values ({_size(nbytes)}), more than the {_size(max_bytes)} "
                        f"nnforge reads from one array")
    with z.open(info) as fh:
        return npy.read_array(fh, allow_pickle=False)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _check_shapes(x: np.ndarray, y: np.ndarray | None, where: str) -> None:
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"{where}: 'x' holds no samples (shape {x.shape})")
    if y is not None:
        if y.ndim != 1:
            raise DataError(f"{where}: labels 'y' must be a 1-D integer array, got {y.dtype} {y.shape}")
        if len(y) != len(x):
            raise DataError(f"{where}: {len(x)} samples in 'x' but {len(y)} labels in 'y'")


def check_values(x: np.ndarray, what: str = "input data") -> None:
    """Refuse NaN, infinities and values beyond float32's range (the float model runs in
    float32), naming ``what``, how many values and the first one's index."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return  # integers of any width fit float32's range
    limit = float(np.finfo(np.float32).max)
    with np.errstate(all="ignore"):
        bad = ~np.isfinite(x)
        kind = "NaN or infinite"
        if not bad.any():
            bad = np.abs(x) > limit
            kind = f"beyond float32's range (|v| > {limit:.4g})"
    n = int(np.count_nonzero(bad))
    if n:
        first = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), x.shape))
        raise DataError(f"{what}: {n} value{'s' * (n > 1)} {'are' if n > 1 else 'is'} {kind}, the first at index "
                        f"{list(first)} ({float(x[first])!r})")


def class_count(output_shape: tuple[int, ...]) -> int | None:
    """The number of classes of a model whose output per sample is a vector of class
    scores (one axis longer than 1), else None."""
    long = [d for d in output_shape if d != 1]
    return long[0] if len(long) == 1 else None


def check_labels(labels, n_samples: int, output_shape: tuple[int, ...], what: str = "labels") -> np.ndarray:
    """``labels`` as a 1-D int64 array of one class index per sample, refused (one line)
    when the count differs, the model's output is not a class vector, or a label lies
    outside ``[0, classes)``."""
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise DataError(f"{what}: class labels must be integers, got dtype {printable(y.dtype)}")
    y = y.reshape(-1)
    if len(y) != n_samples:
        raise DataError(f"{what}: {n_samples} samples but {len(y)} labels")
    classes = class_count(tuple(output_shape))
    if classes is None:
        raise DataError(f"{what}: labels were given but the model's output {tuple(output_shape)} per sample is not "
                        f"a vector of class scores")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{what}: {int(bad.sum())} label(s) outside the model's {classes} classes [0, {classes - 1}], "
                        f"the first at index {i} ({int(y[i])})")
    return y.astype(np.int64)
