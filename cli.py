"""The command line: a thin layer over the Python API (see ``nnforge --help``)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .data import DataError, load_npz
from .design import BACKENDS, TARGETS, TRACEABLE, Design, compile
from .persist import read_json, read_report_precision
from .report import trace_text, training_text
from .codegen.mcu import MCUS
from .targets import PARALLELISM, TARGETS as TARGET_TABLE, check_names, folding_of, hls_settings
from .passes.prune import compression_text
from .ir.text import printable
from .sim.files import defer_during_swap, output_folder, read_manifest
from .sim.fpga import DEFAULT_ROUTER, FIT_SHARE, ROUTERS
from .sim.progress import Progress

EXAMPLE = Path(__file__).resolve().parent / "examples" / "digits_mlp"


def _list(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def cmd_compile(args, progress: Progress) -> int:
    targets = check_names(_list(args.targets), TARGETS, "target")
    if args.mcu != "generic" and "c" not in targets:
        raise ValueError(f"--mcu {args.mcu} picks the C target's kernels; add c to --targets")
    # an output folder that would take the user's files or an input with it: refused first
    output_folder(args.output, {"model": args.model, "calibration": args.calibration,
                                "validation": args.validation})
    x_cal = None
    if args.calibration:
        x_cal, _ = load_npz(args.calibration)
    t0 = time.monotonic()
    validation = load_npz(args.validation) if args.validation else None
    for flag, v in (("--mixed-precision", args.mixed_precision), ("--prune-max-drop", args.prune_max_drop)):
        if v is not None and validation is None:
            raise ValueError(f"{flag} needs --validation DATA.npz with labels")
    design = compile(args.model, calibration=x_cal, bits=args.bits, weight_bits=args.weight_bits,
                     act_bits=args.act_bits, progress=progress, calibration_method=args.calibration_method,
                     mixed_precision=args.mixed_precision, validation=validation,
                     bias_correction={"auto": None, "on": True, "off": False}[args.bias_correction],
                     per_channel=args.per_channel, scale=args.scale, asymmetric=args.asymmetric,
                     rounding=args.rounding, dynamic=args.dynamic, prune=args.prune,
                     prune_structured=args.prune_structured, low_rank=args.low_rank,
                     share_weights=args.share_weights, float_format=args.float_format, neuzip=args.neuzip,
                     prune_max_drop=args.prune_max_drop, max_elements=args.max_elements, mcu=args.mcu)
    budget = {"max_multipliers": args.max_multipliers, "max_luts": args.max_luts, "max_bram": args.max_bram}
    if args.fit:
        from .sim.fpga import fit_budget, resolve_part

        if any(v is not None for v in budget.values()):
            raise ValueError("give --fit or --max-multipliers / --max-luts / --max-bram, not both")
        budget = fit_budget(resolve_part(args.fit))
    design.write(args.output, targets=targets, parallelism=args.parallelism, progress=progress,
                 target_fps=args.target_fps, clock_mhz=args.clock_mhz, **budget)
    if not args.quiet:
        print(design.summary())
        c_section = _report_section(Path(args.output), "c")
        if c_section:
            print("\n".join(TARGET_TABLE["c"].report_lines(c_section)))
        print(f"compiled in {time.monotonic() - t0:.1f}s -> {args.output}")
    return 0


def _report_section(out: Path, name: str) -> dict | None:
    """A target's section of the ``report.json`` just written to ``out``."""
    return json.loads((out / "report.json").read_text()).get(name)


