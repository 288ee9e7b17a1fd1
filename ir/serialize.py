"""Save and load a :class:`Graph` as JSON (structure) plus a dict of arrays (constants).

A design file is data from outside: :func:`check_graph_dict` checks its structure against
the schema (every key, every type, every op known, shapes and types in range) and
:func:`read_arrays` reads the arrays file with every member's size checked from its
header before anything is read; both raise :class:`DesignFileError` with one line.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npy

from .fixed import FixedType
from .floats import FORMATS, float_type, is_float
from .graph import Graph, GraphError, Node
from .text import name as _name, printable

MAX_ELEMENTS = 1 << 28  # elements of one tensor of a design file, and of all its arrays together
MAX_FRAC = 256  # |fractional bits| of a fixed-point type
MAX_DEPTH = 32  # nesting of JSON values in attributes and metadata
INT_LIMIT = 1 << 62  # |integer| in a design file (the IR computes in int64)
# integer attributes the IR bounds: (lowest, highest) of the value or of each value of a list
ATTR_RANGES: dict[str, tuple[int, int]] = {
    "acc_width": (0, 62), "rq_shift": (-2 * MAX_FRAC, 2 * MAX_FRAC), "mult_frac": (0, MAX_FRAC),
    "transB": (0, 1), "groups": (1, MAX_ELEMENTS), "size": (1, MAX_ELEMENTS), "strides": (1, MAX_ELEMENTS),
    "dilations": (1, MAX_ELEMENTS), "kernel_shape": (1, MAX_ELEMENTS), "pads": (0, MAX_ELEMENTS),
    "axis": (-16, 15), "perm": (0, 15), "shape": (-1, MAX_ELEMENTS),
}
GRAPH_KEYS = ("name", "inputs", "outputs", "meta", "tensors", "consts", "nodes")
NODE_KEYS = ("name", "op", "inputs", "outputs", "attrs")


class DesignFileError(ValueError):
    """A design file that does not follow the schema (one line for the user)."""


def _qt(t: FixedType | None):
    if t is None:
        return None
    if is_float(t):
        return ["float", t.fmt]
    if t.bounds is None and not t.zero and not t.real_scale:
        return [t.width, t.frac, t.signed]
    return [t.width, t.frac, t.signed, None if t.bounds is None else list(t.bounds), t.zero, t.real_scale]


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def _from_json(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_from_json(x) for x in v)
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    return v


def to_dict(g: Graph, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """JSON-able structure, and the constants keyed ``prefix/<i>``."""
    arrays, const_keys = {}, {}
    for i, (name, value) in enumerate(g.consts.items()):
        key = f"{prefix}/{i}"
        arrays[key] = value
        const_keys[name] = key
    d = {
        "name": g.name,
        "inputs": list(g.inputs),
        "outputs": list(g.outputs),
        "meta": _jsonable(g.meta),
        "tensors": {n: {"shape": list(t.shape), "qtype": _qt(t.qtype)} for n, t in g.tensors.items()},
        "consts": const_keys,
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": list(n.inputs), "outputs": list(n.outputs),
             "attrs": _jsonable(dict(n.attrs))}
            for n in g.topo()
        ],
    }
    return d, arrays


def from_dict(d: dict, arrays) -> Graph:
    g = Graph(d["name"])
    for name in d["inputs"]:
        g.add_input(name, d["tensors"][name]["shape"])
    for name, key in d["consts"].items():
        g.add_const(name, np.asarray(arrays[key]))
    for nd in d["nodes"]:
        shapes = [tuple(d["tensors"][t]["shape"]) for t in nd["outputs"]]
        g.add_node(Node(nd["name"], nd["op"], nd["inputs"], nd["outputs"], _from_json(nd["attrs"])), shapes)
    g.outputs = list(d["outputs"])
    g.meta = dict(d["meta"])
    for name, t in d["tensors"].items():
        if t["qtype"] is not None and name in g.tensors:
            q = t["qtype"]
            g.set_qtype(name, float_type(q[1]) if q[0] == "float" else FixedType(*q))
    g.verify()
    return g


# ---- checking a design file --------------------------------------------------------------

def _fail(where: str, what: str) -> DesignFileError:
    return DesignFileError(f"{where}: {what}")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def check_keys(d: Any, keys: tuple[str, ...], where: str) -> dict:
    """``d`` is an object with exactly ``keys``."""
    if not isinstance(d, dict):
        raise _fail(where, f"expected an object, got {type(d).__name__}")
    if set(d) != set(keys):
        extra, missing = sorted(set(d) - set(keys)), sorted(set(keys) - set(d))
        parts = ([f"unknown keys {', '.join(_name(k) for k in extra)}"] if extra else []) + (
            [f"missing keys {', '.join(missing)}"] if missing else [])
        raise _fail(where, "; ".join(parts))
    return d


def check_type(v: Any, ok, what: str, where: str) -> Any:
    if not ok(v):
        raise _fail(where, f"expected {what}, got {_name(repr(v)[:60])}")
    return v


def _str_list(v: Any, where: str) -> list[str]:
    check_type(v, lambda x: isinstance(x, list) and all(isinstance(s, str) for s in x), "a list of names", where)
    return v


def check_depth(v: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """A JSON value nested at most ``limit`` deep, holding only JSON types."""
    stack = [(v, 0)]
    while stack:
        x, depth = stack.pop()
        if depth > limit:
            raise _fail(where, f"nested more than {limit} deep")
        if isinstance(x, dict):
            stack += [(k, depth + 1) for k in x] + [(y, depth + 1) for y in x.values()]
        elif isinstance(x, list):
            stack += [(y, depth + 1) for y in x]
        elif isinstance(x, float) and not math.isfinite(x):
            raise _fail(where, "holds a value that is not finite")
        elif not (x is None or isinstance(x, (str, bool, int, float))):
            raise _fail(where, f"holds a {type(x).__name__}")


def check_shape(v: Any, where: str) -> tuple[int, ...]:
    check_type(v, lambda s: isinstance(s, list) and len(s) <= 16 and all(is_int(d) and d >= 0 for d in s),
               "a shape (a list of at most 16 non-negative integers)", where)
    n = math.prod(v)
    if n > MAX_ELEMENTS:
        raise _fail(where, f"shape {v} has {n} elements, more than the limit of {MAX_ELEMENTS}")
    return tuple(v)


def check_qtype(q: Any, where: str) -> None:
    if q is None:
        return
    if isinstance(q, list) and len(q) == 2 and q[0] == "float":
        check_type(q[1], lambda f: f in FORMATS, f"a float format ({', '.join(FORMATS)})", where)
        return
    ok = isinstance(q, list) and len(q) in (3, 6) and is_int(q[0]) and is_int(q[1]) and isinstance(q[2], bool)
    if ok and len(q) == 6:
        b = q[3]
        ok = ((b is None or (isinstance(b, list) and len(b) == 2 and all(is_int(x) for x in b)))
              and is_int(q[4]) and is_number(q[5]))
    if not ok:
        raise _fail(where, f"expected a type [width, frac, signed(, bounds, zero, scale)], got {_name(repr(q)[:60])}")
    big = len(q) == 6 and any(abs(x) >= INT_LIMIT for x in [q[4], *(q[3] or ())])
    if not 1 <= q[0] <= 62 or abs(q[1]) > MAX_FRAC or big or (len(q) == 6 and q[5] < 0):
        raise _fail(where, f"type {_name(repr(q)[:120])} out of range (width 1..62, |frac| <= {MAX_FRAC}, "
                           f"|zero| and |bounds| < 2^62, scale >= 0)")
    try:
        FixedType(*q)
    except (ValueError, TypeError) as e:
        raise _fail(where, str(e)) from None


def _attr_ok(default: Any, v: Any) -> bool:
    """An attribute value of the kind its schema default has (None: any JSON value)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(v, bool)
    if isinstance(default, str):
        return isinstance(v, str)
    if isinstance(default, tuple):
        return isinstance(v, list)
    if isinstance(default, (int, float)):
        return is_number(v) or (isinstance(v, list) and all(is_number(x) for x in v))
    return False


