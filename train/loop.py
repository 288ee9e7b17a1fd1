"""Fine-tuning a quantized graph through its integer arithmetic (:mod:`.module`).

The loss sees the design's outputs scaled to real values (its logits):

- labels only: cross entropy with integer class labels, or the mean squared error with
  float targets shaped like the output (a regression model);
- distillation (``distill=T``): the float model's outputs are the teacher;
  ``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` for classes (Hinton et al.,
  2015), the mean squared error to the teacher's outputs otherwise. Without labels a model
  counts as a classifier when it ends in a Softmax (the host applies it); else its outputs
  themselves are matched (a regression model, or a classifier's logits). With
  labels as well, the loss is ``(1 - a) * label loss + a * distillation loss`` with
  ``a = distill_weight``; without labels the distillation loss alone (unlabelled data).

Adam on the shadow weights (in units of their grid's step, :mod:`.module`; ``lr`` is a
share of the grid's range per update, ``lr * hi`` steps) with a cosine decay to 0 over the
run, mini-batches in an order drawn from ``seed`` (``torch.manual_seed`` too), so a run is
repeatable on one machine. ``prune``: gradual magnitude pruning (:func:`prune_schedule`). With validation data,
the weights of the epoch with the best validation accuracy (lowest loss for regression)
are the result (with gradual pruning: the best epoch at the final sparsity), or the design's
own if no epoch beats them; the record keeps every epoch's figures.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..ir import Graph
from ..passes import QuantConfig, QuantizeError
from .module import IntegerModule, same_structure
from .ranges import input_integers, requantize, search_formats, searchable, type_ranges

SEARCH_SAMPLES = 1024  # training samples the format search evaluates its candidates on


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 0.0015  # a share of each weight grid's range per update, before the cosine decay
    batch: int = 64
    distill: float | None = None  # temperature; None: labels only
    distill_weight: float = 0.5  # share of the distillation loss when there are labels too
    seed: int = 0
    prune: float | None = None  # gradual magnitude pruning to this sparsity
    prune_scope: str = "layer"  # per layer, or "global" (the network's smallest weights)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1:
            raise ValueError(f"epochs and batch must be at least 1, got {self.epochs} and {self.batch}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"the learning rate must be a positive number, got {self.lr}")
        if self.distill is not None and not (self.distill > 0 and np.isfinite(self.distill)):
            raise ValueError(f"the distillation temperature must be a positive number, got {self.distill}")
        if self.prune is not None and not 0.0 <= self.prune < 1.0:
            raise ValueError(f"the pruning sparsity must be within [0, 1), got {self.prune}")
        if self.prune_scope == "global" and self.prune is None:
            raise ValueError("prune_scope='global' needs a pruning sparsity (prune=S)")
        if self.prune_scope not in PRUNE_SCOPES:
            raise ValueError(f"the pruning scope must be one of {', '.join(PRUNE_SCOPES)}, got {self.prune_scope!r}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be within [0, 1], got {self.distill_weight}")


def is_labels(y: np.ndarray) -> bool:
    return y.ndim == 1 and y.dtype.kind in "iu"


class _Loss:
    """The loss of one batch from the student's real-valued outputs."""

    def __init__(self, cfg: TrainConfig, classify: bool, has_labels: bool) -> None:
        self.cfg, self.classify, self.has_labels = cfg, classify, has_labels

    def __call__(self, out: torch.Tensor, y, teacher) -> torch.Tensor:
        cfg = self.cfg
        label = None
        if self.has_labels:
            label = F.cross_entropy(out, y) if self.classify else F.mse_loss(out, y.reshape(out.shape))
        if cfg.distill is None:
            return label
        t = cfg.distill
        if self.classify:
            kd = F.kl_div(F.log_softmax(out / t, dim=1), F.softmax(teacher / t, dim=1), reduction="batchmean") * t * t
        else:
            kd = F.mse_loss(out, teacher.reshape(out.shape))
        return kd if label is None else (1 - cfg.distill_weight) * label + cfg.distill_weight * kd