def cmd_verify(args, progress: Progress) -> int:
    if args.backends is None:  # golden and every target the folder holds
        backends = ["golden"] + [t for t in TARGETS if (Path(args.outdir) / t).is_dir()]
    else:
        backends = check_names(_list(args.backends), BACKENDS, "backend")
    read_manifest(args.outdir)  # an nnforge output folder, or one line
    design = Design.load(args.outdir, progress=progress)
    x, y = load_npz(args.data)
    result = design.verify(x, y, backends=backends, outdir=args.outdir, limit=args.limit,
                           progress=progress, jobs=args.jobs, scheduler=args.scheduler)
    traces, sample = {}, 0
    if args.trace:
        # the first sample some traceable backend got wrong (or the first sample)
        wrong = [r.first_mismatch for b, r in result.backends.items() if b in TRACEABLE and r.first_mismatch is not None]
        sample = min(wrong) if wrong else 0
        traceable = [b for b in backends if b in TRACEABLE]
        traces = design.trace(x, traceable, outdir=args.outdir, sample=sample, progress=progress) if traceable else {}
    if args.json:
        doc = result.as_dict()
        if args.trace:
            doc["trace"] = {"sample": sample, "backends": {b: [t.as_dict() for t in ls] for b, ls in traces.items()}}
        print(json.dumps(doc, indent=2))
    else:
        print(result)
        if args.trace:
            print(trace_text(traces, sample), end="")
    return 0 if result.ok else 1


def cmd_report(args, progress: Progress) -> int:
    """The precision report of a compiled design: from report.json (the calibration data),
    or recomputed on --data; with --html, OUTDIR/report.html (:mod:`nnforge.htmlreport`)."""
    out = Path(args.outdir)
    read_manifest(out)  # an nnforge output folder, or one line
    design = Design.load(out, progress=progress)
    if args.html:
        from .htmlreport import report_page
        from .sim.files import write_in_output

        info = read_json(out / "report.json", "a report")
        prec = profile = None
        if args.data:  # the precision and the histograms on these samples instead of report.json's
            x, _ = load_npz(args.data)
            prec, profile = design.precision_and_profile(x, limit=args.limit or 256)
        print(write_in_output(out, "report.html", report_page(info, profile, prec, args.data)))
        return 0
    if args.data:
        x, _ = load_npz(args.data)
        prec = design.precision(x, limit=args.limit or 256)
    else:
        prec = read_report_precision(out / "report.json")
        if not prec:
            raise DataError(f"{out} holds no precision report; give --data DATA.npz to compute one")
    if args.json:
        extra = {k: v for k, v in (("compression", design.compression), ("training", design.training)) if v}
        print(json.dumps({**prec, **extra}, indent=2))
    else:
        comp = "".join(compression_text(c) for c in design.compression) + "".join(
            training_text(r) for r in design.training)
        print(design.summary() + "\n\n" + (comp + "\n" if comp else "") + Design.precision_text(prec), end="")
    return 0


def cmd_finetune(args, progress: Progress) -> int:
    """Fine-tune the design of OUTDIR through its integer arithmetic and write the new one
    with OUTDIR's targets and Verilog folding."""
    from .train import require_torch

    require_torch()
    if args.prune_global and args.prune is None:
        raise ValueError("--prune-global needs --prune SPARSITY")
    out = Path(args.outdir)
    read_manifest(out)  # an nnforge output folder, or one line
    # the new folder must not take OUTDIR, the data or the user's files with it
    output_folder(args.output, {"design": out, "data": args.data, "validation": args.validation})
    design = Design.load(out, progress=progress)
    report = read_json(out / "report.json", "a report")
    names = report.get("targets") if isinstance(report, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(t, str) for t in names)):
        raise ValueError(f"{out / 'report.json'}: no list of targets")
    targets = check_names(names, TARGETS, "target")
    folding = folding_of(report)  # checked before the training, not after it
    hls = hls_settings(report)
    x, y = load_npz(args.data)
    validation = load_npz(args.validation) if args.validation else None
    if validation is not None and validation[1] is None:
        raise DataError(f"{args.validation}: validation data needs labels 'y'")
    if y is None and args.distill is None:
        raise DataError(f"{args.data} has no labels 'y': give --distill to train on the float model's outputs")
    t0 = time.monotonic()
    tuned = design.finetune(x, y, validation=validation, epochs=args.epochs, lr=args.lr, batch=args.batch,
                            distill=args.distill, seed=args.seed, formats=not args.keep_formats, prune=args.prune,
                            prune_scope="global" if args.prune_global else "layer", progress=progress)
    tuned.write(args.output, targets=targets, parallelism=folding, progress=progress, **hls)
    if not args.quiet:
        print(tuned.summary())
        print(training_text(tuned.training[-1]), end="")
        print(f"fine-tuned in {time.monotonic() - t0:.1f}s -> {args.output}")
    return 0


