"""Work spread over a Dask cluster: a client for a local cluster or a scheduler's address
(:func:`dask_client`), and the samples of a slow backend run in shards on its workers
(:func:`run_on_cluster`, ``nnforge verify --scheduler``).

Dask is an optional extra (``pip install "nnforge[explore]"``): it is imported only when
a cluster is used. A task carries everything it needs (the lowered model, the source files'
bytes, the samples), so a worker on another machine needs nothing but nnforge and the
backend's tools; it builds the sources in its own private cache (:mod:`nnforge.sim.cache`).
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .sim.progress import Progress
from .sim.result import SimRun

CONNECT_TIMEOUT_S = 30
WORKER_WAIT_S = 60
MIN_SHARD = 2  # samples per shard at least (one sample gives no steady-state cycle figure)


class DaskUnavailable(ImportError):
    """Dask (``pip install "nnforge[explore]"``) is not installed."""


def require_dask():
    try:
        import distributed
    except ImportError:
        raise DaskUnavailable('this needs Dask: pip install "nnforge[explore]" (dask[distributed])') from None
    return distributed


@contextmanager
def dask_client(scheduler: str | None, workers: int | None, progress: Progress):
    """A Dask client: connected to ``scheduler`` (``tcp://host:port``; it must have a
    worker within :data:`WORKER_WAIT_S`), or to a new local cluster of ``workers``
    single-threaded worker processes (default: one per core) on localhost, with TLS and
    credentials made for it alone (no other user of the machine can send it work), whose
    processes leave Ctrl-C to this one; closed afterwards. Dask's log is cut to its errors
    meanwhile."""
    distributed = require_dask()
    from .sim.seeds import cores

    loggers = [logging.getLogger(n) for n in ("distributed", "distributed.nanny", "distributed.scheduler",
                                               "distributed.worker")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    cluster = client = None
    try:
        if scheduler:
            client = _connect(distributed, scheduler, progress)
        else:
            n = workers or cores()
            progress(f"starting a local Dask cluster of {n} worker process(es)")
            with _sigint_ignored():  # the worker processes inherit it: a Ctrl-C is this process's to handle
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                   silence_logs=logging.ERROR, security=True)
            client = distributed.Client(cluster)
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _connect(distributed, scheduler: str, progress: Progress):
    progress(f"connecting to the Dask scheduler at {scheduler}")
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except OSError as e:
        raise OSError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s ({e})") from None
    if not client.nthreads():
        progress(f"waiting up to {WORKER_WAIT_S} s for a worker to join the scheduler")
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, OSError):
            client.close()
            raise OSError(f"the Dask scheduler at {scheduler} has no workers (none joined within "
                          f"{WORKER_WAIT_S} s)") from None
    return client


@contextmanager
def _sigint_ignored():
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are left as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_folder() -> str | None:
    """The Dask worker's own folder when called in a task (Dask removes it with the worker,
    and a later worker removes that of one that was killed), else None."""
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError, AttributeError):  # not in a Dask worker
        return None


def _same(value):
    return value


def shared(client, *values) -> list:
    """A future for each of ``values``, to pass to many tasks: made by a task (not
    scattered), so that when the worker holding it dies the scheduler makes it again
    elsewhere instead of failing every task that needs it. (Dask's advice to scatter a
    large argument instead is silenced: scattered data cannot be made again.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ll]arge object", category=UserWarning)
        return [client.submit(_same, v, pure=False) for v in values]


def cluster_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``n`` samples in at most ``shards`` contiguous shards of near-equal size, each of at
    least :data:`MIN_SHARD` samples (one shard when ``n`` is small)."""
    k = max(1, min(shards, n // MIN_SHARD))
    edges = [n * i // k for i in range(k + 1)]
    return list(zip(edges, edges[1:]))


def run_shard(backend: str, model, files: dict[str, bytes], x_int: np.ndarray) -> SimRun:
    """On a worker: backend ``backend``'s sources (``files``: relative path -> bytes) built
    and run on ``x_int`` in a private temporary folder, removed afterwards."""
    from .targets import TARGETS

    tmp = Path(tempfile.mkdtemp(prefix="nnforge-shard-", dir=worker_folder()))
    try:
        src = tmp / "src"
        for rel, data in files.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise ValueError(f"a source path leaves its folder: {rel!r}")
            path = src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        build = tmp / "build"
        build.mkdir()
        return TARGETS[backend].run(model, src, build, x_int, Progress(quiet=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def source_files(src: Path) -> dict[str, bytes]:
    """The regular files under ``src`` (the staged private copy of a backend's sources)."""
    return {p.relative_to(src).as_posix(): p.read_bytes()
            for p in sorted(src.rglob("*")) if p.is_file() and not p.is_symlink()}


def run_on_cluster(backend: str, model, src: Path, x_int: np.ndarray, scheduler: str,
                   progress: Progress) -> SimRun:
    """Backend ``backend`` on the samples ``x_int``, in contiguous shards, one per worker
    thread of the cluster at ``scheduler``; the outputs put back in sample order.
    ``latency_cycles`` is that of the first shard (sample 0 first), ``cycles_per_inference``
    that of the largest shard. A shard that fails raises its error, naming its samples."""
    distributed = require_dask()
    files = source_files(src)
    with dask_client(scheduler, None, progress) as client:
        threads = sum(client.nthreads().values())
        bounds = cluster_bounds(len(x_int), threads)
        progress(f"{backend}: {len(x_int)} samples in {len(bounds)} shard(s) on {threads} Dask worker thread(s)")
        model_f, files_f = shared(client, model, files)
        futures = [client.submit(run_shard, backend, model_f, files_f, x_int[lo:hi], pure=False)
                   for lo, hi in bounds]
        index = {f.key: i for i, f in enumerate(futures)}
        runs: list[SimRun | None] = [None] * len(bounds)
        for f in distributed.as_completed(futures):
            i = index[f.key]
            lo, hi = bounds[i]
            try:
                runs[i] = f.result()
            except Exception as e:  # noqa: BLE001 - one error naming the shard's samples
                client.cancel(futures)
                raise _shard_error(e, f"{backend}: the shard of samples {lo}..{hi - 1} failed on the cluster") from e
            progress(f"{backend}: samples {lo}..{hi - 1} done on the cluster")
    y = np.concatenate([np.asarray(r.y).reshape(hi - lo, -1) for r, (lo, hi) in zip(runs, bounds)])
    largest = max(runs, key=lambda r: len(r.y))
    return SimRun(y=y, cycles_per_inference=largest.cycles_per_inference, latency_cycles=runs[0].latency_cycles,
                  extra={"shards": [list(b) for b in bounds], "scheduler": scheduler})


def _shard_error(e: Exception, what: str) -> Exception:
    """``e`` with ``what`` before its message: of its own type when nnforge raised it (a
    tool's failure, a bad input), else a :class:`ToolError` (a worker lost, the cluster)."""
    from .sim.tools import ToolError

    msg = f"{what}: {e}" if isinstance(e, (ToolError, ValueError)) else f"{what}: {type(e).__name__}: {e}"
    if isinstance(e, (ToolError, ValueError)):
        try:
            return type(e)(msg)
        except Exception:  # noqa: BLE001 - an exception that takes other arguments
            pass
    return ToolError(msg)
