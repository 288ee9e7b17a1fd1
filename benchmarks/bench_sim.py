"""RTL simulation throughput: the digits CNN's whole test split through the generated
Verilog in the C++ Verilator harness (``engine='cpp'``) and in the cocotb testbench
(``engine='cocotb'``, on fewer vectors by default: it is slower); or, with ``--model``,
a model of the MLPerf Tiny shapes (``benchmarks/mlperf_tiny.py``) in the C++ harness.

    python benchmarks/bench_sim.py [--cocotb-vectors N] [--json]
    python benchmarks/bench_sim.py --model resnet8 [--vectors N] [--parallelism balanced]
                                   [--repeat N] [--fresh-cache] [--json]

Prints, per engine: build seconds (a fresh build directory), vectors, simulated cycles,
wall seconds of the run (process start to result), seconds and cycles/s of the cycle loop
alone, and the outputs' agreement with the golden model. With ``--model``: compile and
write seconds, build seconds (0 when the build cache already holds this build;
``--fresh-cache`` builds in an empty cache), cycles, loop seconds and cycles/s by the wall
clock and by the processor time the harness used (the figure a loaded machine does not
distort), and the output integers that differ from golden (every one compared). With
``--repeat N`` the simulation runs N times (one build) and the run with the least processor
time is reported: on a shared machine the figure then shows the design, not its neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nnforge
from nnforge.sim import verilog as sim_verilog
from nnforge.sim.progress import QUIET

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "examples" / "digits_cnn"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cocotb-vectors", type=int, default=60, help="vectors for cocotb (0: the whole split)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument("--model", help="a model of benchmarks/mlperf_tiny.py (resnet8, ds_cnn, fc_autoencoder) "
                                    "in the C++ harness instead of the digits CNN")
    ap.add_argument("--vectors", type=int, default=8, help="test vectors for --model (default 8)")
    ap.add_argument("--parallelism", default="balanced", help="Verilog folding for --model (default balanced)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of --model's simulation; the fastest is reported")
    ap.add_argument("--fresh-cache", action="store_true", help="build --model in an empty build cache")
    args = ap.parse_args()
    if args.model:
        figures = bench_model(args.model, args.vectors, args.parallelism, args.fresh_cache, max(1, args.repeat))
        if args.json:
            print(json.dumps(figures, indent=1))
        if figures["mismatches"]:
            sys.exit(1)
        return

    design = nnforge.compile(CNN / "model.onnx", calibration=np.load(CNN / "calibration.npz")["x"], bits=8)
    x = np.load(CNN / "test.npz")["x"]
    gold = design.predict(x).reshape(len(x), -1)
    x_int = design.quantize_input(x).reshape(len(x), -1)
    hw = design.lowered("verilog")
    work = Path(tempfile.mkdtemp(prefix="nnforge_bench_sim_"))
    figures: dict[str, dict] = {}
    try:
        src = design.write(work / "out", targets=["verilog"]) / "verilog"
        for engine in ("cpp", "cocotb"):
            n = len(x) if engine == "cpp" or args.cocotb_vectors <= 0 else min(args.cocotb_vectors, len(x))
            build = work / f"build_{engine}"
            t0 = time.perf_counter()
            first = sim_verilog.run(hw, src, build, x_int[:n], QUIET, gold[:n], engine=engine)
            t1 = time.perf_counter()
            run = sim_verilog.run(hw, src, build, x_int[:n], QUIET, gold[:n], engine=engine)  # build reused
            t2 = time.perf_counter()
            assert run.extra["build_reused"] and np.array_equal(first.y, run.y)
            e = run.extra
            figures[engine] = {
                "build_s": round(first.extra["build_seconds"], 2),
                "vectors": n,
                "cycles": e["cycles"],
                "run_wall_s": round(t2 - t1, 3),
                "loop_s": round(e["sim_loop_seconds"], 3),
                "cycles_per_s": round(e["cycles_per_second"]),
                "cycles_per_s_incl_startup": round(e["cycles"] / (t2 - t1)),
                "first_run_wall_s": round(t1 - t0, 2),
                "cycles_per_inference": run.cycles_per_inference,
                "latency_cycles": run.latency_cycles,
                "mismatches": e["mismatches"],
            }
            f = figures[engine]
            print(f"{engine:<7} build {f['build_s']:6.2f} s   {n:4d} vectors   {f['cycles']:9d} cycles   "
                  f"wall {f['run_wall_s']:7.3f} s (loop {f['loop_s']:7.3f} s)   "
                  f"{f['cycles_per_s']:10.0f} cycles/s in the loop, {f['cycles_per_s_incl_startup']:10.0f} incl. "
                  f"start-up   II {f['cycles_per_inference']}, latency {f['latency_cycles']}, "
                  f"mismatches {f['mismatches']}")
        if figures["cpp"]["cycles_per_s"] and figures["cocotb"]["cycles_per_s"]:
            speedup = figures["cpp"]["cycles_per_s"] / figures["cocotb"]["cycles_per_s"]
            figures["speedup_loop"] = round(speedup, 1)
            print(f"cpp / cocotb cycle-loop throughput: {speedup:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(figures, indent=1))


def bench_model(name: str, n: int, parallelism: str, fresh_cache: bool, repeat: int = 1) -> dict:
    """``name`` of ``benchmarks/mlperf_tiny.py`` compiled, written as Verilog with
    ``parallelism`` and ``n`` test vectors simulated in the C++ harness ``repeat`` times
    (the run with the least processor time is reported, build figures from the first);
    every output integer compared with golden."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mlperf_tiny

    model, cal, test = mlperf_tiny.MODELS[name](n_test=n)
    work = Path(tempfile.mkdtemp(prefix="nnforge_bench_sim_"))
    old_cache = os.environ.get("NNFORGE_CACHE")
    try:
        if fresh_cache:
            os.environ["NNFORGE_CACHE"] = str(work / "cache")
        t0 = time.perf_counter()
        design = nnforge.compile(model, calibration=cal, bits=8)
        src = design.write(work / "out", targets=["verilog"], parallelism=parallelism) / "verilog"
        t1 = time.perf_counter()
        x_int = design.quantize_input(test)
        gold = design.predict_int(x_int).reshape(n, -1)
        runs = [sim_verilog.run(design.lowered("verilog"), src, work / "build", x_int.reshape(n, -1), QUIET, gold,
                                engine="cpp") for _ in range(repeat)]
        run = min(runs, key=lambda r: r.extra["sim_loop_cpu_seconds"])
        e = {**run.extra, "build_seconds": runs[0].extra["build_seconds"], "build_reused": runs[0].extra["build_reused"]}
        diff = max(int((r.y.reshape(n, -1) != gold).sum()) for r in runs)
        figures = {
            "model": name, "parallelism": parallelism, "vectors": n, "runs": repeat, "compile_write_s": round(t1 - t0, 2),
            "build_s": round(e["build_seconds"], 2), "build_reused": e["build_reused"], "cycles": e["cycles"],
            "run_wall_s": round(e["sim_seconds"], 3), "loop_s": round(e["sim_loop_seconds"], 3),
            "cycles_per_s": round(e["cycles_per_second"]), "loop_cpu_s": round(e["sim_loop_cpu_seconds"], 3),
            "cycles_per_cpu_s": round(e["cycles"] / max(e["sim_loop_cpu_seconds"], 1e-9)),
            "cycles_per_inference": run.cycles_per_inference,
            "latency_cycles": run.latency_cycles, "outputs_compared": int(gold.size), "mismatches": diff,
        }
    finally:
        if fresh_cache:
            if old_cache is None:
                os.environ.pop("NNFORGE_CACHE", None)
            else:
                os.environ["NNFORGE_CACHE"] = old_cache
        shutil.rmtree(work, ignore_errors=True)
    f = figures
    print(f"{name} ({parallelism}): compile+write {f['compile_write_s']:.1f} s, build {f['build_s']:.1f} s"
          f"{' (reused from the build cache)' if f['build_reused'] else ''}, {n} vectors, {f['cycles']} cycles, "
          f"loop {f['loop_s']:.3f} s = {f['cycles_per_s']} cycles/s (processor time {f['loop_cpu_s']:.3f} s = "
          f"{f['cycles_per_cpu_s']} cycles/s; run wall {f['run_wall_s']:.3f} s); "
          f"II {f['cycles_per_inference']}, latency {f['latency_cycles']}; "
          f"{f['outputs_compared']} output integers compared, {f['mismatches']} differ from golden")
    return figures


if __name__ == "__main__":
    main()