def cmd_demo(args, progress: Progress) -> int:
    out = Path(args.output)
    x_cal, _ = load_npz(EXAMPLE / "calibration.npz")
    x, y = load_npz(EXAMPLE / "test.npz")
    progress(f"compiling the bundled digits MLP ({EXAMPLE / 'model.onnx'})")
    design = compile(EXAMPLE / "model.onnx", calibration=x_cal, bits=8, progress=progress)
    design.write(out, targets=TARGETS, progress=progress)
    print(design.summary())
    print(f"\nsources written to {out}/ (c/, hls/, verilog/, report.txt)\n")
    result = design.verify(x, y, backends=BACKENDS, outdir=out, progress=progress)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result)
    return 0 if result.ok else 1


def cmd_synth(args, progress: Progress) -> int:
    """Synthesis, place and route and a bitstream with the open-source tools (Lattice
    ECP5 / iCE40), or a Vivado script for an AMD/Xilinx part."""
    from .sim import fpga

    result = fpga.synth(args.outdir, args.fpga, clock_mhz=args.clock_mhz, seed=args.seed, progress=progress,
                        axis=args.axis, speed=args.speed, router=args.router, seeds=args.seeds, jobs=args.jobs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(fpga.text_report(result), end="")
    if result.get("vendor") == "amd":
        if result.get("fits", True):
            return 0
        print(f"nnforge: {result['fit_error']} (Yosys synth_xilinx; the report was written)", file=sys.stderr)
        return 1
    if result["timing_met"]:
        return 0
    worst = min(result["fmax_mhz"].values(), default=0.0)
    print(f"nnforge: timing not met on {result['part']}: Fmax {worst:.2f} MHz is below the "
          f"{result['clock_mhz']:g} MHz target (the bitstream was written)", file=sys.stderr)
    return 1


def cmd_explore(args, progress: Progress) -> int:
    """A sweep over the cartesian product of the options, on Dask (nnforge.explore)."""
    from .explore import explore

    x_cal, _ = load_npz(args.calibration)
    validation = load_npz(args.validation)
    on_off = {"on": True, "off": False}
    per_channel = [on_off[v] if v in on_off else _bad("--per-channel", v, "on,off") for v in _list(args.per_channel)]
    lists = {}
    for flag, v in (("bits", args.bits), ("weight_bits", args.weight_bits), ("act_bits", args.act_bits),
                    ("parallelism", args.parallelism), ("fit", args.fit), ("target_fps", args.target_fps)):
        lists[flag] = None if v is None else _list(v)
        if v is not None and not lists[flag]:
            raise ValueError(f"--{flag.replace('_', '-')}: no value given")
    doc = explore(args.model, x_cal, validation, args.output, bits=lists["bits"] or ["8"],
                  weight_bits=lists["weight_bits"], act_bits=lists["act_bits"], per_channel=per_channel,
                  calibration_methods=_list(args.calibration_method), parallelism=lists["parallelism"],
                  fit=lists["fit"], target_fps=lists["target_fps"], clock_mhz=args.clock_mhz, synth=args.synth,
                  scheduler=args.scheduler, workers=args.workers, progress=progress)
    recs = doc["configurations"]
    failed = [r for r in recs if r["status"] != "ok"]
    if not args.quiet:
        from .explore.results import summary_lines

        print("\n".join(summary_lines(recs)))
        print(f"results: {Path(args.output) / 'results.json'}, results.csv, explore.html")
    if failed:
        print(f"nnforge: {len(failed)} of {len(recs)} configurations failed (their errors are in results.json)",
              file=sys.stderr)
        return 1
    return 0


def _bad(flag: str, value: str, allowed: str):
    raise ValueError(f"{flag}: {value!r} is not one of {allowed}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnforge", description="Compile ONNX models to bit-exact C, HLS C++ and Verilog.")
    p.add_argument("--version", action="version", version="nnforge 0.1.0")
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_compile_parser, _verify_parser, _report_parser, _finetune_parser, _synth_parser, _explore_parser,
                _demo_parser):
        add(sub)
    return p


