"""Data files and the checks every sample array passes before nnforge computes with it.

A data file is a ``.npz`` (``numpy.savez``) holding ``x`` (N samples shaped like the
model input) and optional integer labels ``y`` (N,). :func:`load_npz` reads it as
untrusted input with :class:`nnforge.ir.serialize.NpzFile` (the reader of design arrays
too): a regular file, a zip of plain ``.npy`` members, each member's header checked (kind,
shape, size against what the member holds and against the limit) before any array is
allocated, object arrays never unpickled, and every failure one :class:`DataError` line
naming the file and the member.

The limit (:func:`data_limits`): :data:`MAX_ARRAY_BYTES` = 1 GiB per array, and an array
over 64 MiB packed more than :data:`MAX_RATIO` : 1 (a compression bomb) is refused;
``load_npz(max_bytes=N)`` or the environment variable ``NNFORGE_MAX_DATA_BYTES`` raise the
limit and lift the ratio check.

:func:`check_values` refuses NaN, infinities and values beyond float32 (the precision the
float model runs in), in blocks (no full-size temporaries); :func:`check_labels` refuses
labels outside the model's classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .ir.serialize import NpzFile
from .ir.text import name, printable

MAX_ARRAY_BYTES = 1 << 30  # the largest array read from a data file by default (bytes, once loaded)
MAX_RATIO = 64  # the largest compression ratio of an array over 64 MiB, at the default limit
LIMIT_ENV = "NNFORGE_MAX_DATA_BYTES"
CHECK_BLOCK = 1 << 20  # values checked at a time by check_values


class DataError(ValueError):
    """Input data does not fit the model."""


def data_limits(max_bytes: int | None = None) -> tuple[int, int | None]:
    """The bytes one array of a data file may hold and the compression ratio allowed
    (None: any): ``max_bytes`` when given, else ``$NNFORGE_MAX_DATA_BYTES``, else
    :data:`MAX_ARRAY_BYTES` with the ratio bounded by :data:`MAX_RATIO`. A limit raised
    above the default lifts the ratio check."""
    if max_bytes is None:
        env = os.environ.get(LIMIT_ENV, "").strip()
        if not env:
            return MAX_ARRAY_BYTES, MAX_RATIO
        try:
            max_bytes = int(env)
        except ValueError:
            raise DataError(f"{LIMIT_ENV}={printable(env, 40)} is not a number of bytes") from None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise DataError(f"the data limit must be a positive number of bytes, got {printable(repr(max_bytes), 40)}")
    return max_bytes, (None if max_bytes > MAX_ARRAY_BYTES else MAX_RATIO)


def load_npz(path: str | Path, max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (N, ...) and optional integer labels ``y`` (N,) from a ``.npz`` file; raises
    :class:`DataError` (one line) for anything else. ``max_bytes``: the largest array
    read (:func:`data_limits`)."""
    path = Path(path)
    where = printable(path)
    limit, ratio = data_limits(max_bytes)
    try:
        z = NpzFile(path, where, DataError, max_bytes=limit, max_ratio=ratio, follow_symlinks=True,
                    savez_hint="(path, x=samples, y=labels)",
                    limit_hint=f"to read it, raise the limit (load_npz(max_bytes=...) or {LIMIT_ENV})")
    except FileNotFoundError:
        raise DataError(f"{where}: no such data file") from None
    with z:
        if "x" not in z.members:
            found = ", ".join(name(k) for k in z.members) or "none"
            raise DataError(f"{where}: has no array named 'x' (found: {found})")
        x = z.read("x", "fiu")
        y = z.read("y", "iu") if "y" in z.members else None
    _check_shapes(x, y, where)
    check_values(x, f"{where}: 'x'")
    return x, y


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
    float32), naming ``what``, how many values and the first one's index; checked
    :data:`CHECK_BLOCK` values at a time."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        return  # integers of any width fit float32's range
    limit = float(np.finfo(np.float32).max)
    flat = x.reshape(-1) if x.flags.c_contiguous else None  # else blocks are copied from x.flat
    counts, first = [0, 0], [None, None]  # NaN or infinite; beyond float32
    with np.errstate(all="ignore"):
        for start in range(0, x.size, CHECK_BLOCK):
            block = flat[start:start + CHECK_BLOCK] if flat is not None else x.flat[start:start + CHECK_BLOCK]
            nonfinite = ~np.isfinite(block)
            beyond = (np.abs(block) > limit) & ~nonfinite
            for k, bad in enumerate((nonfinite, beyond)):
                n = int(np.count_nonzero(bad))
                if n:
                    counts[k] += n
                    if first[k] is None:
                        first[k] = start + int(np.argmax(bad))
    k = 0 if counts[0] else 1
    n = counts[k]
    if n:
        kind = "NaN or infinite" if k == 0 else f"beyond float32's range (|v| > {limit:.4g})"
        at = tuple(int(i) for i in np.unravel_index(first[k], x.shape))
        raise DataError(f"{what}: {n} value{'s' * (n > 1)} {'are' if n > 1 else 'is'} {kind}, the first at index "
                        f"{list(at)} ({float(x[at])!r})")


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


def as_batch(x, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a float32 batch ``(N, *shape)``; one sample of ``shape`` becomes N = 1."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DataError(f"input data must be numeric, got dtype {x.dtype}")
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(shape):
        want = ", ".join(["N", *map(str, shape)])
        raise DataError(f"input data has shape {tuple(x.shape)}, the model needs ({want})")
    if len(x) == 0:
        raise DataError(f"input data holds no samples (shape {tuple(x.shape)})")
    check_values(x)
    return x.astype(np.float32)