def _int_text(x: int) -> str:
    return str(x) if abs(x) < 1 << 64 else f"a {x.bit_length()}-bit integer"


def check_attr_range(key: str, v: Any) -> str | None:
    """What is wrong with the integers of the attribute ``key`` (each within
    :data:`ATTR_RANGES` for the attributes the IR bounds, else within int64's +-2^62), or None."""
    lo, hi = ATTR_RANGES.get(key, (1 - INT_LIMIT, INT_LIMIT - 1))
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack += x
        elif isinstance(x, dict):
            stack += list(x.values())
        elif is_int(x) and not lo <= x <= hi:
            return f"attribute {key} holds {_int_text(x)}, outside [{_int_text(lo)}, {_int_text(hi)}]"
    return None


def check_node(nd: Any, where: str) -> None:
    from .ops import OPS

    check_keys(nd, NODE_KEYS, where)
    check_type(nd["name"], lambda x: isinstance(x, str), "a node name", where + ".name")
    where = f"{where} ({_name(nd['name'])})"
    check_type(nd["op"], lambda x: isinstance(x, str), "an op name", where)
    if nd["op"] not in OPS:
        raise _fail(where, f"unknown op {_name(nd['op'])}")
    _str_list(nd["inputs"], where + " inputs")
    _str_list(nd["outputs"], where + " outputs")
    attrs = check_type(nd["attrs"], lambda x: isinstance(x, dict), "an object of attributes", where)
    check_depth(attrs, where + " attributes")
    schema = OPS[nd["op"]].ATTRS
    for k, v in attrs.items():
        if k not in schema:
            raise _fail(where, f"unknown attribute {_name(k)} of {nd['op']}")
        if not _attr_ok(schema[k], v):
            raise _fail(where, f"attribute {k} of {nd['op']} has the wrong type ({type(v).__name__})")
        bad = check_attr_range(k, v)
        if bad:
            raise _fail(where, f"{bad} ({nd['op']})")