def _compile_parser(sub) -> None:
    c = sub.add_parser("compile", help="compile an ONNX model to sources")
    c.add_argument("model", help="the ONNX model file")
    c.add_argument("-o", "--output", required=True, help="output folder: new, empty, or an earlier nnforge output (replaced whole, atomically; a "
                        "folder holding other or edited files is refused; a symbolic link is followed)")
    c.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, from {','.join(TARGETS)} (default: all)")
    _quantization_options(c)
    _model_options(c)
    _folding_options(c)
    c.add_argument("--mcu", default="generic", choices=tuple(MCUS), metavar="NAME",
                   help="the microcontroller the C target writes kernels for: "
                        f"{', '.join(MCUS)}. generic (default): portable C99 in the model's layout; a "
                        "Cortex-M core: channels-last kernels (DSP-extension ones where the core has it) and "
                        "one static activation arena; nnforge_run keeps the model's element order "
                        "(c/c_info.json states it, with the memory figures)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    c.set_defaults(func=cmd_compile)


def _quantization_options(c) -> None:
    c.add_argument("--calibration", help="calibration data: a .npz file with 'x' shaped (N, *input shape)")
    c.add_argument("--bits", type=int, default=8, help="width of weights and activations (default 8)")
    c.add_argument("--weight-bits", type=int, help="weight width (overrides --bits)")
    c.add_argument("--act-bits", type=int, help="activation width (overrides --bits)")
    c.add_argument("--calibration-method", default="minmax", metavar="METHOD",
                   help="how activation ranges are chosen from the calibration data: minmax (default), "
                        "percentile:P (e.g. percentile:99.99), mse or kl")
    c.add_argument("--bias-correction", choices=("auto", "on", "off"), default="auto",
                   help="correct each layer's bias for the mean error of its quantized weights "
                        "(auto: when weights are narrower than 8 bits)")
    c.add_argument("--per-channel", action="store_true",
                   help="a power-of-two weight scale per output channel of each Dense / Conv (default: per tensor)")
    c.add_argument("--scale", choices=("pow2", "real"), default="pow2",
                   help="pow2: every rescale is a shift (default, the FPGA choice); real: calibrated real scales "
                        "applied as integer multiplier and shift (the MCU choice)")
    c.add_argument("--asymmetric", action="store_true",
                   help="with --scale real: signed activations on the unsigned grid with a zero point")
    c.add_argument("--rounding", choices=("nearest", "search"), default="nearest",
                   help="weight rounding: to nearest (default) or searched per channel on the calibration data")
    c.add_argument("--dynamic", action="store_true",
                   help="the C target also gets nnforge_run_dynamic: activation scales chosen at run time per input")
    c.add_argument("--mixed-precision", type=float, metavar="MAX_ACC_DROP",
                   help="search per-layer weight widths (8 down to 2 bits) for the fewest weight bits whose "
                        "accuracy on --validation stays within MAX_ACC_DROP of float (a fraction: 0.01 is one point)")
    c.add_argument("--validation", help="labelled data for --mixed-precision and --prune-max-drop: a .npz file "
                                        "with 'x' and 'y'")


def _model_options(c) -> None:
    c.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="set that fraction (0.75: three quarters) of every Dense / Conv layer's weights to 0, "
                        "the rest refitted on the calibration data; the C code skips the zeros")
    c.add_argument("--prune-max-drop", type=float, metavar="MAX_ACC_DROP",
                   help="instead of --prune: the largest sparsity whose pruned float model loses at most "
                        "MAX_ACC_DROP accuracy (a fraction) on --validation")
    c.add_argument("--prune-structured", type=float, metavar="SPARSITY",
                   help="remove that fraction of the output channels (filters, neurons) of every layer whose "
                        "channels can go, with the inputs that read them; the rest refitted on the calibration data")
    c.add_argument("--low-rank", type=float, metavar="ENERGY",
                   help="split every Dense and 1x1 Conv into two thinner layers keeping that share (0.9) of its "
                        "singular values' energy, where that saves weights; refitted on the calibration data")
    c.add_argument("--share-weights", type=int, metavar="K",
                   help="cluster every Dense / Conv layer's weights into 2^K shared values (k-means), the values "
                        "refitted on the calibration data")
    c.add_argument("--max-elements", type=int, metavar="N",
                   help="the largest tensor the model may declare or constant folding may produce, in elements "
                        "(default 268435456 = 2^28; constant folding may produce twice that in all)")
    c.add_argument("--float", dest="float_format", choices=("fp16", "bf16"),
                   help="run the model in float16 or bfloat16 instead of fixed point: weights and activations "
                        "16-bit floats, float32 accumulation, round to nearest even (no calibration needed)")
    c.add_argument("--neuzip", metavar="lossless|lossy:K",
                   help="with --float: store the weights NeuZip-style: 'lossless' entropy-codes their exponents "
                        "(the C code decodes one layer at a time into a small buffer, same results); 'lossy:K' "
                        "keeps K mantissa bits under one scale per block of 32 weights")


