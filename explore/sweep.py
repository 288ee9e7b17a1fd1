"""The sweep on Dask: each configuration one task (:func:`.evaluate.evaluate`), on a local
cluster (one single-threaded worker process per core, by default) or on the scheduler at
an address (``tcp://host:port``: workers on other machines).

The model and the data go to the cluster once (:func:`nnforge.cluster.shared`), and each
worker fetches them once. A worker that dies loses only the task it was running (and the
data it held, made again): the scheduler runs it again on another worker (Dask's
``distributed.scheduler.allowed-failures`` times, then the configuration is recorded as
failed). Each record is cached as it arrives, so a sweep interrupted at any point resumes
where it stopped.
"""

from __future__ import annotations

import secrets
from typing import Callable

from ..cluster import finished_batches, shared
from ..sim.progress import Progress, warn
from .evaluate import empty_record, evaluate


def run_tasks(client, todo: list[tuple[str, dict, str]], payload: dict, settings: dict, code: str,
              on_record: Callable[[dict, bool], None], progress: Progress) -> None:
    """Every configuration of ``todo`` (key, options, command) on ``client``'s workers;
    ``on_record(record, cacheable)`` as each finishes, in the order they finish. A record
    is cacheable when the worker's code fingerprint is ``code`` (the one in the keys)."""
    warned: list[bool] = []
    model_f, cal_f, val_f = shared(client, payload["model"], payload["calibration"], payload["validation"])
    run = secrets.token_hex(4)  # task keys unique to this sweep on a shared scheduler
    futures = {}
    for key, options, command in todo:
        f = client.submit(evaluate, key, options, command, model_f, cal_f, val_f, settings["clock_mhz"],
                          settings["synth"], key=f"nnforge-explore-{key}-{run}", pure=False)
        futures[f] = (key, options, command)
    mine = {f.key for f in futures}
    done = failed = 0

    def running() -> int:  # the scheduler hands a worker a little more than its threads run at once
        assigned = sum(1 for keys in client.processing().values() for k in keys if k in mine)
        return min(assigned, sum(client.nthreads().values()))

    def idle(seconds: float) -> None:  # a long configuration (synthesis): the sweep is alive
        progress(f"explore: {done}/{len(futures)} done, {running()} running, {failed} failed ({seconds:.0f} s)")

    try:
        for batch in finished_batches(client, list(futures), idle):
            for f in batch:
                key, options, command = futures[f]
                try:
                    rec, cacheable = _unpack(f.result(), code)
                except Exception as e:  # noqa: BLE001 - a task's failure is the configuration's record
                    # evaluate returns the failures a configuration causes: this one (a tool, a
                    # worker, the machine) may not happen again, so it is not cached
                    rec, cacheable = empty_record(key, options, command), False
                    rec["error"] = _task_error(e)
                if not cacheable and rec["status"] == "ok" and not warned:
                    warned.append(True)
                    warn(progress, "a Dask worker runs other nnforge code (or other synthesis tools) than this "
                                   "process: its records are kept but not cached")
                done += 1
                failed += rec["status"] != "ok"
                on_record(rec, cacheable)
                progress(f"explore: {done}/{len(futures)} done, {running()} running, {failed} failed: "
                         f"{_summary(rec, options)}")
    except BaseException:
        client.cancel(list(futures))
        raise


def _unpack(result: dict, code: str) -> tuple[dict, bool]:
    """A task's record, and whether it may be cached: the worker measured it with the code
    (and tools) the cache key names."""
    return result["record"], result["code"] == code


def _task_error(e: BaseException) -> str:
    from ..ir.text import printable

    name = type(e).__name__
    if name == "KilledWorker":
        return "the workers running it died (Dask's allowed failures reached)"
    return printable(f"{name}: {str(e).strip().partition(chr(10))[0]}", 400)


def _summary(rec: dict, options: dict) -> str:
    from .space import Config

    label = Config(**options).label()
    if rec["status"] != "ok":
        return f"{label}: failed ({rec['error']})"
    acc = "-" if rec["accuracy"] is None else f"{100 * rec['accuracy']:.1f}%"
    return f"{label}: accuracy {acc}, {rec['cycles']} cycles, {rec['multipliers']} multipliers, {rec['luts']} LUTs"
