"""Design-space exploration: compile, measure and estimate every configuration of a sweep
(widths, per-channel scales, calibration method, folding or part), on Dask.

:func:`explore` is ``nnforge explore``. Each configuration's record (:mod:`.evaluate`):
its options, the golden model's accuracy on the validation data, the Verilog's cycles and
latency, multipliers and the resource estimate (or, with ``synth``, what synthesis used
and the Fmax place and route reached), the energy estimate, and ``pareto``. The folder
holds ``results.json``, ``results.csv``, ``explore.html`` and ``cache/`` (one record per
configuration, reused by a rerun).

Dask is an optional extra (``pip install "nnforge[explore]"``), imported (through
:mod:`nnforge.cluster`) only when a sweep runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data import DataError
from ..sim.progress import QUIET, Progress
from ..sim.files import write_file_atomic
from .results import OBJECTIVES, mark_pareto, prepare, read_cached, write_cached, write_results
from .space import Config, code_fingerprint, config_key, configurations, fingerprint

__all__ = ["explore", "configurations", "Config", "OBJECTIVES"]

RESULTS_FORMAT = "nnforge-explore-results"
RESULTS_EVERY_S = 5.0  # results.json / results.csv rewritten during a sweep at most this often


def explore(model, calibration, validation, outdir, *, bits=(8,), weight_bits=None, act_bits=None,
            per_channel=(False,), calibration_methods=("minmax",), parallelism=None, fit=None, target_fps=None,
            clock_mhz: float = 100.0, synth: bool = False, scheduler: str | None = None,
            workers: int | None = None, progress: Progress = QUIET) -> dict:
    """Sweep the cartesian product of the options (:func:`.space.configurations`) for the
    ONNX ``model`` (a path), calibrated on ``calibration`` (float samples) and measured on
    ``validation`` (``(x, y)``, labels needed), into the folder ``outdir``; returns the
    ``results.json`` document. ``scheduler``: a Dask scheduler's address; otherwise a
    local cluster of ``workers`` processes (default: one per core). ``synth``: also
    synthesize each configuration for its part (``fit``), placed and routed on Lattice
    parts. The model and the data are checked here, before any configuration runs."""
    configs = configurations(bits, weight_bits, act_bits, per_channel, calibration_methods, parallelism, fit,
                             target_fps)
    if synth and fit is None:
        raise ValueError("synthesis needs parts: give fit (--fit PART,...)")
    if not (isinstance(clock_mhz, (int, float)) and clock_mhz > 0 and np.isfinite(clock_mhz)):
        raise ValueError(f"the clock must be a positive frequency in MHz, got {clock_mhz}")
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    if scheduler is not None and workers is not None:
        raise ValueError("give a scheduler or a number of local workers, not both")
    model_bytes, x_cal, (x_val, y_val) = _checked_inputs(model, calibration, validation)
    from ..cluster import require_dask

    require_dask(local=not scheduler)  # before the folder is made
    out = prepare(outdir)
    settings = {"clock_mhz": float(clock_mhz), "synth": bool(synth)}
    inputs = fingerprint(model_bytes, {"calibration": x_cal, "validation_x": x_val, "validation_y": y_val})
    code = code_fingerprint(synth)
    keys = [config_key(inputs, c, settings, code) for c in configs]
    records: dict[str, dict] = {}
    for c, k in zip(configs, keys):
        rec = read_cached(out, k, c.options())
        if rec is not None:
            records[k] = rec
    todo = [(k, c.options(), c.command(clock_mhz)) for c, k in zip(configs, keys) if k not in records]
    progress(f"explore: {len(configs)} configurations, {len(records)} cached, {len(todo)} to run")
    meta = {"model": Path(model).name, "validation_samples": int(len(x_val)), "settings": settings}
    due = [time.monotonic() + RESULTS_EVERY_S]

    def on_record(rec: dict, cacheable: bool) -> None:
        records[rec["key"]] = rec
        if cacheable:
            write_cached(out, rec)
        if time.monotonic() >= due[0]:  # an interrupted sweep keeps what it has
            t = time.monotonic()
            write_results(out, _document(meta, configs, keys, records))
            # a large sweep's rewrite takes time: never more than a tenth of the sweep's
            due[0] = time.monotonic() + max(RESULTS_EVERY_S, 10 * (time.monotonic() - t))

    try:
        if todo:
            from ..cluster import dask_client
            from .sweep import run_tasks

            payload = {"model": model_bytes, "calibration": x_cal, "validation": (x_val, y_val)}
            with dask_client(scheduler, workers, progress) as client:
                run_tasks(client, todo, payload, settings, code, on_record, progress)
    finally:  # interrupted too: the files show what was measured
        doc = _document(meta, configs, keys, records)
        write_results(out, doc)
        _write_page(out, doc)
    failed = sum(1 for r in doc["configurations"] if r["status"] != "ok")
    progress(f"explore: {len(configs) - failed} measured, {failed} failed, "
             f"{sum(r['pareto'] for r in doc['configurations'])} on the Pareto front -> {out}")
    return doc


def _checked_inputs(model, calibration, validation):
    """The model as one self-contained file's bytes (its external data read in), and the
    data checked against its input and output (one line for what does not fit)."""
    from ..data import as_batch, check_labels
    from ..frontend import import_self_contained

    g, model_bytes = import_self_contained(model)
    shape_in, shape_out = g.shape(g.inputs[0]), g.shape(g.outputs[0])
    x_val, y_val = validation
    if y_val is None:
        raise DataError("the validation data needs labels 'y' (accuracy is what a sweep measures)")
    x_cal = as_batch(calibration, shape_in)
    x_val = as_batch(x_val, shape_in)
    y_val = check_labels(y_val, len(x_val), shape_out, "validation labels")
    return model_bytes, x_cal, (x_val, y_val)


def _document(meta: dict, configs, keys, records: dict) -> dict:
    recs = mark_pareto([dict(records[k]) for k in keys if k in records])
    return {"format": RESULTS_FORMAT, "version": 1, **meta,
            "objectives": [{"figure": k, "goal": g} for k, g in OBJECTIVES],
            "configurations_total": len(configs), "configurations": recs}


def _write_page(out: Path, doc: dict) -> None:
    from ..htmlreport import explore_page

    recs = doc["configurations"]
    meta = {"model": doc["model"], "configurations": len(recs), "failed": sum(r["status"] != "ok" for r in recs),
            "validation_samples": doc["validation_samples"],
            "objectives": ", ".join(f"{o['figure']} ({o['goal']})" for o in doc["objectives"])}
    write_file_atomic(out / "explore.html", explore_page(recs, meta))