def _folding_options(c) -> None:
    """Verilog folding: a mode, a frame rate or a resource budget."""
    c.add_argument("--parallelism", default="balanced", choices=PARALLELISM,
                   help="Verilog folding: one multiplier per layer; balanced (default: the fewest multipliers "
                        "that let every layer keep up with the streams); or every input channel per cycle")
    c.add_argument("--target-fps", type=float, metavar="F",
                   help="Verilog folding for F inferences per second at --clock-mhz (the fewest multipliers that do it)")
    c.add_argument("--clock-mhz", type=float, default=100.0,
                   help="the clock --target-fps assumes and the HLS script synthesizes for (default 100)")
    c.add_argument("--max-multipliers", type=int, metavar="N",
                   help="Verilog folding: the fastest design with at most N multiplier blocks (DSPs; products "
                        "with a weight or input of at most 4 bits are built from LUTs and cost none)")
    c.add_argument("--max-luts", type=int, metavar="N",
                   help="Verilog folding: the fastest design whose resource estimate needs at most N LUT4s")
    c.add_argument("--max-bram", type=int, metavar="N",
                   help="Verilog folding: the fastest design whose resource estimate needs at most N block RAMs "
                        "(ECP5 DP16KD, 18 kbit)")
    c.add_argument("--fit", metavar="PART",
                   help="Verilog folding: the fastest design that fits an FPGA part (ecp5-25k, ecp5-45k, "
                        "ecp5-85k, ice40-up5k; AMD xc7z020, xc7a35t, xc7a100t, xczu3eg, xczu7ev): its multipliers, "
                        f"and by the resource estimate for its architecture {int(FIT_SHARE * 100)}%% of its LUTs and "
                        "flip-flops (room for placement) and its block RAMs")


