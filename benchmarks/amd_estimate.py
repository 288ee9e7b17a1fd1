"""nnforge's resource estimate for an AMD part against Yosys ``synth_xilinx`` on the same Verilog.

    python3 benchmarks/amd_estimate.py [--models digits_cnn,digits_resnet,resnet8,ds_cnn,fc_autoencoder]
                                       [--part xc7z020] [--out DIR] [--json FILE]

For each model: compile it (8 bits) with ``--fit PART`` (the Verilog folded to the part's
DSP48 slices, 80% of its LUT6s and flip-flops and its block RAM tiles, by the estimate for
its architecture, :func:`nnforge.codegen.estimate_amd.amd_estimate`), then ``nnforge synth
--fpga PART`` (:func:`nnforge.sim.fpga.synth_amd`: Yosys ``synth_xilinx``, no place and
route). Prints per model the estimate and Yosys's count of DSP48 slices, block RAM tiles
(RAMB36 + RAMB18 / 2), LUTs (logic, LUT RAM and shift registers, as Vivado counts them) and
flip-flops, with the estimate's error. The MLPerf Tiny shapes come from ``mlperf_tiny.py``
(synthetic weights); the digits examples from ``examples/``. Yosys takes from seconds (the
digits networks) to several minutes (ResNet-8) per model on one core.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nnforge
from nnforge.sim import fpga

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
MODELS = ("digits_cnn", "digits_resnet", "resnet8", "ds_cnn", "fc_autoencoder")
FIGURES = (("DSP", "dsp"), ("BRAM", "bram"), ("LUT", "luts"), ("FF", "ffs"))


def _mlperf():
    spec = importlib.util.spec_from_file_location("mlperf_tiny", HERE / "mlperf_tiny.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def model_and_calibration(name: str):
    if (EXAMPLES / name).is_dir():
        return EXAMPLES / name / "model.onnx", np.load(EXAMPLES / name / "calibration.npz")["x"]
    model, cal, _ = getattr(_mlperf(), name)()
    return model, cal


def run(name: str, part: str, work: Path) -> dict:
    model, cal = model_and_calibration(name)
    design = nnforge.compile(model, calibration=cal, bits=8)
    out = work / name
    design.write(out, targets=["verilog"], **fpga.fit_budget(fpga.resolve_part(part)))
    est = json.loads((out / "verilog" / "verilog_info.json").read_text())["totals"]["estimate"]
    t0 = time.monotonic()
    r = fpga.synth(out, part)
    row = {"model": name, "part": part, "yosys_seconds": round(time.monotonic() - t0, 1)}
    for key, ekey in FIGURES:
        row[key] = {"estimate": est[ekey], "yosys": r["synthesized"][key]}
    return row


def error(fig: dict) -> str:
    e, y = fig["estimate"], fig["yosys"]
    if e == y:
        return "exact"
    return f"{100 * (e - y) / y:+.1f}%" if y else "n/a"


def table(rows: list[dict]) -> str:
    head = "| model | part | " + " | ".join(f"{k} est / Yosys" for k, _ in FIGURES) + " | Yosys s |"
    lines = [head, "|---|---|" + "---|" * len(FIGURES) + "--:|"]
    for r in rows:
        cells = [f"{r[k]['estimate']:g} / {r[k]['yosys']:g} ({error(r[k])})" for k, _ in FIGURES]
        lines.append(f"| {r['model']} | {r['part']} | " + " | ".join(cells) + f" | {r['yosys_seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--part", default="xc7z020")
    ap.add_argument("--out", help="keep the compiled folders here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out) if args.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            rows.append(run(name, args.part, work))
            print(f"{name}: " + ", ".join(f"{k} {rows[-1][k]['estimate']:g} / {rows[-1][k]['yosys']:g}"
                                          for k, _ in FIGURES), file=sys.stderr, flush=True)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
