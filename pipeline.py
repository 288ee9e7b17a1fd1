"""The compile pipeline: ONNX model -> float graph -> quantized graph, as explicit lists of
typed steps (:data:`FIXED_POINT`, :data:`FLOAT_FORMAT`, :data:`PREQUANTIZED`).

:func:`compile_model` imports the model, runs the float passes, picks the route from the
options and the graph (a float format asked for; a model carrying its own quantization;
otherwise calibration and fixed-point quantization) and runs that route's steps in order
over one :class:`State`. What each option means is documented on
:func:`nnforge.design.compile`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .codegen.mcu import mcu
from .data import DataError, as_batch, check_labels
from .ir import Graph, quantize_float
from .passes import QuantConfig, calibrate, run_float_pipeline
from .passes.calibrate import CalibrationWarning, channel_means, check_input_spread, check_spread
from .passes.prequant import is_prequantized, quantize_graph, quantize_prequantized
from .passes.rounding import layer_inputs
from .report import precision, tensor_profile, value_envs
from .sim.progress import Progress, warn

CAL_REFIT = 512  # calibration samples pruning refits the weights on
CAL_REPORT = 64  # calibration samples the precision report is computed on


@dataclass(frozen=True)
class Options:
    """Everything :func:`nnforge.design.compile` takes besides the model and progress."""

    calibration: object = None
    bits: int = 8
    weight_bits: int | None = None
    act_bits: int | None = None
    calibration_method: str = "minmax"
    calibration_overrides: dict | None = None
    mixed_precision: float | None = None
    validation: object = None
    bias_correction: bool | None = None
    per_channel: bool = False
    scale: str = "pow2"
    asymmetric: bool = False
    rounding: str = "nearest"
    dynamic: bool = False
    prune: float | None = None
    prune_structured: float | None = None
    low_rank: float | None = None
    share_weights: int | None = None
    float_format: str | None = None
    neuzip: str | None = None
    prune_max_drop: float | None = None
    max_elements: int | None = None
    mcu: str = "generic"

    def config(self) -> QuantConfig:
        mcu(self.mcu)  # a name of the table, or a ValueError listing them
        wb = self.weight_bits or self.bits
        bias_correction = self.bias_correction
        if bias_correction is None:
            bias_correction = wb < 8 or self.mixed_precision is not None
        return QuantConfig(weight_bits=wb, act_bits=self.act_bits or self.bits, calibration=self.calibration_method,
                           overrides=tuple((self.calibration_overrides or {}).items()),
                           bias_correction=bool(bias_correction), per_channel=bool(self.per_channel),
                           scale=self.scale, asymmetric=bool(self.asymmetric), rounding=self.rounding,
                           dynamic=bool(self.dynamic), mcu=self.mcu)

    def compressing(self) -> bool:
        return any(v is not None for v in (self.prune, self.prune_structured, self.low_rank, self.share_weights))


@dataclass
class State:
    """What the steps of one compilation share; each step reads and sets some of it."""

    options: Options
    progress: Progress
    float_graph: Graph  # as imported
    f: Graph  # after the float passes (compression changes it in place)
    cfg: QuantConfig
    x_cal: np.ndarray | None = None
    prune: float | None = None  # the magnitude-pruning sparsity, given or searched
    ranges: dict | None = None
    means: dict | None = None
    inputs: dict | None = None
    mixed: object = None  # the mixed-precision search, if one ran
    q: Graph | None = None
    compression: list[dict] = field(default_factory=list)
    calibration_precision: dict | None = None
    calibration_profile: dict | None = None


@dataclass
class Compiled:
    """What compilation made: the graphs and what was chosen on the way."""

    float_graph: Graph
    float_passes: Graph
    qgraph: Graph
    config: QuantConfig
    mixed: object
    compression: list[dict]
    calibration_precision: dict | None
    calibration_profile: dict | None = None


Step = Callable[[State], None]


# ---- fixed point from a float model -------------------------------------------------

def calibration_batch(s: State) -> None:
    """The calibration data as a batch, refused when it is missing or cannot give the
    input a range (before pruning or compression spends time on it)."""
    if s.options.calibration is None:
        raise DataError("a float model needs calibration data (samples shaped like the model input)")
    s.x_cal = as_batch(s.options.calibration, s.f.shape(s.f.inputs[0]))
    check_input_spread(s.f, s.x_cal)


def _validation(s: State) -> tuple[np.ndarray, np.ndarray]:
    x_val = as_batch(s.options.validation[0], s.f.shape(s.f.inputs[0]))
    y_val = check_labels(s.options.validation[1], len(x_val), s.f.shape(s.f.outputs[0]), "validation labels")
    return x_val, y_val


def prune_budget(s: State) -> None:
    """The magnitude-pruning sparsity: ``prune``, or the one searched to an accuracy budget."""
    o, s.prune = s.options, s.options.prune
    if o.prune_max_drop is None:
        return
    from .passes.prune import search_sparsity

    if o.prune is not None:
        raise DataError("give a pruning sparsity or an accuracy budget for it, not both")
    if not 0.0 <= float(o.prune_max_drop) < 1.0:
        raise DataError("the pruning budget is the accuracy drop allowed as a fraction, e.g. 0.01 for one point")
    if o.validation is None or o.validation[1] is None:
        raise DataError("pruning to an accuracy budget needs validation data with labels (x, y)")
    x_val, y_val = _validation(s)
    t0 = time.monotonic()
    sp, acc, base = search_sparsity(s.f, "magnitude", x_val, y_val, float(o.prune_max_drop), s.x_cal[:CAL_REFIT])
    s.progress(f"pruning budget {float(o.prune_max_drop):.1%}: {sp:.0%} of the weights can go ({acc:.1%} float "
               f"accuracy on the validation data against {base:.1%} unpruned; searched in "
               f"{time.monotonic() - t0:.1f}s)")
    s.prune = sp or None


def compress(s: State) -> None:
    """Low rank, structured pruning, magnitude pruning, then weight sharing of the float
    graph in place, each refitted on the calibration data."""
    from .passes.lowrank import low_rank as split
    from .passes.prune import prune_magnitude, prune_structured as structured
    from .passes.share import share_weights as cluster

    o = s.options
    for amount, fn in ((o.low_rank, split), (o.prune_structured, structured), (s.prune, prune_magnitude),
                       (o.share_weights, cluster)):
        if amount is None:
            continue
        t0 = time.monotonic()
        rep = fn(s.f, amount, s.x_cal[:CAL_REFIT])
        s.f.verify()
        s.progress(rep.text().rstrip() + f"\n(refitted on {min(len(s.x_cal), CAL_REFIT)} calibration samples in "
                   f"{time.monotonic() - t0:.1f}s)")
        s.compression.append(rep.as_dict())


def calibrate_ranges(s: State) -> None:
    """Every tensor's calibrated range, widened where the calibration data does not span
    it (:func:`check_spread`), with a warning for each such case."""
    ranges = calibrate(s.f, s.x_cal, s.cfg.act_bits, s.cfg.calibration, dict(s.cfg.overrides))
    spread = check_spread(s.f, s.x_cal, ranges)
    for w in spread.warnings:
        # stacklevel: this step, compile_model, nnforge.compile, its caller
        warn(s.progress, w, CalibrationWarning, stacklevel=4)
    s.ranges = spread.ranges


def layer_statistics(s: State) -> None:
    """The calibration data's mean input per channel (bias correction) and each layer's
    inputs (rounding search), where the config asks for them."""
    s.means = channel_means(s.f, s.x_cal) if s.cfg.bias_correction else None
    s.inputs = layer_inputs(s.f, s.x_cal) if s.cfg.rounding == "search" else None


def search_mixed(s: State) -> None:
    """The mixed-precision search, its budget and validation data checked first."""
    o = s.options
    if o.mixed_precision is None:
        return
    from .passes.mixed import search

    if not 0.0 <= float(o.mixed_precision) < 1.0:
        raise DataError("mixed_precision is the accuracy drop allowed as a fraction, e.g. 0.01 for one point")
    if o.validation is None:
        raise DataError("mixed precision needs validation data with labels (x, y)")
    if o.validation[1] is None:
        raise DataError("mixed precision needs labels in the validation data")
    x_val, y_val = _validation(s)
    s.mixed = search(s.f, s.ranges, s.cfg, x_val, y_val, float(o.mixed_precision), progress=s.progress,
                     means=s.means, inputs=s.inputs)
    s.progress(s.mixed.text().rstrip())
    s.cfg = s.mixed.config


def quantize(s: State) -> None:
    s.q = quantize_graph(s.f, s.ranges, s.cfg, s.means, s.inputs)
    s.q.verify()
    if s.cfg.dynamic:
        from .ir.dynamic import check_dynamic

        check_dynamic(s.q)
    s.progress(f"quantized to {s.cfg.weight_bits}-bit weights{' per channel' if s.cfg.per_channel else ''} / "
               f"{s.cfg.act_bits}-bit activations (calibration: {s.cfg.calibration})")


def calibration_report(s: State) -> None:
    """The precision report and the value profile (histograms) on (the first samples of)
    the calibration data, when there is some."""
    if s.options.calibration is None:
        return
    q = s.q
    x = as_batch(s.options.calibration, q.shape(q.inputs[0]))[:CAL_REPORT]
    x_int = quantize_float(x, q.qtype(q.inputs[0]))
    envs = value_envs(s.f, q, x, x_int)  # both reports read the same run
    s.calibration_precision = precision(s.f, q, x, x_int, envs)
    s.calibration_profile = tensor_profile(s.f, q, x, x_int, envs=envs)


FIXED_POINT: tuple[Step, ...] = (calibration_batch, prune_budget, compress, calibrate_ranges, layer_statistics,
                                 search_mixed, quantize, calibration_report)


# ---- float16 / bfloat16 ---------------------------------------------------------------

def check_float_options(s: State) -> None:
    """A float format replaces fixed-point quantization: its options are refused."""
    o = s.options
    if o.float_format is None:
        raise DataError("NeuZip stores float weights: give a float format too (--float fp16 or bf16)")
    if is_prequantized(s.f):
        raise DataError("this model carries its own integer quantization; --float runs float models")
    if o.mixed_precision is not None or s.cfg.dynamic or s.cfg.per_channel or s.cfg.scale != "pow2":
        raise DataError("--float replaces fixed-point quantization; the quantization options do not apply")
    if s.cfg.mcu != "generic":
        raise DataError(f"--mcu {s.cfg.mcu} selects integer kernels; a float format (--float) runs the portable "
                        "float C")


def compress_float(s: State) -> None:
    """Compression of the float graph, refitted on the calibration data (required for it)."""
    from .passes.floatfmt import parse_neuzip

    try:
        parse_neuzip(s.options.neuzip)
    except ValueError as e:
        raise DataError(str(e)) from None
    if not s.options.compressing():
        return
    if s.options.calibration is None:
        raise DataError("pruning, low rank and weight sharing refit on calibration data; give some")
    s.x_cal = as_batch(s.options.calibration, s.f.shape(s.f.inputs[0]))
    s.prune = s.options.prune
    compress(s)


def to_float_format(s: State) -> None:
    """The float graph's weights narrowed to the format (and NeuZip-lossy weights)."""
    from .passes.floatfmt import FloatFormatError, lossy_weights, parse_neuzip, to_float

    o = s.options
    kind, k = parse_neuzip(o.neuzip)
    try:
        s.q = to_float(s.f, o.float_format)
        if kind == "lossy":
            s.q = lossy_weights(s.q, k)
    except FloatFormatError as e:
        raise DataError(str(e)) from None
    s.cfg = replace(s.cfg, float_format=o.float_format, neuzip=o.neuzip or "", bias_correction=False)
    s.progress(f"running in {o.float_format} (float32 accumulation, round to nearest even)"
               + (f", NeuZip {o.neuzip} weights" if o.neuzip else ""))


