"""C time per inference of pruned models, with every layer's weights in the dense loops
and in the compressed sparse form, to place codegen/program.py's SPARSE_DENSITY.

    python benchmarks/bench_c_sparse.py [--repeats R]

Prints, per bundled example and sparsity (magnitude pruning), nanoseconds per inference
(gcc -O2, the fastest of R passes over the test split) with every Dense / Conv dense,
every one sparse, and with the default rule."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import nnforge
from nnforge.codegen import program
from nnforge.sim.native import time_c

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    default = dict(program.SPARSE_DENSITY)
    print(f"{'model':<14} {'pruned':>6} {'dense ns':>9} {'sparse ns':>9} {'default ns':>10}")
    for ex in ("digits_mlp", "digits_cnn", "digits_resnet"):
        d = EXAMPLES / ex
        x_cal, test = np.load(d / "calibration.npz")["x"], np.load(d / "test.npz")["x"]
        for s in (None, 0.5, 0.75, 0.9):
            design = nnforge.compile(d / "model.onnx", calibration=x_cal, bits=8, prune=s)
            x_int = design.quantize_input(test)
            row = []
            for rule in ({"Dense": -1, "Conv": -1}, {"Dense": 2, "Conv": 2}, default):
                program.SPARSE_DENSITY = rule
                with tempfile.TemporaryDirectory() as tmp:
                    out = design.write(Path(tmp) / "o", targets=["c"])
                    row.append(time_c(out / "c", Path(tmp) / "b", x_int, repeats=args.repeats))
            program.SPARSE_DENSITY = default
            print(f"{ex:<14} {('-' if s is None else f'{s:.0%}'):>6} {row[0]:>9.0f} {row[1]:>9.0f} {row[2]:>10.0f}")


if __name__ == "__main__":
    main()
