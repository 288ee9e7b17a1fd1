"""One configuration of a sweep, measured: the function a Dask worker runs.

:func:`evaluate` compiles the model with the configuration's options, measures its
accuracy on the validation data with the golden model (the integers every backend
computes), writes the Verilog with the configuration's folding into a temporary folder
for its cycles and resource estimate (and the energy estimate of ``report.json``), and
with ``synth`` synthesizes, places and routes it for its part. Everything it needs comes
in its arguments (the model's bytes, the arrays), so a worker on another machine needs
nothing but nnforge; it returns one record (:data:`RECORD_KEYS`) and writes nothing that
outlives it.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..cluster import worker_folder

RECORD_KEYS = ("key", "options", "status", "error", "accuracy", "cycles", "ii_cycles", "clock_mhz", "clock_from",
               "latency_us", "multipliers", "dsp", "luts", "ffs", "bram", "resources_from", "fmax_mhz",
               "energy_pj", "part", "arch", "command", "pareto")
FIGURES = ("accuracy", "cycles", "ii_cycles", "clock_mhz", "latency_us", "multipliers", "dsp", "luts", "ffs",
           "bram", "fmax_mhz", "energy_pj")


def empty_record(key: str, options: dict, command: str) -> dict:
    rec = {k: None for k in RECORD_KEYS}
    rec.update(key=key, options=dict(options), status="failed", command=command, pareto=False)
    return rec


def configuration_error(e: BaseException) -> bool:
    """An error the configuration itself causes (it would fail the same way again: the
    record is cached), as opposed to a tool or the machine failing (not cached)."""
    from ..codegen.errors import BackendError
    from ..frontend import ModelImportError
    from ..passes import QuantizeError
    from ..sim.parts import FitError

    if isinstance(e, OSError):
        return False
    return isinstance(e, (BackendError, ModelImportError, QuantizeError, ValueError, FitError))


def evaluate(key: str, options: dict, command: str, model_bytes: bytes, x_cal: np.ndarray,
             validation: tuple[np.ndarray, np.ndarray], clock_mhz: float, synth: bool) -> dict:
    """``{"record": ..., "code": ...}``: the configuration's record (:func:`measure`) and
    the fingerprint of the code (and tools) that measured it, which the sweep compares
    with the one its cache keys name."""
    return {"record": measure(key, options, command, model_bytes, x_cal, validation, clock_mhz, synth),
            "code": _process_code(synth)}


@functools.lru_cache(maxsize=2)
def _process_code(synth: bool) -> str:
    """The code fingerprint of this (worker) process, hashed once: the code a process runs
    is what it imported, not what its files later become."""
    from .space import code_fingerprint

    return code_fingerprint(synth)


def measure(key: str, options: dict, command: str, model_bytes: bytes, x_cal: np.ndarray,
            validation: tuple[np.ndarray, np.ndarray], clock_mhz: float, synth: bool) -> dict:
    """The record of one configuration (``options``: :meth:`Config.options`). A failure
    the configuration causes is a record with ``status`` ``failed`` and its ``error`` (the
    sweep caches it); any other failure raises (the sweep records it, not cached). The
    work folder is in the Dask worker's own folder when there is one (removed with the
    worker, even one that is killed), else in the system's temporary folder."""
    rec = empty_record(key, options, command)
    work = Path(tempfile.mkdtemp(prefix="nnforge-explore-", dir=worker_folder()))
    try:
        rec.update(_measure(work, options, model_bytes, x_cal, validation, clock_mhz, synth))
        rec["status"] = "ok"
    except Exception as e:  # noqa: BLE001 - sorted below
        if not configuration_error(e):
            raise
        from ..ir.text import printable

        rec["error"] = printable(str(e).strip().partition("\n")[0] or type(e).__name__, 400)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rec


def _measure(work: Path, options: dict, model_bytes: bytes, x_cal, validation, clock_mhz: float,
             synth: bool) -> dict:
    from ..data import check_labels
    from ..design import compile
    from ..verification import accuracy

    model = work / "model.onnx"
    model.write_bytes(model_bytes)
    design = compile(model, calibration=x_cal, weight_bits=options["weight_bits"], act_bits=options["act_bits"],
                     per_channel=options["per_channel"], calibration_method=options["calibration_method"])
    x_val, y_val = validation
    y_val = check_labels(y_val, len(x_val), design.output_shape, "validation labels")
    out = {"accuracy": accuracy(design.predict(x_val), y_val)}
    folder = work / "out"
    design.write(folder, targets=["verilog"], clock_mhz=clock_mhz, **_folding(options))
    report = json.loads((folder / "report.json").read_text())
    out.update(_figures(report, options, clock_mhz))
    if synth:
        out.update(_synthesized(folder, options, clock_mhz))
        if out.get("fmax_mhz") and out["cycles"] is not None:  # the latency at the clock reached
            out.update(clock_mhz=out["fmax_mhz"], clock_from="fmax", latency_us=out["cycles"] / out["fmax_mhz"])
    return out


def _folding(options: dict) -> dict:
    """``Design.write``'s folding keywords for the configuration."""
    if options.get("fit"):
        from ..sim.parts import fit_budget, resolve_part

        return fit_budget(resolve_part(options["fit"]))
    if options.get("target_fps") is not None:
        return {"target_fps": options["target_fps"]}
    return {"parallelism": options.get("parallelism") or "balanced"}


def _figures(report: dict, options: dict, clock_mhz: float) -> dict:
    """Cycles, latency at the target clock, resources (the estimate) and energy from a
    ``report.json``."""
    v = report.get("verilog") or {}
    t = v.get("totals") or {}
    est = t.get("estimate") or {}
    cycles = t.get("latency_cycles")
    energy = report.get("energy") or {}
    return {"cycles": cycles, "ii_cycles": t.get("ii_cycles"), "clock_mhz": float(clock_mhz), "clock_from": "target",
            "latency_us": None if cycles is None else cycles / clock_mhz,
            "multipliers": t.get("multipliers"), "dsp": est.get("dsp"), "luts": est.get("luts"),
            "ffs": est.get("ffs"), "bram": est.get("bram"), "resources_from": "estimate",
            "energy_pj": energy.get("total_pj"), "part": options.get("fit"), "arch": est.get("arch")}


def _synthesized(folder: Path, options: dict, clock_mhz: float) -> dict:
    """The figures of ``nnforge synth`` for the configuration's part: resources used, and
    (Lattice parts, placed and routed) Fmax and the latency at it."""
    from ..sim.fpga import synth as run_synth

    part = options.get("fit")
    if not part:
        raise ValueError("synthesis needs a part: sweep over --fit PART")
    result = run_synth(folder, part, clock_mhz=clock_mhz)
    used = {r: row.get("used") for r, row in (result.get("utilization") or {}).items()}
    out = {"luts": used.get("LUT"), "ffs": used.get("FF"), "bram": used.get("BRAM"), "dsp": used.get("DSP"),
           "resources_from": "synth"}
    fmax = result.get("fmax_mhz")
    if isinstance(fmax, dict) and fmax:
        out["fmax_mhz"] = float(min(fmax.values()))
    return out

