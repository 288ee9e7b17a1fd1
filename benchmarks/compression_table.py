"""The compression table of docs/compression.md: for the digits CNN and residual network,
each compression technique's accuracy, weight bytes, measured C time and Verilog cycles
and resources, all measured here.

    python benchmarks/compression_table.py [--out docs/compression.md] [--samples N]

Per row: the design is compiled (8-bit, the technique's options), its golden accuracy
taken on the whole test split; the C backend is written and timed (gcc -O2, the fastest
of 100 passes over the split, sim/harness/bench.c) after checking its outputs equal golden;
the Verilog backend (balanced folding) is simulated by Verilator on ``N`` test images
(outputs equal golden, cycles per image measured) and its resources are the writer's
estimate (codegen/estimate.py: multipliers, LUT4s, block RAMs for an ECP5).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import nnforge
from nnforge.sim.native import time_c

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# (label, compile options)
TECHNIQUES = [
    ("none (8-bit)", {}),
    ("prune 50%", {"prune": 0.5}),
    ("prune 75%", {"prune": 0.75}),
    ("prune 90%", {"prune": 0.9}),
    ("structured 25%", {"prune_structured": 0.25}),
    ("structured 50%", {"prune_structured": 0.5}),
    ("low rank 90%", {"low_rank": 0.9}),
    ("low rank 80%", {"low_rank": 0.8}),
    ("share 2^4 values", {"share_weights": 4}),
    ("share 2^3 values", {"share_weights": 3}),
    ("float16", {"float_format": "fp16"}),
    ("bfloat16", {"float_format": "bf16"}),
    ("fp16 + NeuZip lossless", {"float_format": "fp16", "neuzip": "lossless"}),
    ("bf16 + NeuZip lossless", {"float_format": "bf16", "neuzip": "lossless"}),
    ("fp16 + NeuZip lossy:4", {"float_format": "fp16", "neuzip": "lossy:4"}),
    ("fp16 + NeuZip lossy:2", {"float_format": "fp16", "neuzip": "lossy:2"}),
    ("fp16 + prune 75%", {"float_format": "fp16", "prune": 0.75}),
]
_SYNTH: dict[tuple, dict] = {}  # float processor designs synthesized


def _float_resources(vdir: Path, tmp: str, key: tuple) -> dict:
    """Yosys synth_ecp5 + nextpnr (ECP5-85k) of the float processor (no estimate model for
    it): LUT4s, DSP multipliers, block RAMs and the clock reached. Once per example, format
    and set of zero-skipping layers: NeuZip storage changes only the weight ROM's contents
    (same words, block RAM) unless its weights have enough zeros for the tap list."""
    from nnforge.sim.fpga import synth

    if key not in _SYNTH:
        r = synth(vdir, "ecp5-85k", outdir=Path(tmp) / "synth", clock_mhz=25.0)
        u = {k: v["used"] for k, v in r["utilization"].items()}
        _SYNTH[key] = {"luts": u["LUT"], "bram": u["BRAM"], "dsp": u["DSP"],
                       "fmax": min(r["fmax_mhz"].values()) if r["fmax_mhz"] else None}
    return _SYNTH[key]


def _row(example: str, label: str, opts: dict, samples: int) -> dict:
    d = EXAMPLES / example
    x_cal = np.load(d / "calibration.npz")["x"]
    test = np.load(d / "test.npz")
    design = nnforge.compile(d / "model.onnx", calibration=x_cal, bits=8, **opts)
    floating = "float_format" in opts
    with tempfile.TemporaryDirectory() as tmp:
        out = design.write(Path(tmp) / "o", targets=["c", "verilog"])
        res = design.verify(test["x"], test["y"], backends=["golden", "c"], outdir=out)
        if any(b.mismatches for b in res.backends.values()):
            raise SystemExit(f"{example} {label}: the C outputs differ from golden")
        ns = time_c(out / "c", Path(tmp) / "bench", design.quantize_input(test["x"]), repeats=100)
        vres = design.verify(test["x"][:samples], backends=["golden", "verilog"], outdir=out)
        if vres.backends["verilog"].mismatches:
            raise SystemExit(f"{example} {label}: the Verilog outputs differ from golden")
        info = json.loads((out / "verilog" / "verilog_info.json").read_text())
        est = (_float_resources(out / "verilog", tmp, (example, opts["float_format"],
                                                       tuple(info["totals"].get("sparse_layers", ()))))
               if floating else info["totals"]["estimate"])
    prog = design.lowered("c")
    steps = [s for s in prog.steps if s.kind in ("conv", "dense")]
    row = {"technique": label, "accuracy": res.backends["golden"].accuracy,
           "float_accuracy": res.float_accuracy,
           "weight_bytes": sum(s.params["weight_bytes"] for s in steps),
           "macs": prog.macs,
           "c_ns": ns, "cycles": vres.backends["verilog"].cycles_per_inference,
           "multipliers": (est["dsp"] if floating else
                           info["totals"]["multipliers"] + info["totals"].get("lut_multipliers", 0)),
           "luts": est["luts"], "bram": est["bram"], "fmax": est.get("fmax")}
    if opts.get("neuzip") == "lossless":
        plain = sum(2 * s.params["n_w"] for s in steps)
        row["technique"] += f" ({plain / sum(s.params['blob_bytes'] for s in steps):.2f}x on the weights)"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "compression.md"))
    ap.add_argument("--samples", type=int, default=64, help="test images simulated in Verilog")
    args = ap.parse_args()
    t0 = time.monotonic()
    lines = ["# Compression: what each technique saves", "",
             "Made by `python benchmarks/compression_table.py` (every figure measured by it; see its",
             "docstring). Accuracy: the quantized (golden) model on the whole digits test split, every",
             "C output equal to golden; C: ns per inference, gcc -O2 on the machine that ran the",
             "script; Verilog: balanced folding, cycles per image measured in Verilator (outputs",
             "equal to golden), multipliers (DSP and LUT), LUT4s and block RAMs from the estimate.",
             "Pruning and low rank are one-shot (no training): the weights kept are refitted on the",
             "calibration data. The folded Verilog engines (here) do not skip zero weights yet:",
             "unstructured pruning saves nothing there (an unrolled Dense layer, `--parallelism parallel`,",
             "has no multiplier for a zero weight); structured pruning removes whole channels. Low rank",
             "splits only the Dense and 1x1 Conv layers it makes smaller (the CNN has one small Dense).",
             "Weight sharing: the C file stores packed indices and a table (the bytes here); the Verilog",
             "engines keep whole weights.",
             "",
             "Float rows (`--float fp16|bf16`, no quantization: 16-bit float weights and activations,",
             "float32 accumulation, round to nearest even; C, HLS and Verilog bit-exact with golden):",
             "the Verilog design is the float processor, one binary32 multiply-accumulate unit running",
             "the layers in turn, so its cycles are about the MACs; its resources are measured by Yosys",
             "synth_ecp5 and nextpnr on an ECP5-85k (DSP blocks as multipliers; the clock it reaches",
             "is in the last column), once per format and set of zero-skipping layers: NeuZip storage",
             "changes only the contents of the weight ROM. NeuZip lossless: the C file holds each layer's rANS-coded blob (its ratio to",
             "plain fp16 / bf16 on the Dense / Conv weights in the row's name) and decodes it before",
             "the layer runs; outputs equal plain storage's. NeuZip lossy:K: the weights keep K",
             "mantissa bits under one power-of-two scale per block of 32 (the golden model and every",
             "backend use these values; the C file stores the packed codes). fp16 + prune 75%: the",
             "float processor walks each channel's nonzero taps only (a ROM entry per tap), so the",
             "cycles drop with the zero weights (the float C code does not skip them yet).", ""]
    for example in ("digits_cnn", "digits_resnet"):
        rows = []
        for label, opts in TECHNIQUES:
            r = _row(example, label, opts, args.samples)
            rows.append(r)
            print(f"{example:<14} {label:<16} acc {r['accuracy']:.3f} bytes {r['weight_bytes']:>6} "
                  f"C {r['c_ns']:>8.0f} ns  cycles {r['cycles']:>7.0f}  mults {r['multipliers']:>3}  "
                  f"LUTs {r['luts']:>6}", flush=True)
        base = rows[0]
        lines += [f"## {example} (float accuracy {base['float_accuracy']:.1%})", "",
                  "| technique | accuracy | weight bytes | MACs | C ns / inference | C speedup | Verilog cycles "
                  "| multipliers | LUT4s | block RAMs | clock |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            clock = f"{r['fmax']:.1f} MHz" if r.get("fmax") else "-"
            lines.append(f"| {r['technique']} | {r['accuracy']:.1%} | {r['weight_bytes']:,} | {r['macs']:,} "
                         f"| {r['c_ns']:,.0f} | {base['c_ns'] / r['c_ns']:.2f}x | {r['cycles']:,.0f} "
                         f"| {r['multipliers']} | {r['luts']:,} | {r['bram']} | {clock} |")
        lines.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out} in {time.monotonic() - t0:.0f}s")


if __name__ == "__main__":
    main()
