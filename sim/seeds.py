"""Placement with several seeds at once (``nnforge synth --seeds N``).

nextpnr's result depends on its placement seed: on a full ECP5-85k the Fmax of one netlist
varies by several percent from seed to seed. :func:`place_seeds` runs one placement per
seed, ``jobs`` at a time, each in a folder of its own, and keeps the lowest seed that meets
the clock (else the fastest), so the choice does not depend on which run finished first.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

from .progress import Progress
from .tools import ToolError

# run(folder, seed, stop, label) -> (nextpnr's report, seconds): one placement in ``folder``
# (which holds ``netlist.json``); it raises Stopped once ``stop`` (a threading.Event) is set
Run = Callable[[Path, int, "threading.Event | None", str], tuple]
OUTPUTS = ("config.txt", "nextpnr_report.json", "nextpnr.log")  # a run's files that are kept


class Stopped(Exception):
    """A placement run stopped because a lower seed met the clock."""


def cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def timing(report: dict, clock_mhz: float) -> tuple[float, bool]:
    """The lowest achieved frequency (MHz, to 0.01 as the synth report gives it) over the
    clocks of a nextpnr report, and whether every clock meets ``clock_mhz``."""
    achieved = [round(float(r.get("achieved", 0.0)), 2) for r in report.get("fmax", {}).values()]
    return min(achieved, default=0.0), bool(achieved) and all(v >= clock_mhz for v in achieved)


def place_seeds(run: Run, work: Path, seeds: list[int], clock_mhz: float, progress: Progress, jobs: int,
                fatal: tuple = (), tool: str = "nextpnr") -> tuple[dict, float, int, list]:
    """Place and route with each of ``seeds``, ``jobs`` at a time, each in ``work/seed<S>``.
    The result is the lowest seed that meets ``clock_mhz`` (a run of a higher seed stops
    once a lower one has met it, and one not started is skipped), else the highest Fmax (the
    lower seed of a tie). A seed whose run fails (:class:`ToolError`) is recorded
    (``error``) and the others go on; an exception of ``fatal`` (the design does not fit
    the part: the same for every seed) or an interruption stops them all. The chosen run's
    files (``OUTPUTS``) end up in ``work``; the seed folders are removed whatever happens.
    Returns nextpnr's report, the seconds of the whole step, the seed and a record per seed
    (``seed``, ``fmax_mhz``, ``met``, ``seconds``; or ``stopped``; or ``error``); a single
    seed runs in ``work`` itself, with no records."""
    if len(seeds) == 1:
        report, secs = run(work, seeds[0], None, "")
        return report, secs, seeds[0], []
    t0 = time.monotonic()
    lock = threading.Lock()
    stops = {s: threading.Event() for s in seeds}
    met_seed = [None]  # the lowest seed known to meet the clock
    runs: dict[int, dict] = {}
    reports: dict[int, dict] = {}

    def one(s: int) -> None:
        with lock:
            if stops[s].is_set() or (met_seed[0] is not None and s > met_seed[0]):
                runs[s] = {"seed": s, "stopped": True}
                return
        d = work / f"seed{s}"
        d.mkdir()
        try:
            os.link(work / "netlist.json", d / "netlist.json")
        except OSError:
            shutil.copy(work / "netlist.json", d / "netlist.json")
        try:
            report, secs = run(d, s, stops[s], f" (seed {s})")
        except Stopped:
            with lock:
                runs[s] = {"seed": s, "stopped": True}
            return
        except fatal:
            raise
        except ToolError as e:  # this seed's run failed (another seed may route)
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            progress(f"synth: seed {s}: {first}")
            with lock:
                runs[s] = {"seed": s, "error": first}
            return
        fmax, met = timing(report, clock_mhz)
        progress(f"synth: seed {s}: Fmax {fmax:.2f} MHz ({'meets' if met else 'misses'} {clock_mhz:g} MHz)")
        with lock:
            runs[s] = {"seed": s, "fmax_mhz": fmax, "met": met, "seconds": round(secs, 2)}
            reports[s] = report
            if met and (met_seed[0] is None or s < met_seed[0]):
                met_seed[0] = s
                for t in seeds:
                    if t > s:
                        stops[t].set()

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(seeds)))) as ex:
            try:
                futures = [ex.submit(one, s) for s in seeds]
                for f in as_completed(futures):
                    f.result()  # a fatal error (or an interruption) as soon as it happens
            except BaseException:
                for ev in stops.values():
                    ev.set()
                ex.shutdown(wait=True, cancel_futures=True)
                raise
        done = [runs[s] for s in seeds if "fmax_mhz" in runs[s]]
        if not done:
            raise ToolError(f"{tool} failed with every seed: "
                            + "; ".join(f"seed {s}: {runs[s]['error']}" for s in seeds if "error" in runs[s]))
        best = met_seed[0] if met_seed[0] is not None else max(done, key=lambda r: (r["fmax_mhz"], -r["seed"]))["seed"]
        for f in OUTPUTS:
            os.replace(work / f"seed{best}" / f, work / f)
        return reports[best], time.monotonic() - t0, best, [runs[s] for s in seeds]
    finally:
        for s in seeds:
            shutil.rmtree(work / f"seed{s}", ignore_errors=True)
