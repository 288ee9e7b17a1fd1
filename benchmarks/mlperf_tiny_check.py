"""Every backend against the golden model on the MLPerf Tiny shapes of ``mlperf_tiny.py``.

    python3 benchmarks/mlperf_tiny_check.py [--models resnet8,ds_cnn,...] [--samples 100]
                                            [--verilog-samples 20] [--parallelism balanced]
                                            [--out DIR] [--json FILE] [--cold]

For each model: compile it (8 bits, default options), write the C, the HLS C++ and the
Verilog (``--parallelism`` folding), and verify them (:meth:`nnforge.design.Design.verify`):
golden, C and HLS C++ on all ``--samples`` synthetic test inputs of the model's generator,
the Verilog (Verilator) on the first ``--verilog-samples`` of them, every output integer
compared with golden's. The MACs the compiled program counts must equal the model's entry
in ``mlperf_tiny.MACS``. Prints a table (model, MACs, parameters, compile seconds, then per
backend the samples checked, the seconds it took to build and run them, and whether every
integer matched); the exit status is 1 when anything differs or fails. ``--out`` keeps the
written sources (a temporary folder otherwise). A backend's seconds are those of its build
and its run; builds found in the build cache (:mod:`nnforge.sim.cache`) take none, unless
``--cold`` gives the run an empty cache of its own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from onnx import numpy_helper

import nnforge
from nnforge.codegen.program import lower_program

HERE = Path(__file__).resolve().parent
BACKENDS = ("golden", "c", "hls", "verilog")


def _load(name: str):
    """A module of this folder (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"nnforge_benchmarks_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


tiny = _load("mlperf_tiny")


@dataclass
class Check:
    """One backend's result: samples compared, how many differ, seconds, or why it failed."""

    samples: int = 0
    mismatches: int = 0
    seconds: float = 0.0
    cycles_per_inference: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.samples > 0 and self.mismatches == 0


@dataclass
class Row:
    model: str
    macs: int
    params: int
    compile_seconds: float = 0.0
    write_seconds: float = 0.0
    checks: dict[str, Check] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (self.error is None and all(b in self.checks for b in BACKENDS[:3])
                and all(c.ok for c in self.checks.values()))

    def as_dict(self) -> dict:
        return {"model": self.model, "macs": self.macs, "params": self.params,
                "compile_seconds": round(self.compile_seconds, 2), "write_seconds": round(self.write_seconds, 2),
                "backends": {b: {"samples": c.samples, "mismatches": c.mismatches, "seconds": round(c.seconds, 2),
                                 "cycles_per_inference": c.cycles_per_inference, "error": c.error}
                             for b, c in self.checks.items()},
                "error": self.error, "ok": self.ok}


def parameters(model) -> int:
    """Weights and biases of the model (its initializers)."""
    return int(sum(numpy_helper.to_array(t).size for t in model.graph.initializer))


def _verify(design, x, backends, outdir, log) -> dict[str, Check]:
    """The checks of ``backends`` on ``x`` (sources in ``outdir``)."""
    try:
        result = design.verify(x, backends=backends, outdir=outdir)
    except Exception as e:  # a build or a simulation that fails is a result of the check
        return {b: Check(len(x), error=f"{type(e).__name__}: {e}".splitlines()[0][:300]) for b in backends}
    out = {}
    for b in backends:
        r = result.backends[b]
        out[b] = Check(r.samples, r.mismatches, r.seconds, r.cycles_per_inference)
        log(f"  {b}: {r.samples} samples, {r.mismatches} mismatches, {r.seconds:.1f} s")
    return out


def _write(design, folder: Path, targets, parallelism: str) -> tuple[Path | None, float, str | None]:
    t0 = time.monotonic()
    try:
        out = design.write(folder, targets=targets, parallelism=parallelism)
    except Exception as e:
        return None, time.monotonic() - t0, f"{type(e).__name__}: {e}".splitlines()[0][:300]
    return out, time.monotonic() - t0, None


def check(name: str, samples: int, verilog_samples: int, parallelism: str, root: Path, log=print) -> Row:
    """Compile model ``name``, write every target into ``root`` and verify each backend."""
    model, cal, test = tiny.MODELS[name](n_test=samples)
    row = Row(name, tiny.MACS[name], parameters(model))
    t0 = time.monotonic()
    design = nnforge.compile(model, calibration=cal, bits=8)
    row.compile_seconds = time.monotonic() - t0
    log(f"{name}: compiled in {row.compile_seconds:.1f} s")
    counted = lower_program(design.qgraph).macs
    if counted != row.macs:
        row.error = f"the program counts {counted} MACs, mlperf_tiny.MACS says {row.macs}"
    t0 = time.monotonic()
    x_int = design.quantize_input(test)
    design.predict_int(x_int)
    golden = Check(len(test), 0, time.monotonic() - t0)
    sw, row.write_seconds, err = _write(design, root / name, ["c", "hls"], parallelism)
    if err:
        row.checks.update({b: Check(len(test), error=f"write: {err}") for b in ("c", "hls")})
    else:
        row.checks.update(_verify(design, test, ["c", "hls"], sw, log))
    row.checks["golden"] = golden
    if verilog_samples > 0:
        hw, seconds, err = _write(design, root / f"{name}-verilog", ["verilog"], parallelism)
        row.write_seconds += seconds
        if err:
            row.checks["verilog"] = Check(min(verilog_samples, len(test)), error=f"write: {err}")
        else:
            row.checks.update(_verify(design, test[:verilog_samples], ["verilog"], hw, log))
    return row


def table(rows: list[Row]) -> str:
    head = f"{'model':<16}{'MACs':>12}{'params':>10}{'compile s':>11}"
    for b in BACKENDS:
        head += f"{b + ' n':>11}{b + ' s':>11}"
    lines = [head + f"{'match':>7}"]
    for r in rows:
        line = f"{r.model:<16}{r.macs:>12,}{r.params:>10,}{r.compile_seconds:>11.1f}"
        for b in BACKENDS:
            c = r.checks.get(b)
            line += f"{'-':>11}{'-':>11}" if c is None else f"{c.samples:>11}{c.seconds:>11.1f}"
        lines.append(line + f"{'yes' if r.ok else 'NO':>7}")
    for r in rows:
        if r.error:
            lines.append(f"{r.model}: {r.error}")
        for b, c in r.checks.items():
            if c.error:
                lines.append(f"{r.model} {b}: {c.error}")
            elif c.mismatches:
                lines.append(f"{r.model} {b}: {c.mismatches} of {c.samples} samples differ from golden")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(tiny.MODELS), help="comma-separated")
    ap.add_argument("--samples", type=int, default=100, help="test inputs for golden, C and HLS C++")
    ap.add_argument("--verilog-samples", type=int, default=20, help="the first N of them for Verilog (0: none)")
    ap.add_argument("--parallelism", default="balanced", help="Verilog folding mode")
    ap.add_argument("--out", type=Path, help="keep the written sources here")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument("--cold", action="store_true", help="build everything afresh (an empty build cache)")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in tiny.MODELS]
    if unknown or args.samples < 1 or args.verilog_samples < 0:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(tiny.MODELS)}" if unknown
                 else "--samples must be >= 1 and --verilog-samples >= 0")
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        if args.cold:
            os.environ["NNFORGE_CACHE"] = str(Path(tmp) / "cache")
        rows = [check(n, args.samples, args.verilog_samples, args.parallelism, root, log) for n in names]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=2) + "\n")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
