"""Verification: every target's generated sources built, run on the samples and compared
with golden in every output integer (:func:`verify`), or traced layer by layer on one
sample (:func:`trace`). The sources come from an output folder, copied out of it (only
the files its manifest lists), or from a temporary folder the design is written into.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .cluster import MIN_SHARD, cluster_bounds
from .data import check_labels
from .ir import dequantize, run_float, run_int
from .ir.floats import is_float
from .ir.text import name as pname
from .persist import file_list
from .report import LayerTrace
from .sim.files import OutputFolderError, modified_files, read_manifest
from .sim.progress import QUIET, Progress, warn
from .sim.result import SimRun
from .sim.tools import restated
from .targets import TARGETS

GOLDEN = "golden"
# a simulation is slow for every sample (the RTL's registers are evaluated every cycle): it is
# spread over processes whatever the design; a compiled program only when its samples add up
# to more multiply-accumulates than a core runs in about a second
SIMULATED = ("verilog",)
PROGRAM_SHARD_MACS = 1e9


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
            d["modified"] = [pname(f) for f in self.modified]
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
        lines = [f"{self.samples} samples; float model accuracy: {pct(self.float_accuracy)}",
                 f"{'backend':<10}{'samples':>9}{'mismatches':>12}{'accuracy':>10}{'cycles/inf':>12}"]
        for name, b in self.backends.items():
            cyc = f"{b.cycles_per_inference:.1f}" if b.cycles_per_inference is not None else "-"
            lines.append(f"{name:<10}{b.samples:>9}{b.mismatches:>12}{pct(b.accuracy):>10}{cyc:>12}")
        for name, b in self.backends.items():
            if b.modified:
                lines.append(f"{name}: sources differ from what nnforge wrote: {', '.join(map(pname, b.modified))}")
        lines.append("all backends match golden" if self.ok else "MISMATCH: some backend differs from golden")
        return "\n".join(lines)


def pct(a: float | None) -> str:
    return "-" if a is None else f"{100 * a:.2f}%"


def accuracy(outputs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    pred = outputs.reshape(len(outputs), -1).argmax(axis=1)
    return float((pred == labels).mean())


def _compare(samples: int, got: np.ndarray, golden: np.ndarray) -> tuple[int, int | None]:
    """How many samples differ from golden in any integer, and the first that does."""
    diff = np.any(got.reshape(samples, -1) != golden.reshape(samples, -1), axis=1)
    bad = np.flatnonzero(diff)
    return int(diff.sum()), int(bad[0]) if len(bad) else None


def check_jobs(jobs: int | None) -> int:
    """``jobs`` as a count of processes: None is every core (:func:`os.cpu_count`)."""
    if jobs is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer or None (every core), not {jobs!r}")
    return int(jobs)


def shard_bounds(n: int, jobs: int) -> list[tuple[int, int]]:
    """How :func:`run_sharded` splits ``n`` samples for ``jobs`` processes: ``[(0, n)]``
    (one run, as with one job) unless at least two shards of :data:`MIN_SHARD` samples
    remain after sample 0; else sample 0 alone (the run that builds), then the other
    samples in contiguous shards of near-equal size, in order."""
    k = min(jobs, (n - 1) // MIN_SHARD)
    if jobs <= 1 or k < 2:
        return [(0, n)]
    return [(0, 1)] + [(1 + lo, 1 + hi) for lo, hi in cluster_bounds(n - 1, k)]


def run_sharded(b: str, model, staged: "Staged", x_int: np.ndarray, progress: Progress, jobs: int,
                scheduler: str | None = None) -> SimRun:
    """Backend ``b`` on the samples ``x_int``, spread over ``jobs`` processes
    (:func:`shard_bounds`) when it is slow (:data:`SIMULATED`, or a program of more than
    :data:`PROGRAM_SHARD_MACS` over the samples): the first sample alone builds the program (the build cache
    keeps it, :mod:`nnforge.sim.cache`), then every other shard runs the same build at
    once, each in its own work folder, and the outputs are put back in sample order.
    ``latency_cycles`` is that of sample 0 alone, ``cycles_per_inference`` that of the
    largest shard. A shard that fails raises the error of the first failing shard,
    naming the samples of every failing one. With a Dask ``scheduler``, a slow backend's
    samples go to its workers instead (:func:`nnforge.cluster.run_on_cluster`)."""
    macs = getattr(model, "macs", None)
    if b not in SIMULATED and (macs is None or macs * len(x_int) < PROGRAM_SHARD_MACS):
        jobs = 1
    elif scheduler:
        from .cluster import run_on_cluster

        return run_on_cluster(b, model, staged.src[b], x_int, scheduler, progress)
    bounds = shard_bounds(len(x_int), jobs)
    target = TARGETS[b]
    if len(bounds) == 1:
        return target.run(model, staged.src[b], staged.work(b), x_int, progress)
    rest = bounds[1:]
    progress(f"{b}: {len(x_int)} samples: sample 0 first (it builds), then {len(x_int) - 1} in "
             f"{len(rest)} processes")
    first = target.run(model, staged.src[b], staged.work(f"{b}-shard0"), x_int[:1], progress)
    counts = _ShardCounts(progress, len(x_int) - 1)

    def one(i: int) -> SimRun:
        lo, hi = rest[i]
        shard_progress = _ShardProgress(progress, f"{b} shard {i + 1}/{len(rest)} (samples {lo}..{hi - 1})",
                                        counts, i)
        return target.run(model, staged.src[b], staged.work(f"{b}-shard{i + 1}"), x_int[lo:hi], shard_progress)

    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        futures = [pool.submit(one, i) for i in range(len(rest))]
        errors = [(i, f.exception()) for i, f in enumerate(futures)]
    failed = [(rest[i], e) for i, e in errors if e is not None]
    if failed:
        (lo, hi), err = failed[0]
        which = ", ".join(f"{a}..{z - 1}" for (a, z), _ in failed)
        raise restated(err, f"{b}: the run of samples {which} failed ({len(failed)} of {len(rest)} shards); "
                            f"samples {lo}..{hi - 1}: {err}") from err
    runs = [first] + [f.result() for f in futures]
    y = np.concatenate([np.asarray(r.y).reshape(hi - lo, -1) for r, (lo, hi) in zip(runs, bounds)])
    largest = max(runs[1:], key=lambda r: len(r.y))
    return SimRun(y=y, cycles_per_inference=largest.cycles_per_inference, latency_cycles=first.latency_cycles,
                  extra={"shards": [list(bd) for bd in bounds]})


class _ShardCounts:
    """The progress of every shard's counters, reported as one count over all shards."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total = progress, total
        self.done: dict[tuple[str, int], int] = {}
        self.reported: dict[str, int] = {}
        self.lock = threading.Lock()

    def tick(self, what: str, shard: int, done: int) -> None:
        with self.lock:
            self.done[(what, shard)] = done
            total = sum(v for (w, _), v in self.done.items() if w == what)
            step, prev = max(1, self.total // 10), self.reported.get(what, 0)
            if total > prev and (total // step > prev // step or total == self.total):
                self.reported[what] = total
                self.progress(f"{what}: {total}/{self.total} (all shards)")


class _ShardProgress(Progress):
    """A shard's progress: its lines prefixed with the shard, its counters added up over
    every shard (:class:`_ShardCounts`); silent when ``parent`` is."""

    def __init__(self, parent: Progress, label: str, counts: _ShardCounts, shard: int) -> None:
        super().__init__(quiet=parent is QUIET or getattr(parent, "quiet", False))
        self.parent, self.label, self.counts, self.shard = parent, label, counts, shard

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            self.parent(f"{self.label}: {msg}")

    def warn(self, msg: str) -> None:
        warn(self.parent, f"{self.label}: {msg}", stacklevel=3)

    def counter(self, what: str, total: int, every: int | None = None):
        def tick(done: int) -> None:
            if not self.quiet:
                self.counts.tick(what, self.shard, done)

        return tick


def verify(design, x, y, backends: Sequence[str], outdir, limit: int | None, parallelism,
           progress: Progress, jobs: int | None = 1, scheduler: str | None = None) -> VerifyResult:
    """:meth:`nnforge.design.Design.verify` (``backends`` already checked); each built
    backend's samples are spread over ``jobs`` processes (:func:`run_sharded`), or the
    slow ones over the workers of the Dask ``scheduler``."""
    jobs = check_jobs(jobs)
    x = design.check_input(x)
    labels = None if y is None else check_labels(y, len(x), design.output_shape)
    if limit is not None:
        x, labels = x[:limit], None if labels is None else labels[:limit]
    x_int = design.quantize_input(x)
    golden = design.predict_int(x_int)
    with np.errstate(over="ignore", invalid="ignore"):  # the float model may overflow float32
        result = VerifyResult(len(x), accuracy(run_float(design.float_graph, x)[0], labels))
    built = [b for b in backends if b != GOLDEN]
    models = {b: design.lowered(b) for b in built}
    with staged_sources(design, outdir, built, parallelism, progress) as staged:
        for b in backends:
            t0 = time.monotonic()
            run = None
            if b == GOLDEN:
                run_y = golden
            else:
                run = run_sharded(b, models[b], staged, x_int, progress, jobs, scheduler)
                run_y = run.y.reshape(golden.shape)
            mismatches, first = _compare(len(x), run_y, golden)
            result.backends[b] = BackendResult(
                samples=len(x), mismatches=mismatches,
                # float patterns do not sort as their values do: rank the values
                accuracy=accuracy(dequantize(run_y, design.output_type) if is_float(design.output_type) else run_y,
                                  labels),
                cycles_per_inference=getattr(run, "cycles_per_inference", None),
                latency_cycles=getattr(run, "latency_cycles", None),
                seconds=time.monotonic() - t0, first_mismatch=first, modified=staged.modified.get(b))
            progress(f"{b}: {len(x)} samples, {mismatches} mismatches")
            if b != GOLDEN:
                result.backends.update(_variants(design, b, x, labels, staged, progress))
    return result


def _variants(design, b: str, x: np.ndarray, labels, staged: "Staged", progress: Progress) -> dict:
    """The results of the second programs target ``b`` wrote beside its main one."""
    out = {}
    t0 = time.monotonic()
    for name, run in TARGETS[b].variants(design.qgraph, design.config, x, staged.src[b], staged.work,
                                         progress).items():
        bad = np.flatnonzero(run.differs)
        progress(f"{name}: {len(x)} samples, {int(run.differs.sum())} mismatches")
        out[name] = BackendResult(samples=len(x), mismatches=int(run.differs.sum()),
                                  accuracy=accuracy(run.outputs, labels), seconds=time.monotonic() - t0,
                                  first_mismatch=int(bad[0]) if len(bad) else None, modified=staged.modified[b])
        t0 = time.monotonic()
    return out


def trace(design, x, backends: Sequence[str], outdir, sample: int, progress: Progress) -> dict[str, list[LayerTrace]]:
    """:meth:`nnforge.design.Design.trace` (``backends`` already checked)."""
    x_int = design.quantize_input(design.check_input(x)[sample:sample + 1])
    env = run_int(design.qgraph, x_int, keep=True)
    with staged_sources(design, outdir, backends, "balanced", progress) as staged:
        result = {}
        for b in backends:
            target = TARGETS[b]
            steps, got = target.trace(design.lowered(b), design.qgraph, staged.src[b], staged.work(f"{b}-trace"),
                                      x_int, progress, staged.outdir / b)
            layers = []
            for i, st in enumerate(steps):
                if not st.tensor:
                    continue
                want = np.asarray(env[st.tensor], dtype=np.int64).reshape(-1)
                have = got.get(i, np.zeros(0, dtype=np.int64))
                bad = np.arange(want.size) if have.size != want.size else np.flatnonzero(have != want)
                layers.append(LayerTrace(st.name, st.op, st.tensor, int(want.size), int(bad.size),
                                         int(bad[0]) if bad.size else None))
            result[b] = layers
            progress(f"{b}: traced {len(layers)} layers")
        return result


@dataclass
class Staged:
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


@contextmanager
def staged_sources(design, outdir, targets: list[str], parallelism, progress: Progress):
    """A private copy of the sources of ``targets``, taken from the output folder
    ``outdir`` (when it is None, from a temporary folder the design is written into):
    only the files its manifest lists (:data:`nnforge.sim.files.MARKER`), each a
    regular file inside the folder; files that differ from what nnforge wrote are
    warned about (and compiled as they are). Yields a :class:`Staged`; everything is
    removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="nnforge-verify-"))
    try:
        if outdir is None and targets:
            outdir = design.write(tmp / "out", targets=targets, parallelism=parallelism, progress=progress)
        staged = Staged(tmp, Path(outdir) if outdir is not None else tmp)
        files = read_manifest(outdir) if targets else {}
        for b in targets:
            staged.src[b], staged.modified[b] = stage(Path(outdir), files, b, tmp / "src" / b)
        for b in targets:  # malformed sources are refused before any warning
            TARGETS[b].check_sources(staged.src[b], Path(outdir) / b)
        modified = [f for b in targets for f in staged.modified[b]]
        if modified:
            warn(progress, f"{pname(outdir)}: {len(modified)} source file(s) differ from what nnforge wrote, "
                           f"compiled as they are: {file_list(modified)}", UserWarning, stacklevel=5)
        yield staged
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage(outdir: Path, files: dict[str, str], folder: str, dest: Path) -> tuple[Path, list[str]]:
    """Copy the files the manifest ``files`` lists under ``outdir/folder`` into ``dest``,
    each only if it is a regular file inside ``outdir`` (no symbolic link anywhere on its
    path); returns ``dest`` and the files that differ from the manifest."""
    listed = sorted(rel for rel in files if rel.startswith(folder + "/"))
    if not listed or not (outdir / folder).is_dir():
        raise FileNotFoundError(f"{outdir} has no {folder} sources; compile with --targets including {folder}")
    modified = modified_files(outdir, files, folder)
    root = outdir.resolve()
    for rel in listed:
        path = outdir / rel
        if not path.exists() and not path.is_symlink():
            continue  # named as modified; a build that needs it says so
        if path.is_symlink() or path.resolve() != root / rel or not path.is_file():
            what = "a symbolic link" if path.is_symlink() else "not a regular file inside the folder"
            raise OutputFolderError(f"{pname(outdir)}: {pname(rel)} is {what}; refusing to compile it")
        target = dest / rel[len(folder) + 1:]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    return dest, modified
