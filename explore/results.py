"""A sweep's folder: its marker, the per-configuration cache, the Pareto front and the
results files (``results.json``, ``results.csv``).

The folder is untrusted like any input: it is used only when new, empty or marked as a
sweep's folder (:data:`MARKER`); every file is replaced atomically, never written through
a symbolic link; a cache entry is a JSON record, checked against the configuration it
claims to be before it is reused, and ignored (measured again) otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
from pathlib import Path

import numpy as np

from ..ir.text import printable
from ..sim.files import write_file_atomic
from .evaluate import FIGURES, RECORD_KEYS

MARKER = "nnforge_explore.json"
FORMAT = "nnforge-explore"
VERSION = 1
CACHE = "cache"
MAX_CACHE_BYTES = 1 << 20
COUNTS = ("cycles", "ii_cycles", "multipliers", "dsp")  # figures that are whole numbers
MAX_FIGURE = 2.0 ** 53  # a figure of a record read back is a number in [0, MAX_FIGURE]
# the front: accuracy up, latency and every resource down
OBJECTIVES = (("accuracy", "max"), ("latency_us", "min"), ("luts", "min"), ("dsp", "min"), ("bram", "min"))


class ExploreFolderError(ValueError):
    """A sweep's output folder that cannot be used (one line for the user)."""


def prepare(outdir) -> Path:
    """The sweep folder ``outdir``, created when missing; refused when it holds anything
    but a sweep's files (an existing folder must be empty or carry :data:`MARKER`)."""
    out = Path(outdir)
    shown = printable(out)
    try:
        st = os.stat(out)
    except FileNotFoundError:
        out.mkdir(parents=True)
    else:
        if not stat.S_ISDIR(st.st_mode):
            raise ExploreFolderError(f"{shown} exists and is not a folder; choose another output folder")
        if any(out.iterdir()) and not _marked(out):
            raise ExploreFolderError(f"{shown} holds files and is not an nnforge explore folder (no valid "
                                     f"{MARKER}); choose a new or empty folder")
    cache = out / CACHE
    if cache.is_symlink() or (cache.exists() and not cache.is_dir()):
        raise ExploreFolderError(f"{printable(cache)} is not a plain folder; refusing to use it")
    cache.mkdir(exist_ok=True)
    write_file_atomic(out / MARKER, json.dumps({"format": FORMAT, "version": VERSION}) + "\n")
    return out


def _marked(out: Path) -> bool:
    p = out / MARKER
    if p.is_symlink() or not p.is_file() or p.stat().st_size > 4096:
        return False
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == VERSION


def read_cached(out: Path, key: str, options: dict) -> dict | None:
    """The cached record of configuration ``key`` (``options``), or None when there is
    none or it is not one (then it is measured again)."""
    p = out / CACHE / f"{key}.json"
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_CACHE_BYTES:
            return None
        rec = json.loads(p.read_text())
        return rec if valid_record(rec, key, options) else None
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, OverflowError):
        return None


def valid_record(rec, key: str, options: dict) -> bool:
    """``rec`` is a record of :func:`nnforge.explore.evaluate.evaluate` for ``key``."""
    if not (isinstance(rec, dict) and set(rec) == set(RECORD_KEYS) and rec["key"] == key
            and rec["options"] == options and rec["status"] in ("ok", "failed")):
        return False
    for k in FIGURES:
        v = rec[k]
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_FIGURE:
            return False  # NaN fails the comparison too
    if rec["accuracy"] is not None and rec["accuracy"] > 1:
        return False
    if any(rec[k] is not None and not isinstance(rec[k], int) for k in COUNTS):
        return False
    strings = ("error", "clock_from", "resources_from", "part", "arch", "command")
    return all(rec[k] is None or isinstance(rec[k], str) for k in strings)


def write_cached(out: Path, rec: dict) -> None:
    write_file_atomic(out / CACHE / f"{rec['key']}.json", json.dumps(rec, indent=1) + "\n")