def evaluate(module: IntegerModule, x_int: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    """Accuracy on integer labels (a fraction), or the mean squared error of the real-valued
    outputs for float targets, of the module (the design's integers) on ``x_int``."""
    with torch.no_grad():
        outs = [module.logits(torch.as_tensor(x_int[i:i + batch])) for i in range(0, len(x_int), batch)]
    out = torch.cat(outs).numpy()
    if is_labels(y):
        return float(np.mean(out.argmax(axis=1) == y))
    return float(np.mean((out - y.reshape(out.shape)) ** 2))


def train_graph(qgraph: Graph, compression: list[dict], float_graph: Graph | None, cfg: TrainConfig,
                x: np.ndarray, y: np.ndarray | None, teacher: np.ndarray | None, validation=None,
                formats: QuantConfig | None = None, progress=None) -> tuple[Graph, dict]:
    """Train the integers of ``qgraph`` on float samples ``x`` (quantized to the graph's
    input type) against labels or float targets ``y`` and/or the float model's outputs
    ``teacher``; returns the trained graph and the record of the run. ``validation``:
    ``(x, y)``. ``formats``: the design's quantization config, to search the activation
    formats on the training loss first (:mod:`.ranges`; ``float_graph`` must then have the
    design's tensors)."""
    if y is None and (teacher is None or cfg.distill is None):
        raise ValueError("training needs labels, or distillation from the float model (distill=T)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    # without labels: the teacher's softmax is matched when the model ends in one (a
    # classifier), else its outputs (the logits of a classifier without one, or a regression)
    classify = is_labels(y) if y is not None else bool(qgraph.meta.get("output_softmax"))
    loss_fn = _Loss(cfg, classify, y is not None)
    y_t = None if y is None else torch.as_tensor(y if classify else np.asarray(y, np.float64))
    t_t = None if teacher is None else torch.as_tensor(np.asarray(teacher, np.float64))
    better = (lambda a, b: a > b) if validation is None or is_labels(validation[1]) else (lambda a, b: a < b)
    t0 = time.monotonic()
    original = qgraph
    before = _score(IntegerModule(qgraph, compression), validation)
    moved: list[dict] = []
    if formats is not None:
        qgraph, float_graph, moved = _search(qgraph, compression, float_graph, formats, x, y_t, t_t, loss_fn,
                                             progress)
    module = IntegerModule(qgraph, compression, float_graph, learned_scales(formats))
    x_t = torch.as_tensor(input_integers(qgraph, x).astype(np.float64))
    opt = torch.optim.Adam(module.param_groups(cfg.lr))
    steps = cfg.epochs * -(-len(x_t) // cfg.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    best, best_epoch, best_state = before, 0, None
    history = []
    for epoch in range(1, cfg.epochs + 1):
        if cfg.prune is not None:
            module.prune_(prune_schedule(cfg.prune, epoch, cfg.epochs), cfg.prune_scope)
        row = _epoch(module, opt, sched, loss_fn, x_t, y_t, t_t, rng.permutation(len(x_t)), cfg.batch)
        row = {"epoch": epoch, **row, "seconds": round(time.monotonic() - t0, 2)}
        line = f"finetune: epoch {epoch}/{cfg.epochs}, loss {row['loss']:.4f}"
        if validation is not None:
            score = row["validation"] = _score(module, validation)
            line += f", validation {_score_text(score, validation[1])}"
            pruning = cfg.prune is not None and prune_schedule(cfg.prune, epoch, cfg.epochs) < cfg.prune
            if not pruning and (better(score, best) or (cfg.prune is not None and best_state is None)):
                best, best_epoch = score, epoch
                best_state = {k: v.clone() for k, v in module.state_dict().items()}
        history.append(row)
        if progress is not None:
            progress(line)
    if validation is not None and best_state is None:  # no epoch beat the design as it was
        result, moved = original.copy(), []
    else:
        if best_state is not None:
            module.load_state_dict(best_state)
        result = module.graph()
    pruned = module.sparsity() if cfg.prune is not None else {}
    record = {"config": asdict(cfg), "samples": int(len(x_t)), "labels": y is not None,
              "learned_scales": learned_scales(formats),
              "task": "classification" if classify else "regression", "formats_moved": moved,
              "history": history, "validation_before": before,
              "validation_after": best if validation is not None else None,
              "kept_epoch": best_epoch if validation is not None else cfg.epochs,
              "seconds": round(time.monotonic() - t0, 2)}
    if pruned:
        record["pruned"] = {"kind": "magnitude", "sparsity": cfg.prune, "method": "gradual, during fine-tuning",
                            "weights": sum(v["weights"] for v in pruned.values()),
                            "zeros": sum(v["zeros"] for v in pruned.values()), "layers": pruned}
    return result, record


def learned_scales(formats: QuantConfig | None) -> str | None:
    """Which weight scales training learns (with the formats): a real-scale design's, one
    per layer or, with per-channel scales, one per output channel; power-of-two scales and a
    model's own stay."""
    if formats is None or formats.scale != "real" or not searchable(formats):
        return None
    return "channel" if formats.per_channel else "tensor"


PRUNE_SCOPES = ("layer", "global")
PRUNE_SHARE = 0.6  # gradual pruning reaches its sparsity after this share of the epochs


def prune_schedule(final: float, epoch: int, epochs: int) -> float:
    """The sparsity at the start of ``epoch`` (1-based): ``final * (1 - (1 - t)^3)`` with ``t``
    the share of the pruning epochs done (Zhu and Gupta, 2017), ``final`` from the first
    epoch after :data:`PRUNE_SHARE` of the run on, so the rest trains the final mask."""
    span = max(1, int(round(PRUNE_SHARE * epochs)))
    t = min(1.0, epoch / span)
    return final * (1 - (1 - t) ** 3)


def _score(module: IntegerModule, validation) -> float | None:
    if validation is None:
        return None
    vx, vy = validation
    return evaluate(module, input_integers(module.source, vx), vy)


def _requantizes(float_graph: Graph, q: Graph, cfg: QuantConfig) -> bool:
    """Whether quantizing ``float_graph`` again with ``q``'s ranges makes ``q``'s structure
    (it is the float graph ``q`` was quantized from)."""
    try:
        return same_structure(requantize(float_graph, type_ranges(q), cfg), q)
    except (QuantizeError, KeyError, ValueError):
        return False


def _search(qgraph, compression, float_graph, formats, x, y_t, t_t, loss_fn, progress):
    """:func:`.ranges.search_formats` on the training loss of up to SEARCH_SAMPLES samples."""
    if not searchable(formats) or float_graph is None or not _requantizes(float_graph, qgraph, formats):
        if progress is not None:
            progress("finetune: formats kept (the search needs scales computed by the compiler, symmetric, "
                     "and the float graph the design was quantized from)")
        return qgraph, float_graph, []
    n = min(len(x), SEARCH_SAMPLES)
    ys = None if y_t is None else y_t[:n]
    ts = None if t_t is None else t_t[:n]
    start = IntegerModule(qgraph, compression, float_graph)
    shadows = start.float_graph(float_graph)

    def loss(q: Graph, f: Graph) -> float:
        m = IntegerModule(q, compression, f)
        with torch.no_grad():
            return float(loss_fn(m.logits(torch.as_tensor(input_integers(q, x[:n]).astype(np.float64))), ys, ts))

    q, f, moved = search_formats(shadows, qgraph, formats, loss, progress)
    return q, f, moved


def _epoch(module, opt, sched, loss_fn, x_t, y_t, t_t, order: np.ndarray, batch: int) -> dict:
    """One pass over the samples in ``order``, a step per mini-batch; the mean loss."""
    total = 0.0
    module.train()
    for i in range(0, len(order), batch):
        idx = torch.as_tensor(order[i:i + batch])
        loss = loss_fn(module.logits(x_t[idx]), None if y_t is None else y_t[idx], None if t_t is None else t_t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        module.clamp_()
        total += float(loss.detach()) * len(idx)
    module.eval()
    return {"loss": round(total / len(order), 6)}


def _score_text(score: float, y: np.ndarray) -> str:
    return f"{score:.2%}" if is_labels(y) else f"mse {score:.5g}"