def check_graph_dict(d: Any, where: str) -> dict[str, str]:
    """Check the structure of a graph as :func:`to_dict` writes it; returns its constants
    (tensor name -> array key)."""
    check_keys(d, GRAPH_KEYS, where)
    check_type(d["name"], lambda x: isinstance(x, str), "a graph name", where + ".name")
    tensors = check_type(d["tensors"], lambda x: isinstance(x, dict), "an object of tensors", where + ".tensors")
    for t, info in tensors.items():
        tw = f"{where}.tensors[{_name(t)}]"
        check_keys(info, ("shape", "qtype"), tw)
        check_shape(info["shape"], tw + ".shape")
        check_qtype(info["qtype"], tw + ".qtype")
    consts = check_type(d["consts"], lambda x: isinstance(x, dict) and all(isinstance(v, str) for v in x.values()),
                        "an object of array keys", where + ".consts")
    nodes = check_type(d["nodes"], lambda x: isinstance(x, list), "a list of nodes", where + ".nodes")
    for i, nd in enumerate(nodes):
        check_node(nd, f"{where}.nodes[{i}]")
    check_depth(d["meta"], where + ".meta")
    check_type(d["meta"], lambda x: isinstance(x, dict), "an object", where + ".meta")
    named = [*_str_list(d["inputs"], where + ".inputs"), *_str_list(d["outputs"], where + ".outputs"), *consts]
    named += [t for nd in nodes for t in (*nd["inputs"], *nd["outputs"])]
    for t in named:
        if t not in tensors:
            raise _fail(where, f"tensor {_name(t)} is used but not described in tensors")
    return dict(consts)


def graph_from_checked(d: dict, arrays: dict[str, np.ndarray], where: str) -> Graph:
    """:func:`from_dict` on a checked structure, with every array checked against the
    shape its tensor declares; a graph that does not hold together is refused."""
    for t, key in d["consts"].items():
        a = arrays.get(key)
        if a is None:
            raise _fail(where, f"array {_name(key)} for constant {_name(t)} is missing")
        want = tuple(d["tensors"][t]["shape"])
        if a.shape != want:
            raise _fail(where, f"array {_name(key)} for constant {_name(t)} has shape {list(a.shape)}, "
                               f"the design says {list(want)}")
        if a.dtype.kind not in "biuf":
            raise _fail(where, f"array {_name(key)} for constant {_name(t)} has dtype {a.dtype}, not a number")
        if d["tensors"][t]["qtype"] is not None and a.dtype.kind not in "biu":
            raise _fail(where, f"array {_name(key)} for constant {_name(t)} holds {a.dtype} values; "
                               f"its tensor is an integer type")
    try:
        return from_dict(d, arrays)
    except (GraphError, ValueError, KeyError, TypeError, IndexError, ZeroDivisionError) as e:
        msg = " ".join(str(e).split())
        raise _fail(where, f"not a valid graph ({type(e).__name__}: {msg[:300]})") from None


def read_arrays(path, max_elements: int = MAX_ELEMENTS) -> dict[str, np.ndarray]:
    """The arrays of a design's ``.npz`` (:class:`NpzFile`, never following a symbolic
    link): ``.npy`` members of numbers only, every member's size checked from its header
    against what it holds and all of them together against ``max_elements`` before any
    is read."""
    where = printable(path)
    with NpzFile(path, where, DesignFileError, max_bytes=max_elements * 16) as z:
        total = 0
        for key in z.members:
            n = z.header(key, "biuf").count
            total += n
            if total > max_elements:
                raise DesignFileError(f"{where}: '{_name(key)}' announces {n} values; the arrays of a design may "
                                      f"hold {max_elements} in all")
        return {key: z.read(key, "biuf") for key in z.members}


