"""RTL simulation throughput: the digits CNN's whole test split through the generated
Verilog in the C++ Verilator harness (``engine='cpp'``) and in the cocotb testbench
(``engine='cocotb'``, on fewer vectors by default: it is slower).

    python benchmarks/bench_sim.py [--cocotb-vectors N] [--json]

Prints, per engine: build seconds (a fresh build directory), vectors, simulated cycles,
wall seconds of the run (process start to result), seconds and cycles/s of the cycle loop
alone, and the outputs' agreement with the golden model.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
