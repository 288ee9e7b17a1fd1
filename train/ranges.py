"""Activation formats chosen on the training loss.

Calibration picks each activation's fractional bits from the values it saw (the range
that does not saturate, or one that minimizes a local error); at 4 bits and below the
choice decides much of the accuracy, and the choice that is best for the network's output
is often a finer step that saturates more. Here each activation's format is searched
directly on the training loss, in the design's scale scheme (a power of two per tensor, or
a real scale):

- the design's types give back the ranges they represent (``[lo, hi] * scale``);
- moving tensor ``t`` one step finer halves its range (``frac + 1``), one coarser doubles it
  (real scales: half octaves, a factor of sqrt(2));
- the float graph with the current weights (the trained shadows, in real units) is
  quantized again by the compiler's own quantizer with those ranges, so every dependent
  number (bias scale, rescale shifts, accumulator widths, tables, clip bounds) is derived
  as compilation derives it; the weights land on the same integers while their formats
  are unchanged;
- greedily, tensor by tensor in graph order, the candidate with the lowest training loss
  (on a bounded subset) is kept; a second pass revisits the choices.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from ..ir import Graph, quantize_float
from ..ir.ops import op_def
from ..passes import QuantConfig
from ..passes.calibrate import Range
from ..passes.prequant import quantize_graph
from ..passes.quantize import QuantizeError

# the moves tried per tensor, as log2 of the step's factor (a finer step: a smaller range):
# power-of-two scales move by octaves; real scales by half octaves
STEPS = {"pow2": (1, 2, -1), "real": (0.5, 1, 1.5, -0.5)}
# a layer's weights clipped to 2^-step of their largest magnitude (per output channel), each
# step tried: the step of a narrow grid set by the largest weight leaves most weights at 0
WEIGHT_STEPS = {"pow2": (1, 2, 3), "real": (0.5, 1, 1.5, 2, 3)}
PASSES = 2


def searchable(cfg: QuantConfig) -> bool:
    """Whether formats can be searched: scales computed here (power-of-two, or real and
    symmetric), not a model's own quantization or a float format."""
    return not (cfg.from_model or cfg.float_format or cfg.dynamic or cfg.asymmetric)


def type_ranges(q: Graph) -> dict[str, Range]:
    """The real range each activation type of ``q`` stands for, as calibration would have
    given it: ``[0, hi]`` for an unsigned type, ``[-hi, hi]`` for a signed one (the
    quantizer makes signed ranges symmetric), times the scale; quantized again, these ranges
    give ``q``'s types back."""
    out = {}
    for t, info in q.tensors.items():
        qt = info.qtype
        if qt is None or t in q.consts or qt.is_float:
            continue
        out[t] = Range(-qt.hi * qt.scale if qt.lo < 0 else 0.0, qt.hi * qt.scale)
    return out


def requantize(float_graph: Graph, ranges: dict[str, Range], cfg: QuantConfig) -> Graph:
    """``float_graph`` (same tensor names as the design) quantized with ``ranges`` by the
    compiler's quantizer, without bias correction or rounding search (the weights are the
    trained ones already)."""
    return quantize_graph(float_graph, ranges, replace(cfg, bias_correction=False, rounding="nearest"))


