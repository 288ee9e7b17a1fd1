"""Compile time per stage and simulation throughput for the bundled digits MLP.

    python benchmarks/bench_compile.py [--repeat 3] [--skip-verilog]

Prints one line per measurement (best of --repeat for the compile stages) and a JSON
object at the end. A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from nnforge.cli import EXAMPLE, load_npz
from nnforge.codegen import c as c_backend
from nnforge.codegen import hls as hls_backend
from nnforge.codegen.lower import lower
from nnforge.codegen.targets import lower_for
from nnforge.design import Design
from nnforge.frontend import import_onnx
from nnforge.ir import run_int
from nnforge.passes import QuantConfig, calibrate_minmax, quantize, run_float_pipeline
from nnforge.sim.native import run_c, run_hls
from nnforge.sim.progress import QUIET


def best_of(n: int, fn):
    times, value = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-verilog", action="store_true")
    args = ap.parse_args()

    x_cal, _ = load_npz(EXAMPLE / "calibration.npz")
    x, _ = load_npz(EXAMPLE / "test.npz")
    figures: dict[str, float] = {}

    def stage(name, fn):
        t, v = best_of(args.repeat, fn)
        figures[f"compile.{name}_ms"] = round(1e3 * t, 3)
        print(f"compile  {name:<14} {1e3 * t:9.2f} ms")
        return v

    g = stage("import", lambda: import_onnx(EXAMPLE / "model.onnx"))
    f = stage("float_passes", lambda: run_float_pipeline(g))
    ranges = stage("calibrate", lambda: calibrate_minmax(f, x_cal))
    q = stage("quantize", lambda: quantize(f, ranges, QuantConfig()))
    hw = stage("lower", lambda: lower(q))
    design = Design(g, q, QuantConfig())
    x_int = design.quantize_input(x)
    golden_t, golden = best_of(args.repeat, lambda: run_int(q, x_int)[0])
    figures["golden.samples_per_s"] = round(len(x) / golden_t)
    print(f"golden   {len(x)} samples   {len(x) / golden_t:12.0f} samples/s")

    work = Path(tempfile.mkdtemp(prefix="nnforge-bench-"))
    try:
        stage("write_c", lambda: c_backend.write(lower_for(q, "c"), work / "c"))
        stage("write_hls", lambda: hls_backend.write(lower_for(q, "hls"), work / "hls", x_int[:16], golden[:16]))
        for name, runner in (("c", run_c), ("hls", run_hls)):
            t0 = time.perf_counter()
            runner(hw, work / name, work / "build" / name, x_int, QUIET)  # includes the compile
            build_t = time.perf_counter() - t0
            run_t, res = best_of(args.repeat, lambda: runner(hw, work / name, work / "build" / name, x_int, QUIET))
            assert np.array_equal(res.y, golden), f"{name} differs from golden"
            figures[f"{name}.build_s"] = round(build_t - run_t, 3)
            figures[f"{name}.samples_per_s"] = round(len(x) / run_t)
            print(f"{name:<8} build {build_t - run_t:6.2f} s   {len(x) / run_t:12.0f} samples/s (incl. process start)")
        if not args.skip_verilog:
            from nnforge.codegen import verilog as verilog_backend
            from nnforge.sim import verilog as verilog_sim

            t_w, _ = best_of(1, lambda: verilog_backend.write(hw, work / "verilog"))
            figures["compile.write_verilog_ms"] = round(1e3 * t_w, 3)
            print(f"compile  {'write_verilog':<14} {1e3 * t_w:9.2f} ms")
            t0 = time.perf_counter()
            res = verilog_sim.run(hw, work / "verilog", work / "build" / "verilog", x_int, QUIET)
            total = time.perf_counter() - t0
            t1 = time.perf_counter()
            res = verilog_sim.run(hw, work / "verilog", work / "build" / "verilog", x_int, QUIET)
            sim_t = time.perf_counter() - t1
            assert np.array_equal(res.y, golden), "verilog differs from golden"
            cycles = res.cycles_per_inference * len(x)
            figures.update({"verilog.build_s": round(total - sim_t, 2), "verilog.sim_s": round(sim_t, 2),
                            "verilog.cycles_per_inference": res.cycles_per_inference,
                            "verilog.cycles_per_s": round(cycles / sim_t),
                            "verilog.cycle_loop_cycles_per_s": round(res.extra.get("cycles_per_second") or 0),
                            "verilog.samples_per_s": round(len(x) / sim_t, 1)})
            print(f"verilog  build {total - sim_t:6.2f} s   {len(x) / sim_t:9.1f} samples/s, "
                  f"{cycles / sim_t:9.0f} simulated cycles/s incl. start-up "
                  f"({res.extra.get('cycles_per_second') or 0:.0f} in the cycle loop), "
                  f"{res.cycles_per_inference:.1f} cycles/inference")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