def _explore_parser(sub) -> None:
    e = sub.add_parser("explore", help="compile, measure and estimate every configuration of a sweep (on Dask)")
    e.add_argument("model", help="the ONNX model file")
    e.add_argument("--calibration", required=True, metavar="CAL.npz", help="calibration data: a .npz file with 'x'")
    e.add_argument("--validation", required=True, metavar="VAL.npz",
                   help="labelled data the accuracy is measured on: 'x' and 'y'")
    e.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the sweep's folder: new, empty or an earlier sweep's (its cache is reused)")
    e.add_argument("--bits", metavar="N,N", help="widths of weights and activations together, e.g. 4,6,8 (default 8)")
    e.add_argument("--weight-bits", metavar="N,N", help="weight widths, crossed with --act-bits (or --bits)")
    e.add_argument("--act-bits", metavar="N,N", help="activation widths, crossed with --weight-bits (or --bits)")
    e.add_argument("--per-channel", default="off", metavar="on,off", help="on, off or on,off (default off)")
    e.add_argument("--calibration-method", default="minmax", metavar="METHODS",
                   help="comma-separated: minmax, percentile:P, mse, kl (default minmax)")
    fold = e.add_mutually_exclusive_group()
    fold.add_argument("--parallelism", metavar="MODES",
                      help=f"Verilog folding modes, from {','.join(PARALLELISM)} (default balanced)")
    fold.add_argument("--fit", metavar="PART,PART", help="parts to fit (as compile --fit): the fastest design for each")
    fold.add_argument("--target-fps", metavar="F,F", help="frame rates at --clock-mhz (as compile --target-fps)")
    e.add_argument("--clock-mhz", type=float, default=100.0, metavar="MHZ",
                   help="the clock the latencies are given at (without --synth) and --target-fps assumes "
                        "(default 100)")
    e.add_argument("--synth", action="store_true",
                   help="also synthesize each configuration for its --fit part (resources used; a Lattice part is "
                        "placed and routed too: Fmax, and the latency at it)")
    where = e.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="a Dask scheduler (tcp://host:port) whose workers run the configurations; default: a "
                            "local cluster")
    where.add_argument("--workers", type=int, metavar="N",
                       help="the local cluster's worker processes (default: one per core)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    e.set_defaults(func=cmd_explore)


def _verify_parser(sub) -> None:
    v = sub.add_parser("verify", help="run every backend on data and compare with the golden model")
    v.add_argument("outdir", help="a folder written by 'nnforge compile'")
    v.add_argument("--data", required=True, help="a .npz file with 'x' and optional integer labels 'y'")
    v.add_argument("--backends", help=f"comma-separated, from {','.join(BACKENDS)} "
                   "(default: golden and every target written to OUTDIR)")
    v.add_argument("--limit", type=int, help="use only the first N samples")
    spread = v.add_mutually_exclusive_group()
    spread.add_argument("--jobs", type=int, metavar="N",
                        help="processes to spread each built backend's samples over (default: one per core); "
                             "the program is built once")
    spread.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask scheduler (tcp://host:port): the slow backends' samples (the Verilog "
                             "simulation) run in shards on its workers, each building the sources itself "
                             "(needs nnforge[explore] and the backend's tools on the workers)")
    v.add_argument("--trace", action="store_true",
                   help="also compare every layer of every backend with golden, on the first sample that "
                        "differs (or the first sample), and name the first layer that differs")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    v.set_defaults(func=cmd_verify)


def _finetune_parser(sub) -> None:
    f = sub.add_parser("finetune", help="train a compiled design through its own integer arithmetic (PyTorch)")
    f.add_argument("outdir", help="a folder written by 'nnforge compile' (or 'nnforge finetune')")
    f.add_argument("--data", required=True, help="training data: a .npz file with 'x' and integer labels 'y' "
                   "(or float targets shaped like the output); without 'y', --distill is needed")
    f.add_argument("--validation", help="a .npz file with 'x' and 'y': the epoch that scores best on it is kept")
    f.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    f.add_argument("--lr", type=float, default=0.0015,
                   help="Adam's learning rate as a share of each weight grid's range per update, decayed to 0 "
                        "(default 0.0015)")
    f.add_argument("--batch", type=int, default=64, help="samples per update (default 64)")
    f.add_argument("--distill", type=float, nargs="?", const=4.0, metavar="T",
                   help="distill from the float model at temperature T (default 4): with labels, half of the "
                        "loss; without, all of it")
    f.add_argument("--seed", type=int, default=0, help="the mini-batch order's seed (default 0)")
    f.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="prune every trained layer's smallest weights to this share gradually while training "
                        "(a cubic schedule over the first 60%% of the epochs; the zeros stay)")
    f.add_argument("--prune-global", action="store_true",
                   help="with --prune: reach the sparsity over the whole network instead of in every layer (the "
                        "smallest weights relative to their layer's largest go first; no layer loses more "
                        "than 95%%)")
    f.add_argument("--keep-formats", action="store_true",
                   help="keep every activation and weight format (by default they are searched on the "
                        "training loss first, where the compiler made the scales)")
    f.add_argument("-o", "--output", required=True, help="the new output folder (the same rules as compile's)")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    f.set_defaults(func=cmd_finetune)