def search_formats(float_graph: Graph, q: Graph, cfg: QuantConfig, loss: Callable[[Graph, Graph], float],
                   progress=None) -> tuple[Graph, Graph, list[dict]]:
    """The quantized graph whose formats give the lowest ``loss(graph, float graph)``,
    starting from ``q``'s: activations move their step (:data:`STEPS`), weights may take a
    finer step by clipping the largest (:data:`WEIGHT_STEPS`, first the clip of least weight
    error, :func:`_clip_weights`); returns it, the float graph it was quantized from (the
    weights clipped) and what moved (tensor, type before and after)."""
    ranges = type_ranges(q)
    weights = [n.inputs[1] for n in q.topo() if op_def(n.op).has(linear=True) and n.inputs[1] in float_graph.consts]
    best_q, best_f, best = q, float_graph, loss(q, float_graph)

    def better(trial_r: dict, trial_f: Graph, follows: str | None = None) -> bool:
        """Quantize the trial and keep it if its loss is lower; a trial that leaves tensor
        ``follows`` in its format (it follows another's: a pool, a reshape) is not tried."""
        nonlocal best_q, best_f, best, ranges
        try:
            cand = requantize(trial_f, trial_r, cfg)
        except QuantizeError:
            return False
        if follows is not None and cand.qtype(follows) == best_q.qtype(follows):
            return False
        v = loss(cand, trial_f)
        if not v < best:
            return False
        best, best_q, best_f, ranges = v, cand, trial_f, trial_r
        return True

    start = _clip_weights(float_graph, weights, {t: q.qtype(t).hi for t in weights}, WEIGHT_STEPS[cfg.scale],
                          cfg.per_channel)
    if start is not float_graph:
        better(ranges, start)
    acts = [t for t in _activations(q) if t in ranges]
    for _ in range(PASSES):
        improved = False
        for t in acts + weights:
            steps = WEIGHT_STEPS[cfg.scale] if t in weights else STEPS[cfg.scale]
            for trial_r, trial_f in _candidates(t, ranges, best_f, t in weights, steps, cfg.per_channel):
                if better(trial_r, trial_f, None if t in weights else t):
                    improved = True
                    break  # the first move that lowers the loss
        if not improved:
            break
    changed = [{"tensor": t, "before": str(q.qtype(t)), "after": str(best_q.qtype(t))}
               for t in acts + weights if q.qtype(t) != best_q.qtype(t)]
    if progress is not None:
        progress(f"finetune: formats searched on the training loss: {len(changed)} moved")
    return best_q, best_f, changed


def _top(w: np.ndarray, per_channel: bool) -> np.ndarray:
    """The largest magnitude of each output channel (per-channel scales), or of the whole
    tensor, as a column."""
    rows = np.abs(w.reshape(len(w), -1)).max(axis=1, keepdims=True)
    return rows if per_channel else np.full_like(rows, rows.max())


def _clip_weights(f: Graph, weights: list[str], hi: dict[str, int], steps, per_channel: bool) -> Graph:
    """``f`` with each weight tensor clipped where that lowers its own quantization error:
    per output channel (or per tensor without per-channel scales), the clip among ``2^-step``
    of the largest magnitude (and none) whose symmetric grid of ``hi`` steps each side
    reproduces the weights with the least squared error. A narrow grid set by the largest weight rounds most weights to 0 (2-bit weights:
    almost all), where no loss can tell the candidates apart. ``f`` itself when none moves."""
    out = None
    for t in weights:
        w = np.asarray(f.consts[t], np.float64)
        rows = w.reshape(len(w), -1)
        top = _top(w, per_channel)
        best_err, best_clip = None, top
        for k in (0, *steps):
            clip = top * 2.0 ** -k
            step = np.where(clip > 0, clip / hi[t], 1.0)
            err = ((np.clip(np.floor(rows / step + 0.5), -hi[t], hi[t]) * step - rows) ** 2).sum(axis=1, keepdims=True)
            if not per_channel:
                err = np.full_like(err, err.sum())
            if best_err is None:
                best_err, best_clip = err, clip
            else:
                better = err < best_err
                best_err, best_clip = np.where(better, err, best_err), np.where(better, clip, best_clip)
        if np.any(best_clip < top):
            out = out or f.copy()
            out.consts[t] = np.clip(rows, -best_clip, best_clip).reshape(w.shape)
    return out or f


def _candidates(t: str, ranges: dict[str, Range], f: Graph, weight: bool, steps, per_channel: bool):
    """(ranges, float graph) trials for tensor ``t``: an activation's range moved by each of
    ``steps``; a weight clipped to ``2^-step`` of its largest magnitude (per output channel
    with per-channel scales, where each channel has its own step)."""
    if weight:
        w = np.asarray(f.consts[t], np.float64)
        top = _top(w, per_channel).reshape((-1,) + (1,) * (w.ndim - 1))
        for step in steps:
            g = f.copy()
            g.consts[t] = np.clip(w, -top * 2.0 ** -step, top * 2.0 ** -step)
            yield ranges, g
        return
    for step in steps:
        trial = dict(ranges)
        trial[t] = Range(ranges[t].lo * 2.0 ** -step, ranges[t].hi * 2.0 ** -step)
        yield trial, f


def _activations(q: Graph) -> list[str]:
    """The graph input, then every node output in graph order."""
    return list(q.inputs) + [t for n in q.topo() for t in n.outputs]


def input_integers(q: Graph, x: np.ndarray) -> np.ndarray:
    return quantize_float(x, q.qtype(q.inputs[0]))
