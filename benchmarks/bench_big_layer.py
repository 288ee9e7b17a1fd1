"""Peak memory and time of compiling one very large Dense layer to C.

    python benchmarks/bench_big_layer.py [--millions 10 25 100] [--n-in 4000] [--keep DIR]

For each size, a one-layer model (``Gemm``: ``y = x W^T + b``, ``--n-in`` inputs, N / n_in
outputs, random float32 weights) is written with onnx.helper and compiled with
``nnforge compile --targets c`` in a child process; the child's peak resident set size
(``ru_maxrss`` from ``wait4``) and wall time are printed, with the C file's size. A
benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_model(path: Path, n_weights: int, n_in: int, seed: int = 0) -> tuple[int, int]:
    """A single-Gemm model of about ``n_weights`` weights; returns (n_in, n_out)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_out = max(2, n_weights // n_in)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_out, n_in), dtype=np.float32)
    w *= np.float32(1.0 / np.sqrt(n_in))
    b = rng.standard_normal(n_out, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="big", transB=1)], "big_layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    del w
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return n_in, n_out


def compile_measured(model: Path, cal: Path, out: Path) -> dict:
    """``nnforge compile`` in a child: exit status, peak RSS (MiB) and seconds."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "nnforge", "compile", str(model), "-o", str(out), "--targets", "c",
                          "--calibration", str(cal), "-q"], stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode(errors="replace").strip()
    p.stderr.close()
    return {"exit": os.waitstatus_to_exitcode(status), "peak_rss_mib": round(usage.ru_maxrss / 1024),
            "seconds": round(time.monotonic() - t0, 1), "stderr": err[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--millions", type=float, nargs="+", default=[10, 25, 100], help="weights per case, in millions")
    ap.add_argument("--n-in", type=int, default=4000, help="inputs of the layer (default 4000)")
    ap.add_argument("--keep", help="build in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        base.mkdir(parents=True, exist_ok=True)
        for m in args.millions:
            n = int(m * 1e6)
            model = base / f"big_{n}.onnx"
            n_in, n_out = build_model(model, n, args.n_in)
            cal = base / f"cal_{n_in}.npz"
            np.savez(cal, x=np.random.default_rng(1).uniform(-1, 1, (16, n_in)).astype(np.float32))
            out = base / f"out_{n}"
            r = compile_measured(model, cal, out)
            c_file = out / "c" / "nnforge_model.c"
            r.update(weights=n_in * n_out, shape=[n_out, n_in], model_mib=round(model.stat().st_size / 2**20),
                     c_file_mib=round(c_file.stat().st_size / 2**20) if c_file.exists() else None)
            rows.append(r)
            print(f"{r['weights'] / 1e6:7.1f} M weights ({n_out} x {n_in}): exit {r['exit']}, peak RSS "
                  f"{r['peak_rss_mib']} MiB, {r['seconds']} s, model {r['model_mib']} MiB, C file "
                  f"{r['c_file_mib']} MiB" + (f"\n    {r['stderr']}" if r["exit"] else ""), flush=True)
            if not args.keep:
                model.unlink()
                import shutil
                shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
