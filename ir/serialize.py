"""Save and load a :class:`Graph` as JSON (structure) plus a dict of arrays (constants).

A design file is data from outside: :func:`check_graph_dict` checks its structure against
the schema (every key, every type, every op known, shapes and types in range) and
:func:`read_arrays` reads the arrays file with every member's size checked from its
header before anything is read; both raise :class:`DesignFileError` with one line.
"""

from __future__ import annotations

import math
import zipfile
from typing import Any

import numpy as np

from .fixed import FixedType
from .floats import FORMATS, float_type, is_float
from .graph import Graph, GraphError, Node
from .text import name as _name

MAX_ELEMENTS = 1 << 28  # elements of one tensor of a design file, and of all its arrays together
MAX_FRAC = 256  # |fractional bits| of a fixed-point type
MAX_DEPTH = 32  # nesting of JSON values in attributes and metadata
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
    if not 1 <= q[0] <= 62 or abs(q[1]) > MAX_FRAC or (len(q) == 6 and (abs(q[4]) >= 1 << 62 or q[5] < 0)):
        raise _fail(where, f"type {q} out of range (width 1..62, |frac| <= {MAX_FRAC}, |zero| < 2^62, scale >= 0)")
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
    """The arrays of a design's ``.npz``: a zip of ``.npy`` members only, no pickled or
    object arrays, every member's size checked from its header against ``max_elements``
    (in all) and against the member's own length before it is read."""
    if not zipfile.is_zipfile(path):
        raise DesignFileError(f"{path}: not an .npz (zip) file")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            total = 0
            for m in members:
                if not m.filename.endswith(".npy") or m.is_dir():
                    raise DesignFileError(f"{path}: member {_name(m.filename)} is not an .npy array")
                with zf.open(m) as f:
                    shape, dtype = _npy_header(f, m, path)
                    n = math.prod(shape)
                    total += n
                    if total > max_elements:
                        raise DesignFileError(f"{path}: member {_name(m.filename)} announces {n} elements; the "
                                              f"arrays of a design may hold {max_elements} in all")
                    if n * dtype.itemsize > m.file_size:
                        raise DesignFileError(f"{path}: member {_name(m.filename)} announces {n} elements of "
                                              f"{dtype} but holds only {m.file_size} bytes")
                with zf.open(m) as f:
                    out[m.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    except DesignFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as e:
        raise DesignFileError(f"{path}: not a readable .npz file ({' '.join(str(e).split())[:200]})") from None
    return out


def _npy_header(f, m: zipfile.ZipInfo, path) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy format version {version}")
    except (ValueError, EOFError, TypeError, SyntaxError) as e:
        raise DesignFileError(f"{path}: member {_name(m.filename)} is not a valid .npy array "
                              f"({' '.join(str(e).split())[:160]})") from None
    if dtype.hasobject:
        raise DesignFileError(f"{path}: member {_name(m.filename)} holds Python objects (dtype {dtype}); refused")
    if dtype.kind not in "biuf":
        raise DesignFileError(f"{path}: member {_name(m.filename)} has dtype {dtype}, not a number")
    return tuple(int(d) for d in shape), dtype