def _report_parser(sub) -> None:
    r = sub.add_parser("report", help="per-layer formats and SQNR against the float model")
    r.add_argument("outdir", help="a folder written by 'nnforge compile'")
    r.add_argument("--data", help="compute on this .npz instead of the calibration data's report (and profile)")
    r.add_argument("--limit", type=int, help="use only the first N samples (default 256)")
    how = r.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print one JSON object")
    how.add_argument("--html", action="store_true",
                     help="write OUTDIR/report.html (charts of the precision, value ranges, Verilog engines and "
                          "energy) and print its path")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    r.set_defaults(func=cmd_report)


def _synth_parser(sub) -> None:
    s = sub.add_parser("synth", help="synthesize, place and route to an FPGA bitstream (open-source tools)")
    s.add_argument("outdir", help="a folder written by 'nnforge compile' with the verilog target")
    s.add_argument("--fpga", default="auto", metavar="PART",
                   help="ecp5-25k, ecp5-45k, ecp5-85k, ice40-up5k, auto (default: the smallest ECP5 the design "
                        "fits); xc7z020, xc7a35t, xc7a100t, xczu3eg, xczu7ev (or their Vivado part names: Yosys "
                        "synth_xilinx reports the utilization, and a Vivado script is written); or any other "
                        "AMD part's Vivado name, such as xcku040-ffva1156-2-e (a Vivado script only)")
    s.add_argument("--clock-mhz", type=float, default=100.0, help="the clock to meet, in MHz (default 100)")
    s.add_argument("--seed", type=int, default=1, help="placement seed (default 1)")
    s.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="place and route with seeds SEED .. SEED+N-1 and keep the lowest that meets the clock, "
                        "else the fastest (default 1)")
    s.add_argument("--jobs", type=int, metavar="J",
                   help="placements running at once with --seeds (default: the cores this process may use; "
                        "each nextpnr run of a large part holds a few GB)")
    s.add_argument("--speed", type=int, choices=(6, 7, 8), help="ECP5 speed grade (default 6)")
    s.add_argument("--router", choices=ROUTERS, default=DEFAULT_ROUTER,
                   help="nextpnr's router: router1 (default, the better Fmax) or router2 (routes congested "
                        "designs, such as one filling the part's block RAMs, much faster; lower Fmax)")
    s.add_argument("--axis", action="store_true", help="synthesize the AXI4-Stream wrapper as the top")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    s.set_defaults(func=cmd_synth)


