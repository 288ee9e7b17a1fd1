"""The Design: one object holding a compiled model, as notebooks want it.

    design = nnforge.compile("model.onnx", calibration=x_cal, bits=8)
    y_int = design.predict(x)                 # golden integer model
    design.write("out/", targets=["c", "hls", "verilog"])
    result = design.verify(x, y)              # every backend against golden
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .codegen import c as c_backend
from .data import DataError, check_labels, check_values
from .codegen import hls as hls_backend
from .codegen.lower import BackendError, HwModel, lower
from .codegen.program import Program
from .codegen.c_float import FloatProgram, is_float_graph, lower_float_for, write_c as write_float_c
from .codegen.c_float import write_hls as write_float_hls
from .codegen.targets import lower_for
from .ir import Graph, dequantize, quantize_float, run_float, run_int
from .ir.floats import is_float, random_patterns
from .ir.serialize import (DesignFileError, check_depth, check_graph_dict, check_keys, check_type,
                           graph_from_checked, is_int, load_json, read_arrays, to_dict)
from .ir.text import name as _pname
from .passes import QuantConfig, calibrate, run_float_pipeline
from .passes.prequant import is_prequantized, quantize_graph, quantize_prequantized
from .passes.prune import compression_text
from .passes.calibrate import CalibrationWarning, channel_means, check_input_spread, check_spread
from .passes.rounding import layer_inputs
from .sim.files import (MARKER, OutputFolderError, check_replaceable, modified_files, output_folder,
                        read_manifest, replace_dir, temp_dir, write_manifest)
from .sim.progress import QUIET, Progress

TARGETS = ("c", "hls", "verilog")
BACKENDS = ("golden",) + TARGETS
TRACEABLE = ("c", "hls", "verilog")  # backends whose every layer verify --trace compares
PARALLELISM = ("sequential", "balanced", "parallel")


def folding_goal(parallelism="balanced", target_fps: float | None = None, clock_mhz: float = 100.0,
                 max_multipliers: int | None = None, max_luts: int | None = None,
                 max_ffs: int | None = None, max_bram: int | None = None):
    """The Verilog folding goal: a mode of ``PARALLELISM``, ``{"target_cycles": T}`` for
    ``target_fps`` at ``clock_mhz``, or a budget: any of ``{"max_multipliers": N,
    "max_luts": L, "max_ffs": F, "max_bram": B}`` (multiplier blocks, LUT4s, flip-flops,
    block RAMs, the last three checked on the resource estimate)."""
    if isinstance(parallelism, dict):
        return parallelism
    if parallelism not in PARALLELISM:
        raise ValueError(f"unknown parallelism {parallelism!r}; choose from {', '.join(PARALLELISM)}")
    budget = {k: v for k, v in (("max_multipliers", max_multipliers), ("max_luts", max_luts),
                                ("max_ffs", max_ffs), ("max_bram", max_bram)) if v is not None}
    if target_fps is not None and budget:
        raise ValueError("give a target frame rate or a resource budget, not both")
    if target_fps is not None:
        if not target_fps > 0 or not clock_mhz > 0:
            raise ValueError("the target frame rate and the clock must be positive")
        cycles = int(clock_mhz * 1e6 // target_fps)
        if cycles < 1:
            raise ValueError(f"{target_fps} inferences per second at {clock_mhz} MHz leaves less than a cycle each")
        return {"target_cycles": cycles}
    if budget:
        if "max_multipliers" in budget and int(budget["max_multipliers"]) < 0:
            raise ValueError("the multiplier budget must be at least 0")
        for k in ("max_luts", "max_ffs", "max_bram"):
            if k in budget and int(budget[k]) < 1:
                raise ValueError(f"{k} must be at least 1")
        return {k: int(v) for k, v in budget.items()}
    return parallelism
FORMAT_VERSION = 1
HLS_TB_SAMPLES = 16
CAL_REFIT = 512  # calibration samples pruning refits the weights on


@dataclass
class BackendResult:
    samples: int
    mismatches: int  # samples whose outputs differ from golden in any integer
    accuracy: float | None = None
    cycles_per_inference: float | None = None
    latency_cycles: int | None = None
    seconds: float = 0.0
    first_mismatch: int | None = None
    modified: list[str] | None = None  # source files that differ from what nnforge wrote (built backends)

    def as_dict(self) -> dict:
        d = {"samples": self.samples, "mismatches": self.mismatches, "accuracy": self.accuracy,
             "seconds": round(self.seconds, 3)}
        if self.cycles_per_inference is not None:
            d["cycles_per_inference"] = self.cycles_per_inference
            d["latency_cycles"] = self.latency_cycles
        if self.first_mismatch is not None:
            d["first_mismatch"] = self.first_mismatch
        if self.modified is not None:
            d["modified"] = [_pname(f) for f in self.modified]
        return d


@dataclass
class VerifyResult:
    samples: int
    float_accuracy: float | None
    backends: dict[str, BackendResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(b.mismatches == 0 for b in self.backends.values())

    def as_dict(self) -> dict:
        return {"samples": self.samples, "float_accuracy": self.float_accuracy,
                "backends": {k: v.as_dict() for k, v in self.backends.items()}, "ok": self.ok}

    def __str__(self) -> str:
        lines = [f"{self.samples} samples; float model accuracy: {_pct(self.float_accuracy)}",
                 f"{'backend':<10}{'samples':>9}{'mismatches':>12}{'accuracy':>10}{'cycles/inf':>12}"]
        for name, b in self.backends.items():
            cyc = f"{b.cycles_per_inference:.1f}" if b.cycles_per_inference is not None else "-"
            lines.append(f"{name:<10}{b.samples:>9}{b.mismatches:>12}{_pct(b.accuracy):>10}{cyc:>12}")
        for name, b in self.backends.items():
            if b.modified:
                lines.append(f"{name}: sources differ from what nnforge wrote: {', '.join(map(_pname, b.modified))}")
        lines.append("all backends match golden" if self.ok else "MISMATCH: some backend differs from golden")
        return "\n".join(lines)


def _pct(a: float | None) -> str:
    return "-" if a is None else f"{100 * a:.2f}%"


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


def _accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    pred = outputs.reshape(len(outputs), -1).argmax(axis=1)
    return float((pred == labels).mean())


class Design:
    """A compiled model: the float graph, the quantized graph, and what was chosen."""

    def __init__(self, float_graph: Graph, qgraph: Graph, config: QuantConfig, source: str = "") -> None:
        self.float_graph = float_graph  # as imported: the reference float model
        self.qgraph = qgraph  # quantized: defines every integer result
        self.config = config
        self.mixed = None  # the mixed-precision search that chose config, if one ran
        self.compression: list[dict] = []  # what each compression pass did (PruneReport.as_dict ...)
        self.calibration_precision = None  # precision() on the calibration data, from compile
        self._float_passes: Graph | None = None  # the float graph after the float passes (q's names)
        self.source = source

    # ---- shapes and types --------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.qgraph.shape(self.qgraph.inputs[0])

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.qgraph.shape(self.qgraph.outputs[0])

    @property
    def input_type(self):
        return self.qgraph.qtype(self.qgraph.inputs[0])

    @property
    def output_type(self):
        return self.qgraph.qtype(self.qgraph.outputs[0])

    def hardware(self) -> HwModel:
        """The Dense chain of the Verilog backend (refuses any other graph)."""
        return lower(self.qgraph)

    def lowered(self, target: str) -> Program | HwModel:
        """What ``target`` renders: a Program for C and HLS, the Dense chain for Verilog.
        Raises :class:`BackendError` if the target cannot implement the graph."""
        if is_float_graph(self.qgraph):
            return lower_float_for(self.qgraph, target, self.config.neuzip)
        return lower_for(self.qgraph, target)

    def check_input(self, x) -> np.ndarray:
        return as_batch(x, self.input_shape)

    # ---- running --------------------------------------------------------------------
    def quantize_input(self, x) -> np.ndarray:
        return quantize_float(self.check_input(x), self.input_type)

    def predict(self, x) -> np.ndarray:
        """Golden integer outputs (int64) for float inputs ``x``."""
        return run_int(self.qgraph, self.quantize_input(x))[0]

    def predict_int(self, x_int) -> np.ndarray:
        """Golden integer outputs for inputs already in the input's fixed-point type."""
        return run_int(self.qgraph, np.asarray(x_int))[0]

    def predict_dequantized(self, x) -> np.ndarray:
        """Golden outputs scaled back to real values (softmax is not applied)."""
        return dequantize(self.predict(x), self.output_type)

    def predict_float(self, x) -> np.ndarray:
        """The original float model (including a final softmax)."""
        return run_float(self.float_graph, self.check_input(x))[0]

    # ---- reporting ------------------------------------------------------------------
    def layers(self) -> list[dict]:
        q = self.qgraph
        rows = []
        for n in q.topo():
            row = {"name": n.name, "op": n.op, "input": str(q.qtype(n.inputs[0])),
                   "output": str(q.qtype(n.outputs[0])), "shape": list(q.shape(n.outputs[0]))}
            if n.op in ("Dense", "Conv"):
                # every output value takes one MAC per weight of its output channel
                w_shape = q.shape(n.inputs[1])
                per_output = int(np.prod(w_shape[1:]))
                row.update(weights=str(q.qtype(n.inputs[1])),
                           acc_width="fp32" if is_float(q.qtype(n.outputs[0])) else n.attr("acc_width"),
                           relu=bool(n.attr("relu")),
                           macs=int(np.prod(q.shape(n.outputs[0]))) * per_output)
            rows.append(row)
        return rows

    def summary(self) -> str:
        lines = [f"model {_pname(self.qgraph.name)}: input {self.input_shape} {self.input_type}, "
                 f"output {self.output_shape} {self.output_type}",
                 ]
        lines += _table([("layer", "op", "in", "weights", "acc", "out", "MACs")] + [
            (_pname(r["name"])[:15], (r["op"] + ("+relu" if r.get("relu") else ""))[:11], r["input"],
             str(r.get("weights", "-")), str(r.get("acc_width", "-")), r["output"], str(r.get("macs", "-")))
            for r in self.layers()])
        return "\n".join(lines)

    __repr__ = summary

    # ---- precision ------------------------------------------------------------------
    def precision(self, x, limit: int = 256) -> dict:
        """Per layer: formats, accumulator width and the SQNR of its output (golden
        integers scaled back against the float model, in dB) on the samples ``x`` (the
        first ``limit``); ``worst_layer`` is the layer whose output SQNR falls furthest
        below its input's, where quantization hurts most."""
        x = as_batch(x, self.input_shape)[:limit]
        if self._float_passes is None:
            self._float_passes = run_float_pipeline(self.float_graph)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow shows as an SQNR of nan
            fenv = run_float(self._float_passes, x, keep=True)
        q = self.qgraph
        qenv = run_int(q, self.quantize_input(x), keep=True)
        refs = _quant_references(self._float_passes)

        def sqnr(t: str) -> float | None:
            f = refs.get(t, t)
            if f not in fenv or t not in qenv:
                return None
            ref = np.asarray(fenv[f], np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                err = dequantize(qenv[t], q.qtype(t)) - ref
                sig, noise = float(np.sum(ref ** 2)), float(np.sum(err ** 2))
            if noise == 0.0:
                return float("inf")
            return float(10.0 * np.log10(sig / noise)) if sig > 0 else float("-inf")

        rows, worst, worst_drop = [], None, -np.inf
        for r in self.layers():
            node = q.node(r["name"])
            s_in, s_out = sqnr(node.inputs[0]), sqnr(node.outputs[0])
            rows.append({**r, "sqnr_in_db": s_in, "sqnr_db": s_out})
            if s_out is None or not np.isfinite(s_out):
                continue
            drop = (s_in - s_out) if s_in is not None and np.isfinite(s_in) else -s_out
            if drop > worst_drop:
                worst, worst_drop = r["name"], drop
        return {"samples": int(len(x)), "layers": rows, "output_sqnr_db": sqnr(q.outputs[0]),
                "worst_layer": worst, "worst_drop_db": None if worst is None else float(worst_drop)}

    @staticmethod
    def precision_text(p: dict) -> str:
        def db(v):
            return "-" if v is None else ("inf" if v == float("inf") else f"{v:.1f}")
        lines = [f"precision on {p['samples']} samples (SQNR of each layer's output against the float model, dB)"]
        lines += _table([("layer", "op", "in", "weights", "acc", "out", "SQNR")] + [
            (_pname(r["name"])[:15], _pname(r["op"])[:11], r["input"], str(r.get("weights", "-")),
             str(r.get("acc_width", "-")),
             r["output"], db(r["sqnr_db"])) for r in p["layers"]])
        lines.append(f"model output SQNR {db(p['output_sqnr_db'])} dB")
        if p["worst_layer"]:
            lines.append(f"largest loss: {_pname(p['worst_layer'])} ({p['worst_drop_db']:.1f} dB below its input)")
        return "\n".join(lines) + "\n"

    # ---- writing --------------------------------------------------------------------
    def write(self, outdir, targets: Iterable[str] = TARGETS, parallelism: str = "balanced",
              progress: Progress = QUIET, *, target_fps: float | None = None, clock_mhz: float = 100.0,
              max_multipliers: int | None = None, max_luts: int | None = None, max_ffs: int | None = None,
              max_bram: int | None = None) -> Path:
        """Write every target's sources into ``outdir``, atomically: everything is built in
        a temporary folder beside it, marked (``nnforge_output.json``: the SHA-256 of every
        file) and swapped into place only when complete (see :func:`sim.files.replace_dir`).
        An existing ``outdir`` is replaced only when it is empty or holds nothing but the
        unchanged files of its marker; one that is or holds the current folder or the
        model file is refused (:func:`sim.files.output_folder`). A symbolic link is
        followed: the folder it points to is replaced.

        Verilog folding: ``parallelism`` (a mode), or a goal that replaces it:
        ``target_fps`` inferences per second at ``clock_mhz`` (a period of
        ``floor(clock / fps)`` cycles), or a budget (the fastest design that fits): at most
        ``max_multipliers`` multiplier blocks in all (products with a 4-bit operand are
        built from LUTs and cost none), ``max_luts`` LUT4s, ``max_ffs`` flip-flops and
        ``max_bram`` block RAMs by the resource estimate. Each engine gets the fewest
        multipliers that keep it within the period."""
        targets = check_names(targets, TARGETS, "target")
        parallelism = folding_goal(parallelism, target_fps, clock_mhz, max_multipliers, max_luts, max_ffs, max_bram)
        outdir = Path(outdir)
        dest = output_folder(outdir, {"model": self.source})
        # every target lowers (or refuses, naming the node) before any file exists
        models = {t: self.lowered(t) for t in targets}
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp = temp_dir(dest.parent)
        except OSError as e:
            raise OSError(e.errno, f"cannot create the output folder there ({e.strerror})", str(outdir)) from None
        try:
            info = self._write_into(tmp, models, targets, parallelism, progress)
            (tmp / "report.json").write_text(json.dumps(info, indent=2) + "\n")
            (tmp / "report.txt").write_text(self._report_text(info))
            write_manifest(tmp)  # last: a folder with a marker is complete
            replace_dir(tmp, dest, check=lambda old: check_replaceable(old, shown=outdir))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        progress(f"wrote {', '.join(targets)} to {outdir}")
        return outdir

    def _write_into(self, tmp: Path, models: dict, targets, parallelism, progress) -> dict:
        self.save(tmp)
        info: dict = {"model": self.qgraph.name, "source": self.source, "targets": list(targets),
                      "quantization": {"weight_bits": self.config.weight_bits, "act_bits": self.config.act_bits,
                                       "calibration": self.config.calibration,
                                       "calibration_overrides": dict(self.config.overrides),
                                       "layer_weight_bits": dict(self.config.layer_weight_bits),
                                       "bias_correction": self.config.bias_correction,
                                       "per_channel": self.config.per_channel,
                                       "from_model": self.config.from_model,
                                       "scale": self.config.scale, "asymmetric": self.config.asymmetric,
                                       "rounding": self.config.rounding, "dynamic": self.config.dynamic,
                                       "mixed_precision": self.mixed.as_dict() if self.mixed else None},
                      "compression": self.compression,
                      "input": {"shape": list(self.input_shape), "type": str(self.input_type)},
                      "output": {"shape": list(self.output_shape), "type": str(self.output_type),
                                 "softmax_on_host": bool(self.qgraph.meta.get("output_softmax"))},
                      "layers": self.layers(), "macs": sum(r.get("macs", 0) for r in self.layers()),
                      "precision": self.calibration_precision}
        softmax = bool(self.qgraph.meta.get("output_softmax"))
        if isinstance(models.get("c"), FloatProgram):
            progress(f"writing C ({models['c'].fmt}, {models['c'].weight_format} weights)")
            write_float_c(models["c"], tmp / "c")
        elif "c" in targets:
            progress("writing C")
            c_backend.write(models["c"], tmp / "c", softmax=softmax)
            if self.config.dynamic:
                from .codegen.c_dynamic import write_dynamic

                write_dynamic(self.qgraph, tmp / "c")
        if isinstance(models.get("hls"), FloatProgram):
            progress(f"writing HLS C++ ({models['hls'].fmt})")
            tb_x = self._tb_vectors()
            write_float_hls(models["hls"], tmp / "hls", tb_x, self.predict_int(tb_x), hls_backend.DEFAULT_PART,
                            hls_backend.DEFAULT_CLOCK_NS)
        elif "hls" in targets:
            progress("writing HLS C++")
            tb_x = self._tb_vectors()
            hls_backend.write(models["hls"], tmp / "hls", tb_x, self.predict_int(tb_x))
        if "verilog" in targets:
            from .codegen import verilog as verilog_backend

            progress(f"writing Verilog ({parallelism})")
            from .codegen.verilog_cnn import CnnModel, write_cnn

            if isinstance(models["verilog"], FloatProgram):
                from .codegen.verilog_float import write_float_verilog

                info["verilog"] = write_float_verilog(models["verilog"], tmp / "verilog")
            elif isinstance(models["verilog"], CnnModel):  # CNN chains: sequential frame engines
                info["verilog"] = write_cnn(models["verilog"], tmp / "verilog", parallelism=parallelism)
            else:
                info["verilog"] = verilog_backend.write(models["verilog"], tmp / "verilog", parallelism=parallelism)
        return info

    def _tb_vectors(self) -> np.ndarray:
        """Deterministic vectors spanning the input type, for the HLS C-sim testbench."""
        rng = np.random.default_rng(0)
        t = self.input_type
        if is_float(t):
            x = random_patterns(rng, (HLS_TB_SAMPLES, *self.input_shape), t.format)
            x[0], x[1] = 0, t.format.sat
            return x
        x = rng.integers(t.lo, t.hi + 1, size=(HLS_TB_SAMPLES, *self.input_shape))
        x[0], x[1] = t.lo, t.hi
        return x

    def _report_text(self, info: dict) -> str:
        lines = [self.summary(), "", f"MACs per inference: {info['macs']}"]
        if self.mixed:
            lines.append(self.mixed.text().rstrip())
        for c in self.compression:
            lines.append(compression_text(c).rstrip())
        if self.calibration_precision:
            lines += ["", "On the calibration data:", self.precision_text(self.calibration_precision).rstrip()]
        v = info.get("verilog")
        if v:
            t = v["totals"]
            eff = f", efficiency {t['efficiency']:.2f}" if t.get("efficiency") is not None else ""
            lines.append(f"Verilog ({v['parallelism']}): latency {t['latency_cycles']} cycles, initiation "
                         f"interval {t['ii_cycles']} cycles, {t['multipliers']} multipliers"
                         + (f" + {t['lut_multipliers']} in LUTs" if t.get("lut_multipliers") else "")
                         + f"{eff} (MACs per inference / (multipliers x II))")
            for layer in v["layers"]:
                lines.append(f"  {_pname(layer['name']):<16} PE {layer['pe']:>4} SIMD {layer['simd']:>4} "
                             f"latency {layer['latency_cycles']:>6} II {layer['ii_cycles']:>6}")
        if info["output"]["softmax_on_host"]:
            lines.append("The model ends in Softmax: the hardware outputs the logits; the float "
                         "wrapper applies softmax.")
        return "\n".join(lines) + "\n"

    def predict_dynamic(self, x) -> np.ndarray:
        """Golden outputs of dynamic quantization (run-time scales), as real values."""
        from .ir.dynamic import dequantize_dynamic, run_dynamic

        y, frac = run_dynamic(self.qgraph, self.check_input(x))
        return dequantize_dynamic(y, frac)

    def _verify_dynamic(self, x, labels, src: Path, work: Path, progress: Progress) -> BackendResult:
        """The generated nnforge_run_dynamic against :func:`nnforge.ir.dynamic.run_dynamic`:
        every output integer and its run-time fractional bits."""
        from .codegen.c_dynamic import run_dynamic_c
        from .ir.dynamic import run_dynamic

        t0 = time.monotonic()
        xf = np.asarray(x, dtype=np.float32)
        want, want_f = run_dynamic(self.qgraph, xf.astype(np.float64))
        got, got_f = run_dynamic_c(src, work, xf.reshape(len(xf), -1), int(np.prod(self.output_shape)))
        diff = np.any(got.reshape(len(x), -1) != want.reshape(len(x), -1), axis=1) | (got_f != want_f)
        bad = np.flatnonzero(diff)
        progress(f"c-dynamic: {len(x)} samples, {int(diff.sum())} mismatches")
        return BackendResult(samples=len(x), mismatches=int(diff.sum()), accuracy=_accuracy(got, labels),
                             seconds=time.monotonic() - t0, first_mismatch=int(bad[0]) if len(bad) else None)

    def trace(self, x, backends: Sequence[str] = TRACEABLE, outdir=None, sample: int = 0,
              progress: Progress = QUIET) -> dict[str, list[LayerTrace]]:
        """Run sample ``sample`` of ``x`` through each backend with tracing on and compare
        every layer's output with golden's: C and HLS C++ built to report every step's
        buffer, Verilog with every engine's output stream recorded in the simulation (and
        put back from its layout into the IR's order)."""
        from .sim.native import trace as native_trace

        backends = check_names(backends, TRACEABLE, "traceable backend")
        x_int = self.quantize_input(self.check_input(x)[sample:sample + 1])
        env = run_int(self.qgraph, x_int, keep=True)
        with self._sources(outdir, backends, "balanced", progress) as staged:
            result = {}
            for b in backends:
                src = staged.src[b]
                if b == "verilog":
                    steps, got = self._verilog_trace(src, staged.work(f"{b}-trace"), x_int, progress,
                                                     staged.outdir / "verilog")
                else:
                    prog = self.lowered(b)
                    got = native_trace(b, src, staged.work(f"{b}-trace"), x_int.reshape(1, -1), prog.n_out, progress)
                    steps = list(prog.steps)
                layers = []
                for i, st in enumerate(steps):
                    if not st.tensor:
                        continue
                    want = np.asarray(env[st.tensor], dtype=np.int64).reshape(-1)
                    have = got.get(i, np.zeros(0, dtype=np.int64))
                    if have.size != want.size:
                        bad = np.arange(want.size)
                    else:
                        bad = np.flatnonzero(have != want)
                    layers.append(LayerTrace(st.name, st.op, st.tensor, int(want.size), int(bad.size),
                                             int(bad[0]) if bad.size else None))
                result[b] = layers
                progress(f"{b}: traced {len(layers)} layers")
            return result

    @contextmanager
    def _sources(self, outdir, targets: list[str], parallelism: str, progress: Progress):
        """A private copy of the sources of ``targets``, taken from the output folder
        ``outdir`` (when it is None, from a temporary folder the design is written into):
        only the files its manifest lists (:data:`nnforge.sim.files.MARKER`), each a
        regular file inside the folder; files that differ from what nnforge wrote are
        warned about (and compiled as they are). Yields a :class:`_Staged`; everything is
        removed afterwards."""
        tmp = Path(tempfile.mkdtemp(prefix="nnforge-verify-"))
        try:
            if outdir is None and targets:
                outdir = self.write(tmp / "out", targets=targets, parallelism=parallelism, progress=progress)
            staged = _Staged(tmp, Path(outdir) if outdir is not None else tmp)
            files = read_manifest(outdir) if targets else {}
            for b in targets:
                staged.src[b], staged.modified[b] = _stage(Path(outdir), files, b, tmp / "src" / b)
            if "verilog" in staged.src:  # a malformed verilog_info.json is refused before any warning
                from .sim.verilog import verilog_info

                verilog_info(staged.src["verilog"], shown=Path(outdir) / "verilog")
            modified = [f for b in targets for f in staged.modified[b]]
            if modified:
                _warn(progress, f"{_pname(outdir)}: {len(modified)} source file(s) differ from what nnforge wrote, "
                                f"compiled as they are: {_file_list(modified)}", UserWarning)
            yield staged
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _verilog_trace(self, src: Path, build: Path, x_int: np.ndarray, progress: Progress, shown: Path):
        """Every engine's output stream on one sample, in the IR's flat order, by engine
        (``verilog_info.json`` of the copy ``src`` of ``shown`` checked, its layers'
        tensors among the design's)."""
        from types import SimpleNamespace

        from .sim import verilog

        info = verilog.verilog_info(src, shown=shown)
        layers = [ly for ly in info["layers"] if ly.get("tensor")]
        for ly in layers:
            if ly["tensor"] not in self.qgraph.tensors or self.qgraph.qtype(ly["tensor"]) is None:
                raise DesignFileError(f"{_pname(shown / 'verilog_info.json')}: layer {_pname(ly['name'])} names "
                                      f"tensor {_pname(ly['tensor'])}, which is not an integer tensor of the design")
        run = verilog.run(self.lowered("verilog"), src, build, x_int.reshape(1, -1), progress,
                          trace=[ly["output"] for ly in layers])
        streams = run.extra["trace"]
        got = {}
        for i, ly in enumerate(layers):
            t = self.qgraph.qtype(ly["tensor"])
            raw = np.asarray(streams.get(ly["output"], []), dtype=np.uint64)
            vals = verilog.to_signed(raw, t.width, t.signed)
            shape = tuple(self.qgraph.shape(ly["tensor"]))
            perm = [int(p) for p in ly["layout"]] if len(ly["layout"]) == len(shape) else list(range(len(shape)))
            if vals.size == int(np.prod(shape)):  # the stream's layout back to the IR's order
                vals = vals.reshape([shape[p] for p in perm]).transpose(np.argsort(perm)).reshape(-1)
            got[i] = vals
        steps = [SimpleNamespace(name=ly["name"], op=ly.get("op", "Dense"), tensor=ly["tensor"]) for ly in layers]
        return steps, got

    # ---- persistence ----------------------------------------------------------------
    def save(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        fd, farrays = to_dict(self.float_graph, "float")
        qd, qarrays = to_dict(self.qgraph, "quant")
        doc = {"format": FORMAT_VERSION, "source": self.source,
               "config": {"weight_bits": self.config.weight_bits, "act_bits": self.config.act_bits,
                          "calibration": self.config.calibration,
                          "overrides": [list(o) for o in self.config.overrides],
                          "layer_weight_bits": [list(o) for o in self.config.layer_weight_bits],
                          "bias_correction": self.config.bias_correction,
                          "per_channel": self.config.per_channel,
                          "from_model": self.config.from_model,
                          "scale": self.config.scale, "asymmetric": self.config.asymmetric,
                          "rounding": self.config.rounding, "dynamic": self.config.dynamic,
                          "float_format": self.config.float_format, "neuzip": self.config.neuzip},
               "float_graph": fd, "quantized_graph": qd, "compression": self.compression}
        np.savez_compressed(folder / "design_arrays.npz", **farrays, **qarrays)
        (folder / "design.json").write_text(json.dumps(doc, indent=1) + "\n")

    @classmethod
    def load(cls, folder, progress: Progress = QUIET) -> "Design":
        """The design saved in ``folder`` by :meth:`write` / :meth:`save`, checked on the way
        in: ``design.json`` against the schema and its size limit, every array of
        ``design_arrays.npz`` against what the design says of it, both graphs by
        :meth:`Graph.verify`, each a regular file (never a FIFO, device or symbolic link).
        Anything else raises :class:`DesignFileError` (one line). In an output folder
        (with a marker) the design files that differ from what nnforge wrote are named in a
        warning (one line even when quiet; a :class:`UserWarning` for the API) and loaded as
        they are."""
        folder = Path(folder)
        path = folder / "design.json"
        if not os.path.lexists(path):
            raise FileNotFoundError(f"{folder} is not an nnforge output folder (no design.json)")
        modified = _modified_design_files(folder)  # checked before anything is read; warned once it loads
        doc = _read_design_json(path)
        consts = {g: check_graph_dict(doc[g], f"{path}: {g}") for g in ("float_graph", "quantized_graph")}
        config = _check_config(doc["config"], f"{path}: config")
        arrays = read_arrays(folder / "design_arrays.npz")
        keys = {k for c in consts.values() for k in c.values()}
        extra = sorted(set(arrays) - keys)
        if extra:
            raise DesignFileError(f"{_pname(folder / 'design_arrays.npz')}: unexpected arrays {', '.join(map(_pname, extra[:5]))}"
                                  f" (the design refers to {len(keys)})")
        fg = graph_from_checked(doc["float_graph"], arrays, f"{path}: float_graph")
        qg = graph_from_checked(doc["quantized_graph"], arrays, f"{path}: quantized_graph")
        design = cls(fg, qg, config, doc["source"])
        design.compression = list(doc["compression"])
        if modified:
            _warn(progress, f"{_pname(folder)}: {len(modified)} design file(s) differ from what nnforge wrote, "
                            f"loaded as they are: {_file_list(modified)}", UserWarning, stacklevel=3)
        return design

    # ---- verification ---------------------------------------------------------------
    def verify(self, x, y=None, backends: Sequence[str] = BACKENDS, outdir=None,
               limit: int | None = None, parallelism: str = "balanced",
               progress: Progress = QUIET) -> VerifyResult:
        """Run each backend on ``x`` and compare every output integer with golden.

        ``outdir`` is a folder written by :meth:`write`; without it the sources are
        written to a temporary folder first. Verifying a folder compiles and runs the C /
        C++ / Verilog it holds (only the files its manifest lists, copied out of it and
        built in the private cache, :mod:`nnforge.sim.cache`); sources that differ from
        what nnforge wrote are warned about and named in each backend's ``modified``.
        """
        backends = check_names(backends, BACKENDS, "backend")
        x = self.check_input(x)
        labels = None if y is None else check_labels(y, len(x), self.output_shape)
        if limit is not None:
            x, labels = x[:limit], None if labels is None else labels[:limit]
        x_int = self.quantize_input(x)
        golden = self.predict_int(x_int)
        with np.errstate(over="ignore", invalid="ignore"):  # the float model may overflow float32
            result = VerifyResult(len(x), _accuracy(run_float(self.float_graph, x)[0], labels))
        models = {b: self.lowered(b) for b in backends if b != "golden"}
        with self._sources(outdir, [b for b in backends if b != "golden"], parallelism, progress) as staged:
            for b in backends:
                t0 = time.monotonic()
                if b == "golden":
                    run_y, extra = golden, None
                else:
                    extra = _run_backend(b, models[b], staged.src[b], staged.work(b), x_int, progress)
                    run_y = extra.y.reshape(golden.shape)
                diff = np.any(run_y.reshape(len(x), -1) != golden.reshape(len(x), -1), axis=1)
                bad = np.flatnonzero(diff)
                result.backends[b] = BackendResult(
                    samples=len(x), mismatches=int(diff.sum()),
                    # float patterns do not sort as their values do: rank the values
                    accuracy=_accuracy(dequantize(run_y, self.output_type) if is_float(self.output_type) else run_y,
                                       labels),
                    cycles_per_inference=getattr(extra, "cycles_per_inference", None),
                    latency_cycles=getattr(extra, "latency_cycles", None),
                    seconds=time.monotonic() - t0, first_mismatch=int(bad[0]) if len(bad) else None,
                    modified=staged.modified.get(b))
                progress(f"{b}: {len(x)} samples, {int(diff.sum())} mismatches")
                if b == "c" and self.config.dynamic:
                    result.backends["c-dynamic"] = replace(
                        self._verify_dynamic(x, labels, staged.src[b], staged.work("c-dynamic"), progress),
                        modified=staged.modified[b])
        return result


MAX_DESIGN_JSON = 64 << 20  # bytes of design.json read at most
DESIGN_KEYS = ("format", "source", "config", "float_graph", "quantized_graph", "compression")


DESIGN_FILES = ("design.json", "design_arrays.npz")  # what Design.load reads


def _load_json(path: Path, what: str):
    """A JSON file of an output folder, parsed (:func:`nnforge.ir.serialize.load_json`): a
    regular file of at most ``MAX_DESIGN_JSON`` bytes, not nested too deep, no integer
    longer than Python converts; else one line naming the file."""
    return load_json(path, what, MAX_DESIGN_JSON)


def _read_design_json(path: Path) -> dict:
    """``design.json`` parsed and its top level checked (size limit before parsing; deep
    nesting refused)."""
    doc = _load_json(path, "a design file")
    check_keys(doc, DESIGN_KEYS, str(path))
    if not is_int(doc["format"]) or doc["format"] != FORMAT_VERSION:
        raise DesignFileError(f"{path}: unknown format {_pname(repr(doc['format'])[:40])} (nnforge reads {FORMAT_VERSION})")
    check_type(doc["source"], lambda v: isinstance(v, str), "a string", f"{path}: source")
    check_type(doc["compression"], lambda v: isinstance(v, list) and all(isinstance(c, dict) for c in v),
               "a list of objects", f"{path}: compression")
    check_depth(doc["compression"], f"{path}: compression")
    return doc


_NUM_OR_NONE = ("a number or null", lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
_STR = ("a string", lambda v: isinstance(v, str))
_REPORT_LAYER = {"name": _STR, "op": _STR, "input": _STR, "output": _STR, "sqnr_db": _NUM_OR_NONE,
                 "sqnr_in_db": _NUM_OR_NONE}
_REPORT_LAYER_OPTIONAL = {"weights": _STR, "acc_width": ("an integer 0..62 or a string",
                                                          lambda v: (is_int(v) and 0 <= v <= 62) or isinstance(v, str))}


def read_report_precision(path: Path) -> dict | None:
    """The precision report (``precision``) of an output folder's ``report.json``, or None
    when there is none: only the fields the report prints, each checked for its type and
    every name made printable; anything else raises :class:`DesignFileError` (one line)."""
    path = Path(path)
    if not os.path.lexists(path):
        return None
    doc = _load_json(path, "a report")
    check_type(doc, lambda v: isinstance(v, dict), "an object", str(path))
    prec = doc.get("precision")
    if prec is None:
        return None
    where = f"{path}: precision"
    check_type(prec, lambda v: isinstance(v, dict), "an object", where)
    out = {}
    for k, (what, ok) in {"samples": ("an integer >= 0", lambda v: is_int(v) and 0 <= v < 1 << 62), "layers": ("a list", lambda v: isinstance(v, list)),
                          "output_sqnr_db": _NUM_OR_NONE, "worst_layer": ("a string or null", lambda v: v is None or
                                                                          isinstance(v, str)),
                          "worst_drop_db": _NUM_OR_NONE}.items():
        out[k] = check_type(prec.get(k), ok, what, f"{where}.{k}")
    if out["worst_layer"] is not None:
        out["worst_layer"] = _pname(out["worst_layer"])
        check_type(out["worst_drop_db"], lambda v: v is not None, "a number", f"{where}.worst_drop_db")
    out["layers"] = [_report_layer(r, f"{where}.layers[{i}]") for i, r in enumerate(out["layers"])]
    return out


def _report_layer(r, where: str) -> dict:
    check_type(r, lambda v: isinstance(v, dict), "an object", where)
    row = {}
    for k, (what, ok) in {**_REPORT_LAYER, **_REPORT_LAYER_OPTIONAL}.items():
        if k in _REPORT_LAYER or k in r:
            v = check_type(r.get(k), ok, what, f"{where}.{k}")
            row[k] = _pname(v) if isinstance(v, str) else v
    return row


def _check_config(cfg, where: str) -> QuantConfig:
    """The ``config`` object of design.json as a :class:`QuantConfig`: exactly its fields,
    each of its type, values as QuantConfig allows them."""
    from dataclasses import fields

    kinds = {f.name: f.type for f in fields(QuantConfig)}
    check_keys(cfg, tuple(kinds), where)
    for k, v in cfg.items():
        w = f"{where}.{k}"
        if k in ("weight_bits", "act_bits"):
            check_type(v, is_int, "an integer", w)
        elif k in ("overrides", "layer_weight_bits"):
            second = (lambda x: isinstance(x, str)) if k == "overrides" else is_int
            check_type(v, lambda x: isinstance(x, list) and all(
                isinstance(o, list) and len(o) == 2 and isinstance(o[0], str) and second(o[1]) for o in x),
                "a list of [name, value] pairs", w)
        elif kinds[k] in ("bool", bool):
            check_type(v, lambda x: isinstance(x, bool), "true or false", w)
        else:
            check_type(v, lambda x: isinstance(x, str), "a string", w)
    if cfg["float_format"] not in ("", "fp16", "bf16"):
        raise DesignFileError(f"{where}.float_format: unknown float format {_pname(cfg['float_format'])}")
    try:
        if cfg["neuzip"]:
            from .passes.floatfmt import parse_neuzip

            parse_neuzip(cfg["neuzip"])
        return QuantConfig(**{**cfg, "overrides": tuple(map(tuple, cfg["overrides"])),
                              "layer_weight_bits": tuple(map(tuple, cfg["layer_weight_bits"]))})
    except ValueError as e:
        raise DesignFileError(f"{where}: {_pname(' '.join(str(e).split()))}") from None


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Text columns as wide as their widest cell (real-scale types are long); the first
    two left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in rows]


def _quant_references(f: Graph) -> dict[str, str]:
    """For a model carrying its own quantization: the float tensor each quantized tensor
    stands for, the output of the Quant that marks it (through a Relu the quantizer fused),
    so the precision report compares with the model's own fake-quantized values."""
    refs: dict[str, str] = {}
    for node in f.topo():
        if node.op != "Quant":
            continue
        t = node.inputs[0]
        refs[t] = node.outputs[0]
        producer = f.producer(t)
        if producer is not None and producer.op == "Relu":
            refs[producer.inputs[0]] = node.outputs[0]
    return refs


@dataclass
class LayerTrace:
    """One layer of a backend's trace against golden."""

    step: str
    op: str
    tensor: str
    values: int
    mismatches: int  # output values that differ from golden
    first_index: int | None = None  # the first differing value (row-major in the IR shape)

    def as_dict(self) -> dict:
        return {"step": self.step, "op": self.op, "tensor": self.tensor, "values": self.values,
                "mismatches": self.mismatches, "first_index": self.first_index}


def trace_text(traces: dict[str, list[LayerTrace]], sample: int) -> str:
    """The per-layer comparison of :meth:`Design.trace`, naming each backend's first
    layer that differs from golden."""
    lines = [f"Trace of sample {sample}, every layer against golden:"]
    for b, layers in traces.items():
        first = next((t for t in layers if t.mismatches), None)
        lines.append(f"  {b}: " + (f"first layer that differs: {first.step} ({first.op}, tensor {first.tensor}), "
                                   f"{first.mismatches} of {first.values} values, first at index {first.first_index}"
                                   if first else f"all {len(layers)} layers equal golden"))
        for t in layers:
            lines.append(f"    {t.step:<24} {t.op:<20} {t.values:>7} values  "
                         + ("ok" if not t.mismatches else f"{t.mismatches} differ"))
    return "\n".join(lines) + "\n"


@dataclass
class _Staged:
    """Private copies of the sources of the output folder ``outdir`` (``src``, by backend),
    the files that differ from the manifest (``modified``), and work folders for the runs."""

    root: Path
    outdir: Path
    src: dict[str, Path] = field(default_factory=dict)
    modified: dict[str, list[str]] = field(default_factory=dict)

    def work(self, name: str) -> Path:
        p = self.root / "work" / name
        p.mkdir(parents=True, exist_ok=True)
        return p


def _stage(outdir: Path, files: dict[str, str], backend: str, dest: Path) -> tuple[Path, list[str]]:
    """Copy the files the manifest ``files`` lists under ``outdir/backend`` into ``dest``,
    each only if it is a regular file inside ``outdir`` (no symbolic link anywhere on its
    path); returns ``dest`` and the files that differ from the manifest."""
    listed = sorted(rel for rel in files if rel.startswith(backend + "/"))
    if not listed or not (outdir / backend).is_dir():
        raise FileNotFoundError(f"{outdir} has no {backend} sources; compile with --targets including {backend}")
    modified = modified_files(outdir, files, backend)
    root = outdir.resolve()
    for rel in listed:
        path = outdir / rel
        if not path.exists() and not path.is_symlink():
            continue  # named as modified; a build that needs it says so
        if path.is_symlink() or path.resolve() != root / rel or not path.is_file():
            what = "a symbolic link" if path.is_symlink() else "not a regular file inside the folder"
            raise OutputFolderError(f"{_pname(outdir)}: {_pname(rel)} is {what}; refusing to compile it")
        target = dest / rel[len(backend) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    return dest, modified


def _file_list(files: list[str], shown: int = 8) -> str:
    return ", ".join(map(_pname, files[:shown])) + (" ..." if len(files) > shown else "")


def _modified_design_files(folder: Path) -> list[str]:
    """The design files (:data:`DESIGN_FILES`) of an output folder that differ from its
    manifest: edited, not regular files, missing, or present but not listed; [] for a
    folder without a marker (written by :meth:`Design.save`)."""
    if not os.path.lexists(folder / MARKER):
        return []
    files = read_manifest(folder)
    unlisted = [f for f in DESIGN_FILES if f not in files and os.path.lexists(folder / f)]
    return unlisted + modified_files(folder, {f: files[f] for f in DESIGN_FILES if f in files})


def _run_backend(name: str, hw: Program | HwModel, src: Path, build: Path, x_int: np.ndarray, progress: Progress):
    x_flat = x_int.reshape(len(x_int), -1)
    if name == "c":
        from .sim.native import run_c

        return run_c(hw, src, build, x_flat, progress)
    if name == "hls":
        from .sim.native import run_hls

        return run_hls(hw, src, build, x_flat, progress)
    if name == "verilog":
        from .sim import verilog

        return verilog.run(hw, src, build, x_flat, progress)
    raise ValueError(name)


def check_names(names: Iterable[str], allowed: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in names]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def compile(model, calibration=None, bits: int = 8, weight_bits: int | None = None,
            act_bits: int | None = None, progress: Progress = QUIET, calibration_method: str = "minmax",
            calibration_overrides: dict[str, str] | None = None, mixed_precision: float | None = None,
            validation=None, bias_correction: bool | None = None, per_channel: bool = False,
            scale: str = "pow2", asymmetric: bool = False, rounding: str = "nearest",
            dynamic: bool = False, prune: float | None = None, prune_structured: float | None = None,
            low_rank: float | None = None, share_weights: int | None = None,
            float_format: str | None = None, neuzip: str | None = None,
            prune_max_drop: float | None = None, max_elements: int | None = None) -> Design:
    """Import an ONNX model (path or ModelProto), calibrate on ``calibration`` (float
    samples shaped like the model input, batch first) and quantize it.

    ``calibration_method``: how each activation's range is chosen from the calibration
    data, ``minmax`` (default), ``percentile:P``, ``mse`` or ``kl`` (see
    :mod:`nnforge.passes.calibrate`); ``calibration_overrides`` maps tensor or node names
    to another method.

    ``mixed_precision``: the largest accuracy drop from the float model allowed (a
    fraction: 0.01 is one point); per-layer weight widths are searched on ``validation``
    (``(x, y)`` with integer labels) to meet it with the fewest weight bits
    (:mod:`nnforge.passes.mixed`); the search is kept as ``design.mixed``.

    ``bias_correction``: move each Dense / Conv bias by the error its quantized weights
    make on the calibration data's mean input; by default on when weights are narrower
    than 8 bits (or mixed precision may make them so), where it pays (digits CNN at
    4-bit weights: 63.6% -> 85.8%).

    ``per_channel``: every output channel of a Dense / Conv gets its own power-of-two
    weight scale (a per-channel shift in the requantization) instead of one per tensor.

    ``scale``: ``pow2`` (default: every rescale is a shift, the FPGA choice) or ``real``
    (each activation's scale is its calibrated range over the integer range, weights
    symmetric with scale max|w| / (2**(bits-1) - 1); rescales are an integer multiplier and
    a shift, the MCU choice). ``asymmetric`` (real scales only): signed activations use the
    whole unsigned grid with a zero point instead of a symmetric signed one.

    ``rounding``: ``nearest`` (default) or ``search``: per output channel, each weight
    rounds down or up as lowers the layer's output error on calibration inputs
    (:mod:`nnforge.passes.rounding`).

    ``dynamic``: the C target also gets ``nnforge_run_dynamic`` (``c/nnforge_dynamic.c``),
    where every activation's power-of-two scale is chosen at run time per input from the
    values it holds (:mod:`nnforge.ir.dynamic`); verify checks it as ``c-dynamic``.

    ``prune_structured``: remove that fraction of the output channels of every Dense / Conv
    whose channels can go (with the inputs of the layers that read them); ``prune``: set
    that fraction of every Dense / Conv layer's weights to 0. Both are one-shot, on the
    calibration data: the weights kept are refitted by least squares so that each layer
    reproduces the unpruned one (:mod:`nnforge.passes.prune`). ``low_rank``: split every
    Dense and 1x1 Conv into two thinner layers keeping that share of its singular values'
    energy, where that saves weights, the second refitted on the calibration data
    (:mod:`nnforge.passes.lowrank`). ``share_weights``: k, every Dense / Conv layer's
    weights clustered into 2^k shared values (k-means, the values refitted on the
    calibration data; :mod:`nnforge.passes.share`). They run in that order: low rank,
    structured pruning, magnitude pruning, sharing; ``design.compression`` records what
    each did.

    ``prune_max_drop`` (instead of ``prune``): the largest magnitude-pruning sparsity
    (steps of 5-10%) whose pruned float model loses at most this much accuracy (a fraction)
    on ``validation`` (``(x, y)``), against the unpruned one (:func:`.passes.prune.search_sparsity`).

    ``float_format``: ``fp16`` or ``bf16``: instead of quantizing to fixed point, run the
    model in that 16-bit float format with float32 accumulation, every operation rounded
    to nearest even (the contract: :mod:`nnforge.ir.floats`); no calibration is needed.
    ``neuzip`` (float formats only): ``lossless`` stores each layer's weights with their
    exponents entropy-coded (the C backend decodes one layer at a time; same results), or
    ``lossy:K``: weights keep K mantissa bits under one power-of-two scale per block of
    32 (:mod:`nnforge.passes.neuzip`), which changes them, so every backend uses them.

    ``max_elements``: the largest tensor the model may declare or constant folding may
    produce, in elements (default 2^28; :mod:`nnforge.frontend.limits`); a model over it is
    refused before anything is allocated."""
    from .frontend import import_onnx

    wb = weight_bits or bits
    if bias_correction is None:
        bias_correction = wb < 8 or mixed_precision is not None
    cfg = QuantConfig(weight_bits=wb, act_bits=act_bits or bits, calibration=calibration_method,
                      overrides=tuple((calibration_overrides or {}).items()), bias_correction=bool(bias_correction),
                      per_channel=bool(per_channel), scale=scale, asymmetric=bool(asymmetric),
                      rounding=rounding, dynamic=bool(dynamic))
    t0 = time.monotonic()
    g = import_onnx(model, max_elements=max_elements)
    progress(f"imported {len(g)} nodes in {time.monotonic() - t0:.2f}s")
    f = run_float_pipeline(g)
    if float_format is not None or neuzip is not None:
        return _compile_float(g, f, cfg, calibration, model, float_format, neuzip, progress,
                              (prune, prune_structured, low_rank, share_weights), mixed_precision)
    if is_prequantized(f):
        return _compile_prequantized(g, f, cfg, calibration, model, mixed_precision, progress, prune, prune_structured,
                                     low_rank, share_weights)
    x_cal = _calibration_batch(f, calibration)
    prune = _prune_budget(f, x_cal, prune, prune_max_drop, validation, progress)
    compression = _compress(f, x_cal, prune, prune_structured, low_rank, share_weights, progress)
    ranges = _checked_ranges(f, x_cal, cfg, progress)
    means = channel_means(f, x_cal) if cfg.bias_correction else None
    inputs = layer_inputs(f, x_cal) if cfg.rounding == "search" else None
    mixed = None
    if mixed_precision is not None:
        mixed = _search_mixed(f, ranges, cfg, mixed_precision, validation, progress, means, inputs)
        cfg = mixed.config
    q = quantize_graph(f, ranges, cfg, means, inputs)
    q.verify()
    if cfg.dynamic:
        from .ir.dynamic import check_dynamic

        check_dynamic(q)
    progress(f"quantized to {cfg.weight_bits}-bit weights{' per channel' if cfg.per_channel else ''} / "
             f"{cfg.act_bits}-bit activations "
             f"(calibration: {cfg.calibration})")
    design = Design(g, q, cfg, source=str(model) if isinstance(model, (str, os.PathLike)) else "")
    design.mixed = mixed
    design.compression = compression
    design._float_passes = f
    design.calibration_precision = design.precision(as_batch(calibration, f.shape(f.inputs[0])), limit=64)
    return design


def _calibration_batch(f: Graph, calibration) -> np.ndarray:
    """The calibration data of a float model as a batch, refused when it is missing or
    cannot give the input a range."""
    if calibration is None:
        raise DataError("a float model needs calibration data (samples shaped like the model input)")
    x_cal = as_batch(calibration, f.shape(f.inputs[0]))
    check_input_spread(f, x_cal)  # before pruning or compression spends time on it
    return x_cal


def _checked_ranges(f: Graph, x_cal: np.ndarray, cfg: QuantConfig, progress: Progress) -> dict:
    """Every tensor's calibrated range, widened where the calibration data does not span
    it (:func:`check_spread`), with a warning for each such case."""
    ranges = calibrate(f, x_cal, cfg.act_bits, cfg.calibration, dict(cfg.overrides))
    spread = check_spread(f, x_cal, ranges)
    for w in spread.warnings:
        _warn(progress, w)
    return spread.ranges


def _search_mixed(f: Graph, ranges: dict, cfg: QuantConfig, mixed_precision, validation, progress: Progress,
                  means, inputs):
    """The mixed-precision search (see compile), its budget and validation data checked first."""
    from .passes.mixed import search

    if not 0.0 <= float(mixed_precision) < 1.0:
        raise DataError("mixed_precision is the accuracy drop allowed as a fraction, e.g. 0.01 for one point")
    if validation is None:
        raise DataError("mixed precision needs validation data with labels (x, y)")
    x_val, y_val = validation
    if y_val is None:
        raise DataError("mixed precision needs labels in the validation data")
    x_val = as_batch(x_val, f.shape(f.inputs[0]))
    y_val = check_labels(y_val, len(x_val), f.shape(f.outputs[0]), "validation labels")
    mixed = search(f, ranges, cfg, x_val, y_val, float(mixed_precision), progress=progress, means=means,
                   inputs=inputs)
    progress(mixed.text().rstrip())
    return mixed


def _warn(progress: Progress, msg: str, category: type[Warning] = CalibrationWarning, stacklevel: int = 4) -> None:
    """A warning that changes what a result means: one line on the command line (even
    quiet), a ``category`` warning through :mod:`warnings` for the API (progress QUIET or
    without ``warn``). ``stacklevel`` counts from here: the default points at the call of
    :func:`compile` (this is called from its helper :func:`_checked_ranges`)."""
    warn = getattr(progress, "warn", None)
    if progress is QUIET or warn is None:
        warnings.warn(msg, category, stacklevel=stacklevel)
    else:
        warn(msg)


def _prune_budget(f: Graph, x_cal: np.ndarray, prune: float | None, max_drop: float | None, validation,
                  progress: Progress) -> float | None:
    """The magnitude-pruning sparsity: ``prune``, or the one searched to an accuracy budget."""
    if max_drop is None:
        return prune
    from .passes.prune import search_sparsity

    if prune is not None:
        raise DataError("give a pruning sparsity or an accuracy budget for it, not both")
    if not 0.0 <= float(max_drop) < 1.0:
        raise DataError("the pruning budget is the accuracy drop allowed as a fraction, e.g. 0.01 for one point")
    if validation is None or validation[1] is None:
        raise DataError("pruning to an accuracy budget needs validation data with labels (x, y)")
    x_val = as_batch(validation[0], f.shape(f.inputs[0]))
    y_val = check_labels(validation[1], len(x_val), f.shape(f.outputs[0]), "validation labels")
    t0 = time.monotonic()
    s, acc, base = search_sparsity(f, "magnitude", x_val, y_val, float(max_drop), x_cal[:CAL_REFIT])
    progress(f"pruning budget {float(max_drop):.1%}: {s:.0%} of the weights can go ({acc:.1%} float accuracy on the "
             f"validation data against {base:.1%} unpruned; searched in {time.monotonic() - t0:.1f}s)")
    return s or None


def _compress(f: Graph, x_cal: np.ndarray, prune: float | None, prune_structured: float | None,
              low_rank: float | None, share: int | None, progress: Progress) -> list[dict]:
    """Low rank, structured pruning, magnitude pruning, then weight sharing of the float
    graph ``f`` in place (see compile)."""
    from .passes.lowrank import low_rank as split
    from .passes.prune import prune_magnitude, prune_structured as structured
    from .passes.share import share_weights as cluster

    done = []
    for amount, fn in ((low_rank, split), (prune_structured, structured), (prune, prune_magnitude),
                       (share, cluster)):
        if amount is None:
            continue
        t0 = time.monotonic()
        rep = fn(f, amount, x_cal[:CAL_REFIT])
        f.verify()
        progress(rep.text().rstrip() + f"\n(refitted on {min(len(x_cal), CAL_REFIT)} calibration samples in "
                 f"{time.monotonic() - t0:.1f}s)")
        done.append(rep.as_dict())
    return done


def _compile_float(g: Graph, f: Graph, cfg: QuantConfig, calibration, model, fmt: str | None, neuzip: str | None,
                   progress: Progress, compress: tuple, mixed_precision) -> Design:
    """float16 / bfloat16 (see compile): the float graph's weights narrowed, no calibration."""
    from .passes.floatfmt import FloatFormatError, lossy_weights, parse_neuzip, to_float

    if fmt is None:
        raise DataError("NeuZip stores float weights: give a float format too (--float fp16 or bf16)")
    if is_prequantized(f):
        raise DataError("this model carries its own integer quantization; --float runs float models")
    if mixed_precision is not None or cfg.dynamic or cfg.per_channel or cfg.scale != "pow2":
        raise DataError("--float replaces fixed-point quantization; the quantization options do not apply")
    try:
        kind, k = parse_neuzip(neuzip)
    except ValueError as e:
        raise DataError(str(e)) from None
    compression = []
    if any(a is not None for a in compress):
        if calibration is None:
            raise DataError("pruning, low rank and weight sharing refit on calibration data; give some")
        compression = _compress(f, as_batch(calibration, f.shape(f.inputs[0])), *compress, progress)
    try:
        q = to_float(f, fmt)
        if kind == "lossy":
            q = lossy_weights(q, k)
    except FloatFormatError as e:
        raise DataError(str(e)) from None
    cfg = replace(cfg, float_format=fmt, neuzip=neuzip or "", bias_correction=False)
    progress(f"running in {fmt} (float32 accumulation, round to nearest even)"
             + (f", NeuZip {neuzip} weights" if neuzip else ""))
    design = Design(g, q, cfg, source=str(model) if isinstance(model, (str, os.PathLike)) else "")
    design.compression = compression
    design._float_passes = f
    return design


def _compile_prequantized(g: Graph, f: Graph, cfg: QuantConfig, calibration, model, mixed_precision,
                          progress: Progress, prune=None, prune_structured=None, low_rank=None,
                          share_weights=None) -> Design:
    """A model that carries its own quantization (QDQ, QONNX): no calibration; the
    calibration data, if given, only feeds the precision report."""
    if mixed_precision is not None:
        raise DataError("mixed precision searches widths for a float model; this model is already quantized")
    if any(v is not None for v in (prune, prune_structured, low_rank, share_weights)):
        raise DataError("pruning, low rank and weight sharing work on a float model before quantization; this "
                        "model is already quantized")
    cfg = replace(cfg, from_model=True, bias_correction=False)
    q = quantize_prequantized(f, cfg)
    q.verify()
    progress(f"quantized as the model states ({sum(n.op == 'Quant' for n in f.topo())} quantization points)")
    design = Design(g, q, cfg, source=str(model) if isinstance(model, (str, os.PathLike)) else "")
    design._float_passes = f
    if calibration is not None:
        design.calibration_precision = design.precision(as_batch(calibration, f.shape(f.inputs[0])), limit=64)
    return design


__all__ = ["BackendError", "DataError", "Design", "VerifyResult", "compile"]
