"""The Design: one object holding a compiled model, as notebooks want it.

    design = nnforge.compile("model.onnx", calibration=x_cal, bits=8)
    y_int = design.predict(x)                 # golden integer model
    design.write("out/", targets=["c", "hls", "verilog"])
    result = design.verify(x, y)              # every backend against golden

The pieces live beside it: the compile pipeline in :mod:`nnforge.pipeline`, the targets
in :mod:`nnforge.targets`, persistence in :mod:`nnforge.persist`, verification and
tracing in :mod:`nnforge.verification`, reports in :mod:`nnforge.report`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import persist
from .codegen.lower import BackendError, HwModel, lower
from .data import DataError, as_batch, check_labels
from .ir import Graph, dequantize, quantize_float, run_float, run_int
from .passes import QuantConfig, run_float_pipeline
from .persist import file_list, read_report_precision
from .pipeline import Compiled, Options, compile_model, source_name
from .report import LayerTrace, layer_rows, precision, precision_text, report_info, report_text, summary_text
from .report import tensor_profile, trace_text, value_envs
from .ir.text import name as pname
from .sim.files import check_replaceable, output_folder, replace_dir, temp_dir, write_manifest
from .sim.progress import QUIET, Progress, warn
from .sim.parts import VIVADO_PART
from .targets import PARALLELISM, TARGETS as TARGET_TABLE, WriteJob, check_names, folding_goal
from .verification import GOLDEN, BackendResult, VerifyResult, trace as trace_layers, verify as verify_backends

TARGETS = tuple(TARGET_TABLE)  # the names of the targets, in the order they are written
BACKENDS = (GOLDEN,) + TARGETS
TRACEABLE = TARGETS  # backends whose every layer verify --trace compares


class Design:
    """A compiled model: the float graph, the quantized graph, and what was chosen."""

    def __init__(self, float_graph: Graph, qgraph: Graph, config: QuantConfig, source: str = "") -> None:
        self.float_graph = float_graph  # as imported: the reference float model
        self.qgraph = qgraph  # quantized: defines every integer result
        self.config = config
        self.mixed = None  # the mixed-precision search that chose config, if one ran
        self.compression: list[dict] = []  # what each compression pass did (PruneReport.as_dict ...)
        self.calibration_precision = None  # precision() on the calibration data, from compile
        self.calibration_profile = None  # profile() on the same samples (report.json's "profile")
        self._float_passes: Graph | None = None  # the float graph after the float passes (q's names)
        self.source = source
        self.training: list[dict] = []  # fine-tuning runs that made this design (train.loop records)
        self._imported_graph: Graph | None = None  # the model as imported, after the float passes (the teacher)

    @classmethod
    def from_compiled(cls, c: Compiled, source: str = "") -> "Design":
        design = cls(c.float_graph, c.qgraph, c.config, source=source)
        design.mixed = c.mixed
        design.compression = c.compression
        design._float_passes = c.float_passes
        design.calibration_precision = c.calibration_precision
        design.calibration_profile = c.calibration_profile
        return design

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

    def lowered(self, target: str):
        """What ``target`` renders (a Program for C and HLS, the Dense chain or the engine
        graph for Verilog, a float program for a float format). Raises
        :class:`BackendError` if the target cannot implement the graph."""
        if target not in TARGET_TABLE:
            raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
        return TARGET_TABLE[target].lower(self.qgraph, self.config)

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

    def predict_dynamic(self, x) -> np.ndarray:
        """Golden outputs of dynamic quantization (run-time scales), as real values."""
        from .ir.dynamic import dequantize_dynamic, run_dynamic

        y, frac = run_dynamic(self.qgraph, self.check_input(x))
        return dequantize_dynamic(y, frac)

    # ---- reporting ------------------------------------------------------------------
    def layers(self) -> list[dict]:
        return layer_rows(self.qgraph)

    def summary(self) -> str:
        return summary_text(self.qgraph)

    __repr__ = summary

    def precision(self, x, limit: int = 256) -> dict:
        """Per layer: formats, accumulator width and the SQNR of its output (golden
        integers scaled back against the float model, in dB) on the samples ``x`` (the
        first ``limit``); ``worst_layer`` is the layer whose output SQNR falls furthest
        below its input's, where quantization hurts most."""
        x = as_batch(x, self.input_shape)[:limit]
        return precision(self._passes_graph(), self.qgraph, x, self.quantize_input(x))

    precision_text = staticmethod(precision_text)

    def profile(self, x, limit: int = 256) -> dict:
        """Histograms of the model input, every node's output and every layer's weights on
        the samples ``x`` (the first ``limit``): the float model's values and the golden
        model's, the interval each format represents and the float values it saturates
        (:func:`nnforge.report.tensor_profile`; what ``nnforge report --html`` draws)."""
        x = as_batch(x, self.input_shape)[:limit]
        return tensor_profile(self._passes_graph(), self.qgraph, x, self.quantize_input(x))

    def precision_and_profile(self, x, limit: int = 256) -> tuple[dict, dict]:
        """:meth:`precision` and :meth:`profile` on the same samples, from one run of the
        float and golden models."""
        x = as_batch(x, self.input_shape)[:limit]
        f, x_int = self._passes_graph(), self.quantize_input(x)
        envs = value_envs(f, self.qgraph, x, x_int)
        return precision(f, self.qgraph, x, x_int, envs), tensor_profile(f, self.qgraph, x, x_int, envs=envs)

    # ---- writing --------------------------------------------------------------------
    def write(self, outdir, targets: Iterable[str] = TARGETS, parallelism: str = "balanced",
              progress: Progress = QUIET, *, target_fps: float | None = None, clock_mhz: float = 100.0,
              max_multipliers: int | None = None, max_luts: int | None = None, max_ffs: int | None = None,
              max_bram: int | None = None, arch: str | None = None, part: str | None = None) -> Path:
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
        built from LUTs and cost none), ``max_luts`` LUTs, ``max_ffs`` flip-flops and
        ``max_bram`` block RAMs by the resource estimate. Each engine gets the fewest
        multipliers that keep it within the period. ``arch``: the architecture the estimate
        is made for, ``ecp5`` (default: LUT4s, DP16KD blocks) or ``amd`` (an AMD 7 series or
        UltraScale+ part: LUT6s, 36 kbit block RAM tiles); ``--fit PART`` sets it from the part.
        ``part`` (an AMD part's Vivado name) and ``clock_mhz``: what the HLS target's Vitis
        script (``run_hls.tcl``) synthesizes for (default: the Pynq-Z2's xc7z020clg400-1)."""
        targets = check_names(targets, TARGETS, "target")
        if not (isinstance(clock_mhz, (int, float)) and clock_mhz > 0):
            raise ValueError(f"the clock must be a positive frequency in MHz, got {clock_mhz}")
        if part is not None and not VIVADO_PART.fullmatch(part):
            raise ValueError(f"{part!r} is not an AMD part's Vivado name (e.g. xc7z020clg400-1)")
        parallelism = folding_goal(parallelism, target_fps, clock_mhz, max_multipliers, max_luts, max_ffs, max_bram,
                                   arch)
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
            info = self._write_into(tmp, models, targets, parallelism, progress, part, clock_mhz)
            (tmp / "report.json").write_text(json.dumps(info, indent=2) + "\n")
            (tmp / "report.txt").write_text(self._report_text(info))
            write_manifest(tmp)  # last: a folder with a marker is complete
            replace_dir(tmp, dest, check=lambda old: check_replaceable(old, shown=outdir))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        progress(f"wrote {', '.join(targets)} to {outdir}")
        return outdir

    def _write_into(self, tmp: Path, models: dict, targets, parallelism, progress, part=None,
                    clock_mhz: float = 100.0) -> dict:
        """Every target's sources, the design files and the report sections, into ``tmp``."""
        self.save(tmp)
        info = report_info(self, targets)
        job = WriteJob(self.qgraph, self.config, parallelism, progress, part, clock_mhz)
        for name, target in TARGET_TABLE.items():  # in the table's order, whatever the order asked
            if name in models:
                section = target.write(models[name], tmp / name, job)
                if section is not None:
                    info[name] = section
        return info

    def _report_text(self, info: dict) -> str:
        return report_text(self, info)

    # ---- persistence ----------------------------------------------------------------
    def save(self, folder) -> None:
        persist.save(folder, self.float_graph, self.qgraph, self.config, self.source, self.compression, self.training)

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
        saved = persist.load(folder)
        design = cls(saved.float_graph, saved.qgraph, saved.config, saved.source)
        design.compression = saved.compression
        design.training = saved.training
        if saved.modified:
            warn(progress, f"{pname(Path(folder))}: {len(saved.modified)} design file(s) differ from what nnforge "
                           f"wrote, loaded as they are: {file_list(saved.modified)}", UserWarning)
        return design

    # ---- training -------------------------------------------------------------------
    def finetune(self, x, y=None, *, validation=None, epochs: int = 10, lr: float = 0.0015, batch: int = 64,
                 distill: float | None = None, distill_weight: float = 0.5, seed: int = 0,
                 formats: bool = True, prune: float | None = None, prune_scope: str = "layer",
                 progress: Progress = QUIET) -> "Design":
        """A new design whose weights are trained through this design's own integer
        arithmetic (:mod:`nnforge.train`: PyTorch, ``pip install nnforge[train]``): the same
        types, scales, widths and compression (pruned weights stay 0, shared weights stay
        shared), the integers moved by straight-through gradients. Every target written
        from it and its golden model compute exactly what the training's forward pass did.

        ``x``: float training samples; ``y``: integer class labels (cross entropy), or float
        targets shaped like the output (mean squared error), or None with ``distill``.
        ``distill=T``: the float model is the teacher at temperature ``T``; with labels the
        loss is ``(1 - distill_weight) * label loss + distill_weight * distillation loss``.
        ``validation``: ``(x, y)``; the epoch with the best validation score is kept (the
        design's own weights if none beats them). Adam with learning rate ``lr`` (a share of each
        weight grid's range per update; the bias's of its layer's output range), decayed to 0
        over the run by a cosine, on mini-batches of ``batch`` in an order drawn from ``seed``.
        ``formats``: first search each activation's format and each layer's weight step on
        the training loss (:mod:`nnforge.train.ranges`). ``prune``: gradual magnitude pruning
        to that sparsity during the run (a cubic schedule; the weights set to 0 stay 0): of each
        layer (``prune_scope="layer"``), or of the network as a whole (``"global"``: the
        smallest weights relative to their layer's largest go first, so the layers lose
        different shares, none more than 95%), recorded in ``design.compression`` like compile's pruning. The run is recorded in
        ``design.training`` (and the reports)."""
        from .train import require_torch

        require_torch()
        from .train.loop import TrainConfig, train_graph

        cfg = TrainConfig(epochs=epochs, lr=lr, batch=batch, distill=distill, distill_weight=distill_weight,
                          seed=seed, prune=prune, prune_scope=prune_scope)
        if self.config.float_format or self.config.neuzip:
            raise ValueError("fine-tuning trains fixed-point designs; this one runs in a float format")
        x = self.check_input(x)
        y = self._targets(y, len(x), "labels")
        val = None
        if validation is not None:
            vx, vy = validation
            vx = self.check_input(vx)
            val = (vx, self._targets(vy, len(vx), "validation labels"))
        teacher = self._teacher(x) if distill is not None else None
        progress(f"finetune: {len(x)} samples, {epochs} epoch(s), batch {batch}, lr {lr:g}"
                 + (f", distillation T={distill:g}" if distill is not None else ""))
        q, record = train_graph(self.qgraph, self.compression, self._passes_graph(), cfg, x, y, teacher, val,
                                self.config if formats else None, progress)
        if val is not None and val[1].ndim == 1:
            record["validation_float"] = float(np.mean(self._teacher(vx).argmax(axis=1) == val[1]))
        design = Design(self.float_graph, q, self.config, source=self.source)
        design.mixed, design.compression = self.mixed, list(self.compression)
        if "pruned" in record:  # gradual pruning: a magnitude-pruning record, as compile's
            design.compression.append(record.pop("pruned"))
        design.training = [*self.training, record]
        design._float_passes = self._float_passes
        return design

    def _passes_graph(self) -> Graph:
        """The float graph after the float passes with the quantized graph's names: from
        compilation (compression applied), or for a loaded design the model as imported."""
        if self._float_passes is None:
            self._float_passes = self._imported()
        return self._float_passes

    def _imported(self) -> Graph:
        """The model as imported, after the float passes (no compression), computed once."""
        if self._imported_graph is None:
            self._imported_graph = run_float_pipeline(self.float_graph)
        return self._imported_graph

    def _targets(self, y, n: int, what: str):
        """Class labels (1-D integers) checked against the output, float targets shaped like
        the output, or None."""
        if y is None:
            return None
        y = np.asarray(y)
        if y.dtype.kind in "iu":
            return check_labels(y, n, self.output_shape, what)
        if y.dtype.kind != "f" or y.size != n * int(np.prod(self.output_shape)) or not np.all(np.isfinite(y)):
            raise DataError(f"{what}: expected integer class labels or {n} finite float targets of shape "
                            f"{self.output_shape}, got {y.dtype} {y.shape}")
        return y.reshape(n, -1).astype(np.float64)

    def _teacher(self, x: np.ndarray) -> np.ndarray:
        """The float model's values of the quantized graph's output tensor (before a final
        softmax the quantizer dropped), per sample flattened: the distillation teacher. The
        model as imported (after the float passes, before any compression), so that a
        design compiled here and one loaded from its folder learn from the same teacher."""
        env = run_float(self._imported(), x, keep=True)
        out = self.qgraph.outputs[0]
        if out not in env:
            raise ValueError(f"the float model has no tensor {pname(out)} to distill from")
        return np.asarray(env[out], dtype=np.float64).reshape(len(x), -1)

    # ---- verification ---------------------------------------------------------------
    def verify(self, x, y=None, backends: Sequence[str] = BACKENDS, outdir=None,
               limit: int | None = None, parallelism: str = "balanced",
               progress: Progress = QUIET, jobs: int | None = None, scheduler: str | None = None) -> VerifyResult:
        """Run each backend on ``x`` and compare every output integer with golden.

        ``outdir`` is a folder written by :meth:`write`; without it the sources are
        written to a temporary folder first. Verifying a folder compiles and runs the C /
        C++ / Verilog it holds (only the files its manifest lists, copied out of it and
        built in the private cache, :mod:`nnforge.sim.cache`); sources that differ from
        what nnforge wrote are warned about and named in each backend's ``modified``.

        ``jobs`` processes (default None: one per core) share each built backend's
        samples: the program is built once (on sample 0), then the other samples run in
        contiguous shards at once and are put back in order; ``jobs=1`` runs them all in
        one process. A shard that fails raises its error naming its samples.

        ``scheduler``: a Dask scheduler's address (``tcp://host:port``); the samples of the
        slow backends (the Verilog simulation, a program of many MACs) are then split into
        one shard per worker thread of that cluster instead (:mod:`nnforge.cluster`).
        """
        backends = check_names(backends, BACKENDS, "backend")
        return verify_backends(self, x, y, backends, outdir, limit, parallelism, progress, jobs=jobs,
                               scheduler=scheduler)

    def trace(self, x, backends: Sequence[str] = TRACEABLE, outdir=None, sample: int = 0,
              progress: Progress = QUIET) -> dict[str, list[LayerTrace]]:
        """Run sample ``sample`` of ``x`` through each backend with tracing on and compare
        every layer's output with golden's: C and HLS C++ built to report every step's
        buffer, Verilog with every engine's output stream recorded in the simulation (and
        put back from its layout into the IR's order)."""
        backends = check_names(backends, TRACEABLE, "traceable backend")
        return trace_layers(self, x, backends, outdir, sample, progress)


def compile(model, calibration=None, bits: int = 8, weight_bits: int | None = None,
            act_bits: int | None = None, progress: Progress = QUIET, calibration_method: str = "minmax",
            calibration_overrides: dict[str, str] | None = None, mixed_precision: float | None = None,
            validation=None, bias_correction: bool | None = None, per_channel: bool = False,
            scale: str = "pow2", asymmetric: bool = False, rounding: str = "nearest",
            dynamic: bool = False, prune: float | None = None, prune_structured: float | None = None,
            low_rank: float | None = None, share_weights: int | None = None,
            float_format: str | None = None, neuzip: str | None = None,
            prune_max_drop: float | None = None, max_elements: int | None = None,
            mcu: str = "generic") -> Design:
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
    refused before anything is allocated.

    ``mcu``: the microcontroller the C target writes kernels for, a name of
    :data:`nnforge.codegen.mcu.MCUS`: ``generic`` (default: portable C99, the model's
    row-major layout), or ``cortex-m0plus``, ``cortex-m4``, ``cortex-m7``, ``cortex-m33``,
    ``cortex-m55``: channels-last kernels (the DSP-extension ones where the core has it, 32-bit
    scalar ones on the Cortex-M0+) whose activations share one static arena sized to the
    live maximum. ``nnforge_run`` keeps its interface: input and output in the model's
    element order (``c/c_info.json`` states it, with the arena, flash and stack figures). The
    choice is part of ``design.config``, so a loaded design verifies and traces the same
    program. Integer designs only (not with ``float_format``)."""

    options = Options(**{k: v for k, v in locals().items() if k not in ("model", "progress")})
    return Design.from_compiled(compile_model(model, options, progress), source_name(model))


__all__ = ["BACKENDS", "PARALLELISM", "TARGETS", "TRACEABLE", "BackendError", "BackendResult", "DataError",
           "Design", "LayerTrace", "VerifyResult", "as_batch", "check_names", "compile", "folding_goal",
           "read_report_precision", "trace_text"]