FLOAT_FORMAT: tuple[Step, ...] = (check_float_options, compress_float, to_float_format)


# ---- a model carrying its own quantization --------------------------------------------

def check_prequantized_options(s: State) -> None:
    """No calibration: the options that search or refit on data are refused."""
    if s.options.mixed_precision is not None:
        raise DataError("mixed precision searches widths for a float model; this model is already quantized")
    if s.options.compressing():
        raise DataError("pruning, low rank and weight sharing work on a float model before quantization; this "
                        "model is already quantized")


def quantize_as_stated(s: State) -> None:
    s.cfg = replace(s.cfg, from_model=True, bias_correction=False)
    s.q = quantize_prequantized(s.f, s.cfg)
    s.q.verify()
    s.progress(f"quantized as the model states ({sum(n.op == 'Quant' for n in s.f.topo())} quantization points)")


PREQUANTIZED: tuple[Step, ...] = (check_prequantized_options, quantize_as_stated, calibration_report)


def route(s: State) -> tuple[Step, ...]:
    """The steps for this model and these options."""
    if s.options.float_format is not None or s.options.neuzip is not None:
        return FLOAT_FORMAT
    if is_prequantized(s.f):
        return PREQUANTIZED
    return FIXED_POINT


def source_name(model) -> str:
    return str(model) if isinstance(model, (str, os.PathLike)) else ""


def compile_model(model, options: Options, progress: Progress, instead: dict[Step, Step] | None = None) -> Compiled:
    """Import ``model`` (path or ModelProto), run the float passes and the steps of its
    route (:func:`route`); ``instead`` maps a step to one run in its place (a script that
    reuses a step's result across compilations)."""
    from .frontend import import_onnx

    cfg = options.config()
    t0 = time.monotonic()
    g = import_onnx(model, max_elements=options.max_elements)
    progress(f"imported {len(g)} nodes in {time.monotonic() - t0:.2f}s")
    s = State(options, progress, g, run_float_pipeline(g), cfg)
    for step in route(s):
        (instead or {}).get(step, step)(s)
    return Compiled(s.float_graph, s.f, s.q, s.cfg, s.mixed, s.compression, s.calibration_precision,
                    s.calibration_profile)