def _demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="compile the bundled digits MLP to every target and verify it")
    d.add_argument("-o", "--output", default="nnforge_demo", help="output folder (default ./nnforge_demo)")
    d.add_argument("--json", action="store_true", help="print the verification as JSON")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    d.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        print("nnforge: error: --limit must be at least 1", file=sys.stderr)
        return 2
    progress = Progress(quiet=args.quiet)
    with _stop_signals():
        try:
            return args.func(args, progress)
        except KeyboardInterrupt:
            return _stopped(signal.SIGINT)
        except Stopped as e:
            return _stopped(e.signum)
        except Exception as e:  # every error the user can cause is one line, without a traceback
            line = _error_line(e, args.command)
            if line is None:
                raise  # a bug: the traceback is what its report needs
            print(f"nnforge: error: {line}", file=sys.stderr)
            return 2


class Stopped(BaseException):
    """SIGTERM or SIGHUP, raised where the program is so that every cleanup runs as it
    does for Ctrl-C (KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stop_signals():
    """SIGINT, SIGTERM and SIGHUP raise (KeyboardInterrupt, :class:`Stopped`) while the
    command runs, once (a second signal does not interrupt the cleanup), never between
    the renames of a folder swap; signals that were ignored (nohup) stay ignored and the
    previous handlers come back afterwards."""
    fired = []

    def stop(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Stopped(signum)

    handler = defer_during_swap(stop)
    previous = {}
    try:
        for s in _STOP_SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:
                previous[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: signals are left as they are
        pass
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stopped(signum: int) -> int:
    what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    print(f"nnforge: {what}", file=sys.stderr)
    return 128 + signum


_MEMORY_HINTS = {
    "compile": "use a smaller model or fewer calibration / validation samples, or allow the process more memory",
    "verify": "give --limit N to run fewer samples, or allow the process more memory",
    "report": "give --limit N to use fewer samples, or allow the process more memory",
}


def _error_line(e: Exception, command: str) -> str | None:
    """The one line (printable, without a traceback) for an error the user can cause, or
    None for a bug."""
    if isinstance(e, MemoryError):
        hint = _MEMORY_HINTS.get(command, "allow the process more memory")
        msg = f"out of memory in 'nnforge {command}': {hint}"
    elif isinstance(e, RecursionError):
        msg = f"the input is nested too deeply for 'nnforge {command}' (Python's recursion limit)"
    elif isinstance(e, OSError) and e.strerror and e.filename is not None:
        msg = f"{printable(e.filename)}: {e.strerror}"
    elif _is_user_error(e):
        msg = str(e) or type(e).__name__
    else:
        return None
    first, _, rest = msg.strip().partition("\n")
    if rest.strip() and _is_tool_error(e):  # a tool's log tail: kept in a file the line names
        details = _details_file(msg)
        if details is not None:
            first = f"{first.rstrip(' :;')} (details: {details})"
    safe = printable(first)
    return first if safe == first.replace("\\", "\\\\") else safe  # a message's own escapes kept as they are


def _is_user_error(e: Exception) -> bool:
    from .codegen.lower import BackendError
    from .cluster import DaskUnavailable
    from .frontend import ModelImportError
    from .passes import QuantizeError
    from .train import ExactnessError, TrainUnavailable

    return isinstance(e, (BackendError, ModelImportError, QuantizeError, DataError, OSError, MemoryError,
                          RecursionError, ValueError, TrainUnavailable, ExactnessError, DaskUnavailable)) \
        or _is_tool_error(e)


def _is_tool_error(e: Exception) -> bool:
    from .sim.tools import ToolError

    return isinstance(e, ToolError)


def _details_file(text: str) -> str | None:
    """Save the whole message of an error (a tool's output, the end of its log: the folder
    it ran in is gone) to a new private file; its path, or None when it cannot be written."""
    try:
        fd, path = tempfile.mkstemp(prefix="nnforge-error-", suffix=".log")
        with os.fdopen(fd, "w", errors="replace") as f:
            f.write(text.rstrip() + "\n")
    except OSError:
        return None
    return path


if __name__ == "__main__":
    sys.exit(main())
