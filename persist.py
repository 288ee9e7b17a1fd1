"""A design on disk: ``design.json`` (both graphs, the quantization config, the source and
what compression did) and ``design_arrays.npz`` (every constant), written by
:func:`save` and read back, checked as a file from elsewhere, by :func:`load`.

The config is written and read in one place, :func:`config_to_dict` /
:func:`config_from_dict`, whose schema is the fields of :class:`QuantConfig`: an ``int``,
``bool`` or ``str`` field is that JSON value, a tuple of pairs a list of ``[name, value]``
lists. The report's view of it (:func:`report_quantization`) is derived from the same dict.
A field added after the format was fixed (:data:`CONFIG_DEFAULTS`) may be absent: an older
design.json loads with its default.
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .codegen.mcu import mcu
from .ir import Graph
from .ir.serialize import (DesignFileError, check_depth, check_graph_dict, check_keys, check_type,
                           graph_from_checked, is_int, load_json, read_arrays, to_dict)
from .ir.text import name as pname
from .passes import QuantConfig
from .sim.files import MARKER, modified_files, read_manifest

FORMAT_VERSION = 1
MAX_DESIGN_JSON = 64 << 20  # bytes of design.json read at most
DESIGN_KEYS = ("format", "source", "config", "float_graph", "quantized_graph", "compression")
OPTIONAL_KEYS = ("training",)  # absent in a design.json of a design never fine-tuned
DESIGN_FILES = ("design.json", "design_arrays.npz")  # what load reads
FLOAT_FORMATS = ("", "fp16", "bf16")
REPORT_NAMES = {"overrides": "calibration_overrides"}  # report.json's names where they differ
REPORT_SKIPS = ("float_format", "neuzip", "mcu")  # in design.json, not in report.json's quantization
# config fields newer than the format: a design.json without one loads with this value
CONFIG_DEFAULTS = {"mcu": "generic"}


# ---- the config ----------------------------------------------------------------------

def _field_kinds() -> dict[str, object]:
    """Each field of :class:`QuantConfig` and its type (``int``, ``bool``, ``str``, or the
    second member's type of a tuple of pairs, as ``(pair, T)``)."""
    hints = typing.get_type_hints(QuantConfig)
    kinds: dict[str, object] = {}
    for f in fields(QuantConfig):
        t = hints[f.name]
        if typing.get_origin(t) is tuple:  # tuple[tuple[str, T], ...]
            kinds[f.name] = ("pair", typing.get_args(typing.get_args(t)[0])[1])
        else:
            kinds[f.name] = t
    return kinds


def config_to_dict(cfg: QuantConfig) -> dict:
    """The config as JSON values, in the order of its fields."""
    kinds = _field_kinds()
    return {k: [list(p) for p in getattr(cfg, k)] if isinstance(kind, tuple) else getattr(cfg, k)
            for k, kind in kinds.items()}


_CHECKS = {int: (is_int, "an integer"), bool: (lambda x: isinstance(x, bool), "true or false"),
           str: (lambda x: isinstance(x, str), "a string")}


def config_from_dict(cfg, where: str) -> QuantConfig:
    """The ``config`` object of design.json as a :class:`QuantConfig`: exactly its fields,
    each of its type, values as QuantConfig allows them."""
    kinds = _field_kinds()
    if isinstance(cfg, dict):
        cfg = {**{k: v for k, v in CONFIG_DEFAULTS.items() if k not in cfg}, **cfg}
    check_keys(cfg, tuple(kinds), where)
    for k, v in cfg.items():
        kind = kinds[k]
        if isinstance(kind, tuple):
            second = _CHECKS[kind[1]][0]
            check_type(v, lambda x: isinstance(x, list) and all(
                isinstance(o, list) and len(o) == 2 and isinstance(o[0], str) and second(o[1]) for o in x),
                "a list of [name, value] pairs", f"{where}.{k}")
        else:
            ok, what = _CHECKS[kind]
            check_type(v, ok, what, f"{where}.{k}")
    if cfg["float_format"] not in FLOAT_FORMATS:
        raise DesignFileError(f"{where}.float_format: unknown float format {pname(cfg['float_format'])}")
    try:
        mcu(cfg["mcu"])  # a name of the table, or a ValueError listing them
        if cfg["neuzip"]:
            from .passes.floatfmt import parse_neuzip

            parse_neuzip(cfg["neuzip"])
        return QuantConfig(**{k: tuple(map(tuple, v)) if isinstance(kinds[k], tuple) else v
                              for k, v in cfg.items()})
    except ValueError as e:
        raise DesignFileError(f"{where}: {pname(' '.join(str(e).split()))}") from None


def report_quantization(cfg: QuantConfig, mixed=None) -> dict:
    """``report.json``'s ``quantization``: the saved config with its pairs as objects,
    and the mixed-precision search (if one ran)."""
    out = {REPORT_NAMES.get(k, k): dict(map(tuple, v)) if isinstance(v, list) else v
           for k, v in config_to_dict(cfg).items() if k not in REPORT_SKIPS}
    out["mixed_precision"] = mixed.as_dict() if mixed else None
    return out


# ---- design.json and design_arrays.npz -----------------------------------------------

@dataclass
class Saved:
    """What a design folder holds."""

    float_graph: Graph
    qgraph: Graph
    config: QuantConfig
    source: str
    compression: list[dict]
    modified: list[str]  # design files that differ from the folder's manifest
    training: list[dict]  # the fine-tuning runs that made it (train.loop records)


def save(folder, float_graph: Graph, qgraph: Graph, config: QuantConfig, source: str,
         compression: list[dict], training: list[dict] | None = None) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, farrays = to_dict(float_graph, "float")
    qd, qarrays = to_dict(qgraph, "quant")
    doc = {"format": FORMAT_VERSION, "source": source, "config": config_to_dict(config),
           "float_graph": fd, "quantized_graph": qd, "compression": compression}
    if training:
        doc["training"] = training
    np.savez_compressed(folder / "design_arrays.npz", **farrays, **qarrays)
    (folder / "design.json").write_text(json.dumps(doc, indent=1) + "\n")


def load(folder) -> Saved:
    """The design saved in ``folder``, checked on the way in (see :meth:`Design.load`)."""
    folder = Path(folder)
    path = folder / "design.json"
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{folder} is not an nnforge output folder (no design.json)")
    modified = modified_design_files(folder)  # checked before anything is read
    doc = read_design_json(path)
    consts = {g: check_graph_dict(doc[g], f"{path}: {g}") for g in ("float_graph", "quantized_graph")}
    config = config_from_dict(doc["config"], f"{path}: config")
    arrays = read_arrays(folder / "design_arrays.npz")
    keys = {k for c in consts.values() for k in c.values()}
    extra = sorted(set(arrays) - keys)
    if extra:
        raise DesignFileError(f"{pname(folder / 'design_arrays.npz')}: unexpected arrays "
                              f"{', '.join(map(pname, extra[:5]))} (the design refers to {len(keys)})")
    fg = graph_from_checked(doc["float_graph"], arrays, f"{path}: float_graph")
    qg = graph_from_checked(doc["quantized_graph"], arrays, f"{path}: quantized_graph")
    return Saved(fg, qg, config, doc["source"], list(doc["compression"]), modified, list(doc.get("training", [])))


def read_json(path: Path, what: str):
    """A JSON file of an output folder, parsed (:func:`nnforge.ir.serialize.load_json`): a
    regular file of at most ``MAX_DESIGN_JSON`` bytes, not nested too deep, no integer
    longer than Python converts; else one line naming the file."""
    return load_json(path, what, MAX_DESIGN_JSON)


def read_design_json(path: Path) -> dict:
    """``design.json`` parsed and its top level checked (size limit before parsing; deep
    nesting refused)."""
    doc = read_json(path, "a design file")
    optional = tuple(k for k in OPTIONAL_KEYS if isinstance(doc, dict) and k in doc)
    check_keys(doc, DESIGN_KEYS + optional, str(path))
    if not is_int(doc["format"]) or doc["format"] != FORMAT_VERSION:
        raise DesignFileError(f"{path}: unknown format {pname(repr(doc['format'])[:40])} (nnforge reads {FORMAT_VERSION})")
    check_type(doc["source"], lambda v: isinstance(v, str), "a string", f"{path}: source")
    for key in ("compression", *optional):  # the records: lists of objects
        check_type(doc[key], lambda v: isinstance(v, list) and all(isinstance(c, dict) for c in v),
                   "a list of objects", f"{path}: {key}")
        check_depth(doc[key], f"{path}: {key}")
    return doc


def modified_design_files(folder: Path) -> list[str]:
    """The design files (:data:`DESIGN_FILES`) of an output folder that differ from its
    manifest: edited, not regular files, missing, or present but not listed; [] for a
    folder without a marker (written by :func:`save`)."""
    if not os.path.lexists(folder / MARKER):
        return []
    files = read_manifest(folder)
    unlisted = [f for f in DESIGN_FILES if f not in files and os.path.lexists(folder / f)]
    return unlisted + modified_files(folder, {f: files[f] for f in DESIGN_FILES if f in files})


def file_list(files: list[str], shown: int = 8) -> str:
    return ", ".join(map(pname, files[:shown])) + (" ..." if len(files) > shown else "")


# ---- report.json's precision ---------------------------------------------------------

_NUM_OR_NONE = ("a number or null", lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
_STR = ("a string", lambda v: isinstance(v, str))
_REPORT_LAYER = {"name": _STR, "op": _STR, "input": _STR, "output": _STR, "sqnr_db": _NUM_OR_NONE,
                 "sqnr_in_db": _NUM_OR_NONE}
_REPORT_LAYER_OPTIONAL = {"weights": _STR, "acc_width": ("an integer 0..62 or a string",
                                                          lambda v: (is_int(v) and 0 <= v <= 62) or isinstance(v, str))}
_PRECISION = {"samples": ("an integer >= 0", lambda v: is_int(v) and 0 <= v < 1 << 62),
              "layers": ("a list", lambda v: isinstance(v, list)),
              "output_sqnr_db": _NUM_OR_NONE,
              "worst_layer": ("a string or null", lambda v: v is None or isinstance(v, str)),
              "worst_drop_db": _NUM_OR_NONE}


def read_report_precision(path: Path) -> dict | None:
    """The precision report (``precision``) of an output folder's ``report.json``, or None
    when there is none: only the fields the report prints, each checked for its type and
    every name made printable; anything else raises :class:`DesignFileError` (one line)."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    doc = read_json(path, "a report")
    check_type(doc, lambda v: isinstance(v, dict), "an object", str(path))
    prec = doc.get("precision")
    if prec is None:
        return None
    where = f"{path}: precision"
    check_type(prec, lambda v: isinstance(v, dict), "an object", where)
    out = {}
    for k, (what, ok) in _PRECISION.items():
        out[k] = check_type(prec.get(k), ok, what, f"{where}.{k}")
    if out["worst_layer"] is not None:
        out["worst_layer"] = pname(out["worst_layer"])
        check_type(out["worst_drop_db"], lambda v: v is not None, "a number", f"{where}.worst_drop_db")
    out["layers"] = [_report_layer(r, f"{where}.layers[{i}]") for i, r in enumerate(out["layers"])]
    return out


def _report_layer(r, where: str) -> dict:
    check_type(r, lambda v: isinstance(v, dict), "an object", where)
    row = {}
    for k, (what, ok) in {**_REPORT_LAYER, **_REPORT_LAYER_OPTIONAL}.items():
        if k in _REPORT_LAYER or k in r:
            v = check_type(r.get(k), ok, what, f"{where}.{k}")
            row[k] = pname(v) if isinstance(v, str) else v
    return row