def mark_pareto(records: list[dict]) -> list[dict]:
    """Set ``pareto`` on every record: true for a measured configuration that no other one
    dominates (as good in every objective of :data:`OBJECTIVES`, better in one). Only
    records whose resources are counted in the same units (the same estimate architecture,
    ``arch``, and the same source, estimate or synthesis) are compared: with parts of two
    families the front is the union of each family's. A figure a record lacks counts as
    the worst."""
    for r in records:
        r["pareto"] = False
    groups: dict = {}
    for r in records:
        if r["status"] == "ok":
            groups.setdefault((r.get("arch"), r.get("resources_from")), []).append(r)
    for group in groups.values():
        for r, front in zip(group, _front(np.array([_costs(r) for r in group], dtype=np.float64))):
            r["pareto"] = bool(front)
    return records


def _costs(r: dict) -> list[float]:
    """The record's objectives as costs (lower is better; a missing figure is infinite)."""
    out = []
    for k, sense in OBJECTIVES:
        v = r.get(k)
        out.append(math.inf if v is None else (-float(v) if sense == "max" else float(v)))
    return out


def _front(costs: np.ndarray) -> np.ndarray:
    """For each row of ``costs``, whether no other row is at most it everywhere and below
    it somewhere. In lexicographic order a row's dominators all come before it, and one
    off the front is dominated by one on it: each row is checked against the front so far."""
    keep = np.zeros(len(costs), dtype=bool)
    front = np.empty((0, costs.shape[1]))
    for i in np.lexsort(costs.T[::-1]):
        c = costs[i]
        if not (np.all(front <= c, axis=1) & np.any(front < c, axis=1)).any():
            keep[i] = True
            front = np.vstack([front, c])
    return keep


CSV_OPTIONS = ("weight_bits", "act_bits", "per_channel", "calibration_method", "parallelism", "fit", "target_fps")
CSV_COLUMNS = ("key", *CSV_OPTIONS, "status", *FIGURES, "clock_from", "resources_from", "part", "arch", "pareto",
               "error", "command")


def csv_text(records: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in records:
        row = []
        for c in CSV_COLUMNS:
            v = r["options"].get(c) if c in CSV_OPTIONS else r.get(c)
            row.append("" if v is None else _csv_cell(v))
        w.writerow(row)
    return buf.getvalue()


def _csv_cell(v) -> str:
    s = str(v).lower() if isinstance(v, bool) else str(v)
    # a cell a spreadsheet would run as a formula is quoted as text
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(s) else s


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def write_results(out: Path, doc: dict) -> None:
    """``results.json`` and ``results.csv`` of the sweep document ``doc``."""
    write_file_atomic(out / "results.json", json.dumps(doc, indent=1) + "\n")
    write_file_atomic(out / "results.csv", csv_text(doc["configurations"]))


def summary_lines(records: list[dict]) -> list[str]:
    """The sweep as a text table, one line per configuration (``*``: on the front)."""
    from ..report import table
    from .space import Config

    def num(v, fmt):
        return "-" if not isinstance(v, (int, float)) else format(v, fmt)

    rows = [("", "configuration", "accuracy", "cycles", "latency us", "mult", "LUTs", "FFs", "BRAM", "energy nJ")]
    for r in records:
        if r["status"] != "ok":
            rows.append(("!", Config(**r["options"]).label(), "failed", "", "", "", "", "", "", ""))
            continue
        energy = None if r["energy_pj"] is None else r["energy_pj"] / 1000
        rows.append(("*" if r["pareto"] else "", Config(**r["options"]).label(),
                     num(None if r["accuracy"] is None else 100 * r["accuracy"], ".2f"), num(r["cycles"], ".0f"),
                     num(r["latency_us"], ".2f"), num(r["multipliers"], ".0f"), num(r["luts"], "g"),
                     num(r["ffs"], "g"), num(r["bram"], "g"), num(energy, ".3g")))
    return table(rows) + ["* on the Pareto front (accuracy, latency, LUTs, DSPs, block RAM); ! failed"]
