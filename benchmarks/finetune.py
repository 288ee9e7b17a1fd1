"""The fine-tuning table of docs/training.md: post-training quantization against training
through the design's own integer arithmetic (``design.finetune``, :mod:`nnforge.train`),
for the digits CNN and residual network, measured here.

    python benchmarks/finetune.py [--models digits_cnn,digits_resnet] [--epochs N]
                                  [--no-verify] [--markdown docs/training.md] [--json]

Data: each example's ``train.npz`` (the training split) is cut into training (the first
85%) and validation (the rest: the epoch with the best validation accuracy is kept); every
accuracy in the table is on ``test.npz`` (the test split), never seen in training.

Per row: the design compiled with the row's options (calibration on ``calibration.npz``),
its golden accuracy (post-training quantization), then fine-tuned (labels; with ``+ KD``
also distillation from the float model at T = 4, half of the loss; the pruning rows with
:data:`PRUNE_TUNE`'s rate and epochs, the gradual one pruning during training; the 2-bit
rows 120 epochs) and its golden accuracy again; the time per epoch on this machine (CPU, the threads PyTorch takes). Unless
``--no-verify``, every fine-tuned design is written and each backend (C, HLS C++, Verilog
in Verilator) is run on the whole test split against golden (every output integer of every
sample compared; the last column counts the samples that differ, per backend, when any do).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nnforge

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MODELS = ("digits_cnn", "digits_resnet")
EPOCHS = 40
KD_T = 4.0
# (label, compile options, fine-tuning options)
# pruning recovery: 8-bit weights move further than the default rate takes them in 40 epochs
# (digits CNN pruned at compile: 90.8% after 40 epochs, 95.0% after 120)
PRUNE_TUNE = {"lr": 0.003, "epochs": 120}
REAL = {"scale": "real"}  # real scales: an integer multiplier and a shift per rescale
ROWS = [
    ("W4/A4, power-of-two scales", {"bits": 4}, {}),
    ("W4/A4, real scales", {"bits": 4, **REAL}, {}),
    ("W4/A4, real scales + KD", {"bits": 4, **REAL}, {"distill": KD_T}),
    ("W2/A4, real scales per channel", {"bits": 4, "weight_bits": 2, "per_channel": True, **REAL}, {"epochs": 120}),
    ("W2/A4, real scales per channel + KD", {"bits": 4, "weight_bits": 2, "per_channel": True, **REAL},
     {"distill": KD_T, "epochs": 120}),
    ("W8/A8, pruned 75% at compile", {"bits": 8, "prune": 0.75}, PRUNE_TUNE),
    ("W8/A8, pruned 75% at compile + KD", {"bits": 8, "prune": 0.75}, {**PRUNE_TUNE, "distill": KD_T}),
    ("W8/A8, pruned 75% gradually in training", {"bits": 8}, {**PRUNE_TUNE, "prune": 0.75}),
    ("W8/A8, pruned 75% gradually over the network", {"bits": 8},
     {**PRUNE_TUNE, "prune": 0.75, "prune_scope": "global"}),
    ("W8/A8, pruned 75% gradually in training + KD, 600 epochs", {"bits": 8},
     {**PRUNE_TUNE, "prune": 0.75, "distill": KD_T, "epochs": 600}),
    ("mixed W2-8 (drop <= 3%) / A6", {"bits": 6, "mixed_precision": 0.03}, {}),
]
BACKENDS = ("golden", "c", "hls", "verilog")
MARK_BEGIN, MARK_END = "<!-- finetune table: begin -->", "<!-- finetune table: end -->"


def accuracy(design, x, y) -> float:
    return float(np.mean(design.predict(x).reshape(len(x), -1).argmax(axis=1) == y))


def run_row(name: str, label: str, options: dict, tune: dict, epochs: int, verify: bool, work: Path) -> dict:
    ex = EXAMPLES / name
    tr, te = np.load(ex / "train.npz"), np.load(ex / "test.npz")
    k = int(len(tr["x"]) * 0.85)
    train, val = (tr["x"][:k], tr["y"][:k]), (tr["x"][k:], tr["y"][k:])
    opts = dict(options)
    if "mixed_precision" in opts:
        opts["validation"] = val
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], **opts)
    t0 = time.monotonic()
    tune = dict(tune)
    epochs = tune.pop("epochs", epochs)
    tuned = design.finetune(*train, validation=val, epochs=epochs, **tune)
    seconds = time.monotonic() - t0
    run = tuned.training[-1]
    float_acc = float(np.mean(design.predict_float(te["x"]).reshape(len(te["x"]), -1).argmax(axis=1) == te["y"]))
    row = {"model": name, "row": label, "float": float_acc, "ptq": accuracy(design, te["x"], te["y"]), "finetuned": accuracy(tuned, te["x"], te["y"]),
           "epochs": epochs, "kept_epoch": run["kept_epoch"], "seconds_per_epoch": round(seconds / epochs, 3),
           "formats_moved": len(run["formats_moved"]),
           "weight_bits": sorted({tuned.qgraph.qtype(n.inputs[1]).width for n in tuned.qgraph.topo()
                                  if n.op in ("Conv", "Dense")})}
    if verify:
        out = tuned.write(work / f"{name}_{len(list(work.iterdir()))}", targets=["c", "hls", "verilog"])
        result = tuned.verify(te["x"], te["y"], backends=BACKENDS, outdir=out)
        row["mismatches"] = {b: r.mismatches for b, r in result.backends.items()}
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | design | float | PTQ | fine-tuned | vs float | epochs (kept) | s / epoch | "
             "formats moved | backends on the test split |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        mm = r.get("mismatches")
        check = "not run" if mm is None else (
            "all equal golden" if not any(mm.values()) else
            ", ".join(f"{b}: {v} differ" for b, v in mm.items() if v))
        lines.append(f"| {r['model']} | {r['row']} | {r['float']:.2%} | {r['ptq']:.2%} | **{r['finetuned']:.2%}** | "
                     f"{100 * (r['finetuned'] - r['float']):+.1f} pt | {r['epochs']} ({r['kept_epoch']}) | "
                     f"{r['seconds_per_epoch']:.2f} | {r['formats_moved']} | {check} |")
    return "\n".join(lines)


def rewrite(path: Path, text: str) -> None:
    doc = path.read_text()
    a, b = doc.index(MARK_BEGIN) + len(MARK_BEGIN), doc.index(MARK_END)
    path.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--no-verify", action="store_true", help="skip running the backends on the test split")
    ap.add_argument("--markdown", type=Path, help="rewrite the table between the markers of this file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnforge_finetune_") as tmp:
        for name in args.models.split(","):
            for label, options, tune in ROWS:
                t0 = time.monotonic()
                rows.append(run_row(name, label, options, tune, args.epochs, not args.no_verify, Path(tmp)))
                r = rows[-1]
                print(f"[{time.strftime('%H:%M:%S')}] {name} {label}: PTQ {r['ptq']:.2%} -> {r['finetuned']:.2%} "
                      f"(float {r['float']:.2%}) in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.markdown:
        rewrite(args.markdown, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
