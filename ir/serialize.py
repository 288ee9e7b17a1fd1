"""Save and load a :class:`Graph` as JSON (structure) plus a dict of arrays (constants)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .fixed import FixedType
from .floats import float_type, is_float
from .graph import Graph, Node


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
