"""Work spread over a Dask cluster: a client for a local cluster or a scheduler's address
(:func:`dask_client`), and the samples of a slow backend run in shards on its workers
(:func:`run_on_cluster`, ``nnforge verify --scheduler``).

Dask is an optional extra (``pip install "nnforge[explore]"``): it is imported only when
a cluster is used. A task carries everything it needs (the lowered model, the source files'
bytes, the samples), so a worker on another machine needs nothing but nnforge and the
backend's tools; it builds the sources in its own private cache (:mod:`nnforge.sim.cache`).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import signal
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .sim.progress import Progress
from .sim.result import SimRun

CONNECT_TIMEOUT_S = 30
HEARTBEAT_S = 60  # a progress line at least this often while tasks run (synthesis takes minutes)
POLL_S = 0.1
# the local cluster's scheduler and workers serve no HTTP route (status pages, metrics)
NO_HTTP = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
WORKER_WAIT_S = 60
MIN_SHARD = 2  # samples per shard at least (one sample gives no steady-state cycle figure)


class DaskUnavailable(ImportError):
    """Dask (``pip install "nnforge[explore]"``) is not installed."""


def require_dask(local: bool = False):
    """The ``distributed`` module; ``local``: also what a local cluster needs
    (``cryptography``, for its TLS credentials). A missing one is :class:`DaskUnavailable`."""
    try:
        import distributed
    except ImportError:
        raise DaskUnavailable('this needs Dask: pip install "nnforge[explore]" (dask[distributed])') from None
    if local and importlib.util.find_spec("cryptography") is None:  # the local cluster's TLS credentials
        raise DaskUnavailable('a local Dask cluster needs cryptography: pip install "nnforge[explore]"')
    return distributed


@contextmanager
def dask_client(scheduler: str | None, workers: int | None, progress: Progress):
    """A Dask client: connected to ``scheduler`` (``tcp://host:port``; it must have a
    worker within :data:`WORKER_WAIT_S`), or to a new local cluster of ``workers``
    single-threaded worker processes (default: one per core) on localhost, with TLS and
    credentials made for it alone (no other user of the machine can send it work) and its
    HTTP servers serving nothing, whose processes leave Ctrl-C to this one (a Ctrl-C while
    they start is not seen); closed afterwards. Dask's log is cut to its errors meanwhile."""
    distributed = require_dask(local=not scheduler)
    import dask
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
            # the worker processes started now inherit SIGINT ignored (a Ctrl-C is this process's
            # to handle); a plugin ignores it in any started later (a worker restarted after a crash).
            # Their log is silent: a task's failure comes back with its result, and what they log
            # on the way down (a heartbeat to a scheduler already closed) means nothing to a user.
            with _sigint_ignored(), dask.config.set(NO_HTTP):
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                                   silence_logs=logging.CRITICAL, security=True)
            client = distributed.Client(cluster)
            client.register_plugin(_sigint_plugin(distributed), name="nnforge-sigint")
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _sigint_plugin(distributed):
    """A worker plugin that makes the worker process ignore SIGINT."""
    class IgnoreSigint(distributed.WorkerPlugin):
        def setup(self, worker) -> None:
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            except ValueError:  # not the process's main thread: left as it is
                pass

    return IgnoreSigint()


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
        warnings.filterwarnings("ignore", message=".*(Sending large graph|[Ll]arge object)", category=UserWarning)
        return [client.submit(_same, v, pure=False) for v in values]


def finished_batches(client, futures: list, idle: Callable[[float], None]) -> Iterator[list]:
    """The ``futures`` in batches as they finish. Every :data:`HEARTBEAT_S` without one,
    ``idle(seconds since the start)``; when the cluster has had no worker for
    :data:`WORKER_WAIT_S` (every one left), an OSError (what finished was yielded)."""
    distributed = require_dask()
    queue = distributed.as_completed(list(futures))
    t0 = last = checked = time.monotonic()
    alone = None
    while not queue.is_empty():
        batch = queue.next_batch(block=False)
        if batch:
            last = time.monotonic()
            yield batch
            continue
        now = time.monotonic()
        if now - last >= HEARTBEAT_S:
            idle(now - t0)
            last = now
        if now - checked >= 1.0:
            checked = now
            if client.nthreads():
                alone = None
            elif alone is None:
                alone = now
            elif now - alone >= WORKER_WAIT_S:
                raise OSError(f"every Dask worker has left (none for {WORKER_WAIT_S} s): "
                              f"{queue.count()} task(s) could not run")
        time.sleep(POLL_S)


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

        def idle(seconds: float) -> None:
            left = sum(r is None for r in runs)
            progress(f"{backend}: {len(bounds) - left}/{len(bounds)} shard(s) done ({seconds:.0f} s)")

        try:
            for batch in finished_batches(client, futures, idle):
                for f in batch:
                    i = index[f.key]
                    lo, hi = bounds[i]
                    try:
                        runs[i] = f.result()
                    except Exception as e:  # noqa: BLE001 - one error naming the shard's samples
                        raise _shard_error(e, f"{backend}: the shard of samples {lo}..{hi - 1} failed on the "
                                              f"cluster") from e
                    progress(f"{backend}: samples {lo}..{hi - 1} done on the cluster")
        except BaseException:
            client.cancel(futures)
            raise
    y = np.concatenate([np.asarray(r.y).reshape(hi - lo, -1) for r, (lo, hi) in zip(runs, bounds)])
    largest = max(runs, key=lambda r: len(r.y))
    return SimRun(y=y, cycles_per_inference=largest.cycles_per_inference, latency_cycles=runs[0].latency_cycles,
                  extra={"shards": [list(b) for b in bounds], "scheduler": scheduler})


def _shard_error(e: Exception, what: str) -> Exception:
    """``e`` with ``what`` before its message: of its own type when nnforge raised it (a
    tool's failure, a bad input), else a :class:`ToolError` (a worker lost, the cluster)."""
    from .sim.tools import ToolError, restated

    if isinstance(e, (ToolError, ValueError)):
        return restated(e, f"{what}: {e}")
    return ToolError(f"{what}: {type(e).__name__}: {e}")