# ---- reading the files of a folder that came from elsewhere -------------------------------

def open_regular(path, error: type[ValueError] = DesignFileError, follow_symlinks: bool = False):
    """``path`` opened for reading (binary), or ``error`` (one line) unless it is a regular
    file: opened without blocking and checked on the descriptor, so a FIFO or a device
    never hangs the reader; without ``follow_symlinks`` a symbolic link is refused too.
    A missing file raises :class:`FileNotFoundError`."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise error(f"{printable(path)}: is a symbolic link; refused") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise error(f"{printable(path)}: is {kind}, not a regular file; refused")
    return os.fdopen(fd, "rb")


def load_json(path, what: str, max_bytes: int, error: type[ValueError] = DesignFileError, shown=None):
    """A JSON file of an output folder, parsed: a regular file (:func:`open_regular`) of at
    most ``max_bytes`` (checked before reading), not nested deeper than Python's recursion
    allows, no number longer than Python converts; else ``error`` with one line naming
    ``shown`` (default ``path``)."""
    where = printable(path if shown is None else shown)
    with open_regular(path, error) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise error(f"{where}: {size} bytes, more than the {max_bytes >> 20} MiB {what} may have")
        raw = f.read(max_bytes + 1)
    try:
        return json.loads(raw)
    except RecursionError:
        raise error(f"{where}: nested too deep to be {what}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{where}: not valid JSON ({' '.join(str(e).split())[:160]})") from None
    except ValueError as e:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise error(f"{where}: holds a number too long to read ({str(e).split(';')[0][:160]})") from None


# ---- .npz files: one reader for design arrays and data files ------------------------------

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what numpy.savez / savez_compressed write
RATIO_FREE = 64 << 20  # arrays up to this size (bytes) are read whatever their compression ratio
READ_BLOCK = 16 << 20  # bytes read from a member at a time
_WANT = {"iu": "integers", "fiu": "real numbers (integer or float)", "biuf": "numbers"}


def size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class NpyHeader(NamedTuple):
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int  # bytes of the member before the data

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


class NpzFile:
    """A ``.npz`` (a zip of ``.npy`` members, as :func:`numpy.savez` writes) read as
    untrusted input; every failure is ``error`` with one line starting with ``where``.

    Opening checks the file (a regular file, :func:`open_regular`; a zip, not a bare
    ``.npy``, not empty) and every member (an ``.npy`` name, once, not encrypted, stored
    or deflated). :meth:`header` checks a member's ``.npy`` header: a numeric dtype of the
    kinds asked for (never Python objects), data exactly the size the header announces,
    at most ``max_bytes``, and, with ``max_ratio``, an array over :data:`RATIO_FREE`
    packed no more than ``max_ratio`` : 1 (a compression bomb); ``limit_hint`` says how to
    raise the limits. :meth:`read` reads a checked member in blocks, CRC included."""

    def __init__(self, path, where: str, error: type[ValueError] = DesignFileError, *, max_bytes: int,
                 max_ratio: int | None = None, follow_symlinks: bool = False, savez_hint: str = "",
                 limit_hint: str = "") -> None:
        self.where, self.error, self.max_bytes, self.max_ratio = where, error, max_bytes, max_ratio
        self.limit_hint = limit_hint
        self._zip = None
        self._fh = open_regular(path, error, follow_symlinks)
        try:
            head = self._fh.read(len(NPY_MAGIC))
            self._fh.seek(0)
            if not head:
                raise error(f"{where}: the file is empty")
            if head.startswith(NPY_MAGIC):
                raise error(f"{where}: is a single .npy array, not a .npz; save the arrays with numpy.savez"
                            f"{savez_hint}")
            if not head.startswith(ZIP_MAGIC):
                raise error(f"{where}: is not a .npz file (a zip of .npy arrays from numpy.savez)")
            with self._mapped():
                self._zip = zipfile.ZipFile(self._fh)
                self.members = self._members(self._zip.infolist())
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "NpzFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self._fh.close()

    @contextmanager
    def _mapped(self):
        """Every error of zipfile, zlib and numpy on a bad file as one ``error`` line."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a numpy warning about the file is a refusal
                yield
        except self.error:
            raise
        except MemoryError:
            raise self.error(f"{self.where}: not enough memory to read it") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
                Warning) as e:
            raise self.error(f"{self.where}: not a readable .npz file, truncated or corrupt "
                             f"({type(e).__name__}: {printable(' '.join(str(e).split()), 160)})") from None

    def _members(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        out: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            label = f"{self.where}: member '{_name(info.filename)}'"
            if info.is_dir() or not info.filename.endswith(".npy"):
                raise self.error(f"{label} is not a .npy array (a .npz from numpy.savez holds only .npy members)")
            if info.flag_bits & 0x1:
                raise self.error(f"{label} is encrypted; nnforge reads only unencrypted .npz files")
            if info.compress_type not in ZIP_METHODS:
                raise self.error(f"{label} uses zip compression method {info.compress_type}; nnforge reads "
                                 f"stored or deflated members (what numpy.savez writes)")
            key = info.filename[:-4]
            if key in out:
                raise self.error(f"{label} appears twice")
            out[key] = info
        return out

    def _what(self, key: str) -> str:
        return f"{self.where}: '{_name(key)}'"

    def header(self, key: str, kinds: str) -> NpyHeader:
        """The checked header of the array ``key`` (member ``key.npy``)."""
        with self._mapped(), self._zip.open(self.members[key]) as fh:
            return self._header(fh, key, kinds)

    def read(self, key: str, kinds: str) -> np.ndarray:
        """The array ``key`` after :meth:`header`'s checks, read in blocks."""
        info, what = self.members[key], self._what(key)
        with self._mapped(), self._zip.open(info) as fh:
            h = self._header(fh, key, kinds)
            a = np.empty(h.count, h.dtype)
            buf = memoryview(a.view(np.uint8).reshape(-1))
            done = 0
            while done < len(buf):
                n = fh.readinto(buf[done:done + READ_BLOCK])
                if not n:
                    raise self.error(f"{what}: the member ends after {done} of {len(buf)} bytes; the file is "
                                     f"truncated or corrupt")
                done += n
            if fh.read(1):  # at the end: zipfile has checked the CRC
                raise self.error(f"{what}: the member holds more than its header announces; the file is corrupt")
        return a.reshape(h.shape[::-1]).transpose() if h.fortran else a.reshape(h.shape)

    def _header(self, fh, key: str, kinds: str) -> NpyHeader:
        info, what = self.members[key], self._what(key)
        try:
            version = npy.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"npy format version {version}")
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran, dtype = reader(fh)
        except (ValueError, EOFError, TypeError, SyntaxError) as e:
            raise self.error(f"{what} is not a valid .npy array ({printable(' '.join(str(e).split()), 160)})") from None
        h = NpyHeader(tuple(int(d) for d in shape), bool(fortran), dtype, fh.tell())
        if dtype.hasobject:
            raise self.error(f"{what} is an array of Python objects (pickled), which nnforge never loads")
        if dtype.kind not in kinds or dtype.names is not None or dtype.subdtype is not None:
            raise self.error(f"{what} has dtype {printable(dtype)}; it must hold {_WANT.get(kinds, 'numbers')}")
        if any(d < 0 for d in h.shape):
            raise self.error(f"{what}: the header announces a negative dimension in shape {h.shape}")
        held = info.file_size - h.offset
        if h.nbytes > held:
            raise self.error(f"{what}: the header announces {h.count} values of {dtype} ({size_text(h.nbytes)}) "
                             f"but the member holds {size_text(max(held, 0))}; the file is truncated or corrupt")
        if h.nbytes < held:
            raise self.error(f"{what}: the member holds {held} bytes of data, its header announces "
                             f"{h.nbytes}; the file is corrupt")
        if h.nbytes > self.max_bytes:
            raise self.error(f"{what} holds {h.count} values ({size_text(h.nbytes)}), more than the "
                             f"{size_text(self.max_bytes)} nnforge reads from one array" + (
                                 f"; {self.limit_hint}" if self.limit_hint else ""))
        packed = max(info.compress_size, 1)
        if self.max_ratio and h.nbytes > RATIO_FREE and h.nbytes > self.max_ratio * packed:
            raise self.error(f"{what} unpacks {size_text(packed)} into {size_text(h.nbytes)} "
                             f"({h.nbytes // packed}:1), more than the {self.max_ratio}:1 nnforge accepts for an "
                             f"array over {size_text(RATIO_FREE)} (a compression bomb?)"
                             + (f"; {self.limit_hint}" if self.limit_hint else ""))
        return h
