"""Accuracy of the bundled digits networks for every calibration method at 8, 6 and 4-bit
weights (8-bit activations), float beside it; writes docs/quantization.md.

    python scripts/quant_table.py [--out docs/quantization.md]

Each cell is the golden integer model's accuracy on the example's whole test split
(bias correction at its default: on below 8-bit weights). Weights are per tensor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("minmax", "percentile:99.99", "percentile:99.9", "mse", "kl")
WEIGHT_BITS = (8, 6, 4)
EXAMPLES = ("digits_mlp", "digits_cnn", "digits_resnet")


def table() -> str:
    import nnforge

    lines = ["# Quantization accuracy of the bundled examples", "",
             "Made by `python scripts/quant_table.py`: the golden integer model's accuracy (%) on each",
             "example's whole test split, 8-bit activations, per-tensor power-of-two weight scales,",
             "bias correction at its default (on below 8-bit weights). Per-channel weight scales are",
             "not implemented yet.", ""]
    for ex in EXAMPLES:
        d = ROOT / "examples" / ex
        cal, test = np.load(d / "calibration.npz")["x"], np.load(d / "test.npz")
        x, y = test["x"], test["y"]
        rows, float_acc = [], None
        for wb in WEIGHT_BITS:
            cells = []
            for m in METHODS:
                des = nnforge.compile(d / "model.onnx", calibration=cal, weight_bits=wb, act_bits=8,
                                      calibration_method=m)
                if float_acc is None:
                    float_acc = float((des.predict_float(x).reshape(len(x), -1).argmax(1) == y).mean())
                cells.append(float((des.predict(x).reshape(len(x), -1).argmax(1) == y).mean()))
            rows.append(f"| {wb}-bit | " + " | ".join(f"{100 * c:.2f}" for c in cells) + " |")
        lines += [f"## {ex} (float {100 * float_acc:.2f}%)", "",
                  "| weights | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|", *rows, ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "quantization.md"))
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    text = table()
    Path(args.out).write_text(text)
    print(text)
    print(f"written to {args.out} in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
