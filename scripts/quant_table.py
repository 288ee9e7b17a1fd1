"""Accuracy of the bundled digits networks for every calibration method at 8, 6 and 4-bit
weights (8-bit activations), float beside it; writes docs/quantization.md.

    python scripts/quant_table.py [--out docs/quantization.md]

Each cell is the golden integer model's accuracy on the example's whole test split
(bias correction at its default: on below 8-bit weights), with one power-of-two weight
scale per tensor and one per output channel.

The activation ranges depend only on the example and the calibration method (not on the
weight bits, the scale scheme or the rounding), so each (example, method) is calibrated
once and its ranges reused by every compilation of it (:func:`compile_with_ranges`).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("minmax", "percentile:99.99", "percentile:99.9", "mse", "kl")
WEIGHT_BITS = (8, 6, 4)
EXAMPLES = ("digits_mlp", "digits_cnn", "digits_resnet")
SCHEMES = (("pow2 tensor", {}), ("pow2 channel", {"per_channel": True}),
           ("pow2 channel search", {"per_channel": True, "rounding": "search"}),
           ("real tensor", {"scale": "real"}), ("real channel", {"scale": "real", "per_channel": True}),
           ("real channel search", {"scale": "real", "per_channel": True, "rounding": "search"}))


def compile_with_ranges(path: Path, cal: np.ndarray, ranges: dict, **kw):
    """``nnforge.compile(path, calibration=cal, **kw)``: the compile pipeline
    (:func:`nnforge.pipeline.compile_model`) with its calibration step done once per
    (method, activation bits): its ranges are kept in ``ranges`` (one dict per example)
    and reused (the compile API takes no precomputed ranges)."""
    from nnforge.design import Design
    from nnforge.pipeline import Options, calibrate_ranges, compile_model
    from nnforge.sim.progress import QUIET

    options = Options(calibration=cal, **kw)
    key = (options.calibration_method, options.act_bits)

    def calibrate_once(s) -> None:
        if key not in ranges:
            calibrate_ranges(s)
            ranges[key] = copy.deepcopy(s.ranges)
        s.ranges = copy.deepcopy(ranges[key])

    compiled = compile_model(path, options, QUIET, instead={calibrate_ranges: calibrate_once})
    return Design.from_compiled(compiled, str(path))


def table() -> str:
    lines = ["# Quantization accuracy of the bundled examples", "",
             "Made by `python scripts/quant_table.py`: the golden integer model's accuracy (%) on each",
             "example's whole test split, 8-bit activations, power-of-two weight scales per tensor",
             "or per output channel (`--per-channel`), bias correction at its default (on below 8-bit",
             "weights).", ""]
    ranges = {ex: {} for ex in EXAMPLES}  # per example: the calibrated ranges of each method
    for ex in EXAMPLES:
        d = ROOT / "examples" / ex
        cal, test = np.load(d / "calibration.npz")["x"], np.load(d / "test.npz")
        x, y = test["x"], test["y"]
        rows, float_acc = [], None
        for wb in WEIGHT_BITS:
            for per_channel in (False, True):
                cells = []
                for m in METHODS:
                    des = compile_with_ranges(d / "model.onnx", cal, ranges[ex], weight_bits=wb, act_bits=8,
                                              calibration_method=m, per_channel=per_channel)
                    if float_acc is None:
                        float_acc = float((des.predict_float(x).reshape(len(x), -1).argmax(1) == y).mean())
                    cells.append(float((des.predict(x).reshape(len(x), -1).argmax(1) == y).mean()))
                rows.append(f"| {wb}-bit | {'channel' if per_channel else 'tensor'} | "
                            + " | ".join(f"{100 * c:.2f}" for c in cells) + " |")
        lines += [f"## {ex} (float {100 * float_acc:.2f}%)", "",
                  "| weights | scale per | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 2) + "|",
                  *rows, ""]
    lines += ["## Scale schemes and rounding search at 4 and 3-bit weights", "",
              "MSE calibration, 8-bit activations. `pow2`: every rescale a shift; `real`: calibrated real",
              "scales applied as integer multiplier and shift (`--scale real`); `search`: per-channel",
              "rounding search (`--rounding search`, its bias shift in place of bias correction).", "",
              "| example | weights | " + " | ".join(name for name, _ in SCHEMES) + " |",
              "|---" * (len(SCHEMES) + 2) + "|"]
    for ex in EXAMPLES:
        d = ROOT / "examples" / ex
        cal, test = np.load(d / "calibration.npz")["x"], np.load(d / "test.npz")
        x, y = test["x"], test["y"]
        for wb in (4, 3):
            cells = []
            for _, kw in SCHEMES:
                des = compile_with_ranges(d / "model.onnx", cal, ranges[ex], weight_bits=wb, act_bits=8,
                                          calibration_method="mse", **kw)
                cells.append(float((des.predict(x).reshape(len(x), -1).argmax(1) == y).mean()))
            lines.append(f"| {ex} | {wb}-bit | " + " | ".join(f"{100 * c:.2f}" for c in cells) + " |")
    lines.append("")
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
