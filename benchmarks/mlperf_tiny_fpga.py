"""FPGA designs of the MLPerf Tiny shapes on ECP5: size, speed and (with ``--synth``) a real bitstream.

    python3 benchmarks/mlperf_tiny_fpga.py [--models resnet8,ds_cnn,...] [--parts ecp5-25k,ecp5-45k,ecp5-85k]
                                           [--foldings balanced,fit] [--synth [--seed S] [--seeds N]] [--sim N]
                                           [--clock 125]
                                           [--cache FILE] [--markdown docs/mlperf_tiny.md] [--json]

For each model of ``mlperf_tiny.py`` (``MODELS``, whatever it holds): compile it with 8-bit
power-of-two scales on its calibration batch and write its Verilog for each folding:
``balanced`` (one design, whatever the part) and ``fit`` on each part of ``--parts`` (the
budget of ``nnforge compile --fit PART``: the part's multipliers and block RAMs, 80% of its
LUT4s and flip-flops). A design the budget cannot hold is reported as "does not fit: <reason>".
Per design: cycles per inference (the period), latency cycles, multipliers, the LUT4 /
flip-flop / block RAM estimate and the efficiency (``verilog_info.json``), with the limits
they are compared with (see :func:`limits`).

``--synth``: every design that fits a part (a balanced one: the smallest part of ``--parts``
that holds its estimate) goes through Yosys, nextpnr-ecp5 and ecppack
(:func:`nnforge.sim.fpga.synth`, ``--clock`` MHz target; nextpnr's router as ``ROUTER`` says;
seeds ``--seed`` .. ``--seed + --seeds - 1``, the lowest that meets the clock kept, else the
fastest; ``SEED`` and ``SEEDS`` give a model's defaults): Fmax, the resources Yosys counted
beside the estimate (and the LUT4s nextpnr placed), the critical path and the time to bitstream. ``--sim N``: the balanced design
of each model runs N test samples in the C++ Verilator harness (simulated cycles per second;
every output integer compared with golden).

Synthesis and simulation results are cached in a JSON file (``--cache``, default
``nnforge_mlperf_tiny_fpga.json`` in the system temp folder), keyed by model, folding, part,
clock, router, seeds and a hash of the Verilog, so that a rerun, or one after an interruption, does only
what is missing; cached results are shown even without ``--synth`` / ``--sim``. Progress
lines go to stderr. ``--markdown FILE`` rewrites the tables between the marker comments of
FILE (docs/mlperf_tiny.md).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import nnforge
from nnforge.codegen.lower import BackendError
from nnforge.sim.fpga import DEFAULT_ROUTER, fit_budget, resolve_part, smallest_part
from nnforge.sim.progress import Progress

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- mlperf-fpga:begin -->", "<!-- mlperf-fpga:end -->"
PARTS = ("ecp5-25k", "ecp5-45k", "ecp5-85k")
FOLDINGS = ("balanced", "fit")
FIT_SLACK = 1.15        # the --fit goal: a period within 15% of ceil(MACs / part multipliers)
ESTIMATE_TOLERANCE = 10.0  # % the resource estimate should be within of Yosys's count
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "nnforge_mlperf_tiny_fpga.json"
RESOURCES = (("LUT", "luts"), ("FF", "ffs"), ("DSP", "dsp"), ("BRAM", "bram"))  # synth key, estimate key
# nextpnr's router per model (default router1, the better Fmax), for all its designs:
# MobileNetV1 --fit fills the 85k's block RAMs (201 of 208), and router1 had not converged
# after an hour of routing (router2 routes it in minutes)
ROUTER = {"mobilenet_v1": "router2"}


# the first placement seed per model when --seed is not given (default 1), and how many seeds
# when --seeds is not (default 1). The Fmax of one netlist moves by up to a fifth from seed to
# seed (docs/mlperf_tiny.md): ResNet-8 --fit ecp5-85k placed at 101-124 MHz with seeds 1-8 and
# 127.5 with seed 9; the autoencoder --fit ecp5-85k at 119.8 with seed 2 and 132.3 with seed 3
# (router1; with seed 1 router1 had not converged after half an hour, router2 gave 98.0)
SEED = {"resnet8": 9, "fc_autoencoder": 3}
SEEDS: dict[str, int] = {}


def router(model: str) -> str:
    return ROUTER.get(model, DEFAULT_ROUTER)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_models():
    """``mlperf_tiny.py`` (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("nnforge_benchmarks_mlperf_tiny", HERE / "mlperf_tiny.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- cache

class Cache:
    """Results by key in one JSON file, written (atomically) after every new result.
    A write merges with what the file holds then (under a lock), so that runs of this
    script at the same time (one synthesizing, one simulating) keep each other's results."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.data = self._read()

    def _read(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str):
        return self.data.get(key)

    def put(self, key: str, value) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.data = {**self.data, **self._read(), key: value}
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, self.path)


def verilog_hash(vdir: Path) -> str:
    """SHA-256 (first 16 hex digits) of the Verilog sources of ``vdir``, names included."""
    h = hashlib.sha256()
    for f in sorted(vdir.glob("*.v")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def synth_key(model: str, folding: str, part: str, clock: float, vhash: str, seeds: int = 1, seed: int = 1) -> str:
    how = router(model)
    return (f"synth|{model}|{folding}|{part}|{clock:g}|{vhash}" + (f"|{how}" if how != DEFAULT_ROUTER else "")
            + (f"|seeds{seeds}" if seeds > 1 else "") + (f"|seed{seed}" if seed != 1 else ""))


def sim_key(model: str, n: int, vhash: str) -> str:
    return f"sim|{model}|balanced|{n}|{vhash}"


# ----------------------------------------------------------------------------- rows

@dataclass
class Model:
    name: str
    input_shape: tuple
    macs: int
    params: int
    weight_bits: int
    act_bits: int


@dataclass
class Row:
    model: str
    folding: str          # balanced | fit
    part: str             # the --fit part; balanced: the smallest part holding the estimate, or ""
    macs: int
    error: str = ""       # "does not fit: ..." when the design could not be written
    totals: dict = field(default_factory=dict)   # verilog_info.json totals
    vhash: str = ""
    synth: dict | None = None   # the synth report (cached), or {"error": ...}
    sim: dict | None = None     # balanced only: the Verilator run

    @property
    def label(self) -> str:
        return "balanced" if self.folding == "balanced" else f"--fit {self.part}"


def limits(row: Row) -> dict:
    """What a row's figures are compared with: ``fit_cycles`` = 1.15 x ceil(MACs / the
    part's multipliers) for a ``--fit`` design (its period should not exceed it)."""
    if row.folding != "fit" or not row.part:
        return {}
    mults = resolve_part(row.part).resources["DSP"]
    return {"fit_cycles": math.floor(FIT_SLACK * math.ceil(row.macs / mults)), "part_multipliers": mults}


def misses_fit(row: Row) -> bool | None:
    lim = limits(row)
    if not lim or row.error:
        return None
    return row.totals["ii_cycles"] > lim["fit_cycles"]


def describe_model(name: str, model, design) -> Model:
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    macs = sum(int(r.get("macs", 0)) for r in design.layers())
    return Model(name, tuple(design.input_shape), macs, params, design.config.weight_bits, design.config.act_bits)


def write_design(design, out: Path, folding: str, part: str | None) -> dict:
    """The design's Verilog in ``out/verilog``; its ``verilog_info.json``."""
    kw = fit_budget(resolve_part(part)) if folding == "fit" else {"parallelism": folding}
    design.write(out, targets=["verilog"], **kw)
    return json.loads((out / "verilog" / "verilog_info.json").read_text())


def balanced_part(totals: dict, parts) -> str:
    """The smallest of ``parts`` whose resources hold the design's estimate ("" if none)."""
    est = totals["estimate"]
    need = {"LUT": est["luts"], "FF": est["ffs"], "DSP": est["dsp"], "BRAM": est["bram"]}
    p = smallest_part(need, sorted(parts, key=lambda n: resolve_part(n).resources["LUT"]))
    return p.name if p else ""


def design_rows(name: str, design, parts, foldings, work: Path) -> tuple[list[Row], dict]:
    """One row per folding (``fit``: per part) of one compiled model; ``{label: verilog dir}``."""
    rows, dirs = [], {}
    macs = sum(int(r.get("macs", 0)) for r in design.layers())
    configs = [(f, p) for f in foldings for p in ((None,) if f == "balanced" else parts)]
    for folding, part in configs:
        row = Row(name, folding, part or "", macs)
        out = work / f"{name}_{folding}_{part or 'any'}"
        t0 = time.time()
        try:
            info = write_design(design, out, folding, part)
        except BackendError as e:
            row.error = f"does not fit: {e}"
            log(f"{name} {row.label}: {row.error}")
            rows.append(row)
            continue
        row.totals = info["totals"]
        row.vhash = verilog_hash(out / "verilog")
        if folding == "balanced":
            row.part = balanced_part(row.totals, parts)
        dirs[row.label] = out / "verilog"
        t = row.totals
        log(f"{name} {row.label}: period {t['ii_cycles']:,} cycles, {t['multipliers']} multipliers, "
            f"efficiency {t['efficiency']}, {t['estimate']['luts']:,} LUT4 est. ({time.time() - t0:.1f} s)")
        rows.append(row)
    return rows, dirs


# ----------------------------------------------------------------------------- synthesis, simulation

class Recorder(Progress):
    """Progress lines on stderr, kept: what Yosys counted, when nextpnr then refuses the part."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def __call__(self, msg: str) -> None:
        self.lines.append(msg)
        super().__call__(msg)


def run_synth(row: Row, vdir: Path, clock: float, cache: Cache, work: Path, seeds: int = 1, seed: int = 1) -> None:
    """Yosys + nextpnr + ecppack on ``row.part`` (cached), placed with seeds ``seed`` .. ``seed + seeds - 1``
    (the lowest that meets ``clock``, else the fastest); a failure is cached as ``error``
    when it says something about the design (it does not fit), raised otherwise."""
    from nnforge.sim.fpga import FitError, synth

    key = synth_key(row.model, row.folding, row.part, clock, row.vhash, seeds, seed)
    log(f"{row.model} {row.label}: synthesis, place and route on {row.part} at {clock:g} MHz ...")
    progress = Recorder()
    try:
        rep = synth(vdir, row.part, work / f"synth_{row.model}_{row.folding}_{row.part}", clock_mhz=clock,
                    progress=progress, router=router(row.model), seeds=seeds, seed=seed)
    except FitError as e:
        counted = [m.split(": ", 1)[-1] for m in progress.lines if m.startswith("synth: yosys done")]
        rep = {"error": f"does not fit: {e}" + (f" (Yosys: {counted[-1]})" if counted else "")}
    else:
        rep = {k: rep[k] for k in ("part", "clock_mhz", "router", "seed", "seeds", "fmax_mhz", "timing_met",
                                   "critical_path",
                                   "utilization", "synthesized", "seconds", "tools", "bitstream") if k in rep}
        rep["load"] = round(os.getloadavg()[0], 1)  # the machine's load when it finished
    cache.put(key, rep)
    row.synth = rep
    log(f"{row.model} {row.label}: {synth_line(rep)}")


def synth_line(rep: dict) -> str:
    if "error" in rep:
        return rep["error"]
    return (f"Fmax {fmax(rep):.2f} MHz ({'met' if rep['timing_met'] else 'missed'}), "
            f"bitstream in {rep['seconds']['total']:.0f} s")


def fmax(rep: dict) -> float:
    return min(rep["fmax_mhz"].values()) if rep.get("fmax_mhz") else 0.0


def run_sim(row: Row, design, vdir: Path, test: np.ndarray, cache: Cache, work: Path) -> None:
    """The balanced design on the test samples in the C++ Verilator harness (cached)."""
    from nnforge.sim import verilog as sim_verilog

    n = len(test)
    log(f"{row.model} balanced: Verilator, {n} samples ...")
    x_int = design.quantize_input(test)
    gold = np.asarray(design.predict_int(x_int)).reshape(n, -1)
    t0 = time.time()
    run = sim_verilog.run(design.lowered("verilog"), vdir, work / f"sim_{row.model}", x_int.reshape(n, -1),
                          Progress(), gold, engine="cpp")
    e = run.extra
    diff = int(np.count_nonzero(np.asarray(run.y).reshape(n, -1) != gold))
    row.sim = {"samples": n, "cycles": int(e["cycles"]), "cycles_per_second": float(e["cycles_per_second"]),
               "loop_seconds": float(e["sim_loop_seconds"]), "build_seconds": float(e["build_seconds"]),
               "wall_seconds": round(time.time() - t0, 1), "cycles_per_inference": run.cycles_per_inference,
               "latency_cycles": run.latency_cycles, "outputs": int(gold.size), "mismatches": diff,
               "load": round(os.getloadavg()[0], 1)}
    cache.put(sim_key(row.model, n, row.vhash), row.sim)
    log(f"{row.model} balanced: {row.sim['cycles_per_second']:,.0f} cycles/s, {diff} of {gold.size} "
        "outputs differ from golden")


# ----------------------------------------------------------------------------- one model

def measure_model(name: str, build, args, cache: Cache, work: Path) -> tuple[Model, list[Row]]:
    """Compile ``name``, write its designs, attach cached results and run what is asked."""
    n_test = max(args.sim, 1)
    model, cal, test = build(n_test=n_test)
    t0 = time.time()
    design = nnforge.compile(model, calibration=cal, bits=8)
    info = describe_model(name, model, design)
    log(f"{name}: compiled in {time.time() - t0:.1f} s ({info.macs:,} MACs, {info.params:,} parameters)")
    rows, dirs = design_rows(name, design, args.parts, args.foldings, work)
    for row in rows:
        if row.error:
            continue
        if row.part:
            n_seeds = args.seeds or SEEDS.get(name, 1)
            first = args.seed or SEED.get(name, 1)
            row.synth = cache.get(synth_key(name, row.folding, row.part, args.clock, row.vhash, n_seeds, first))
            if row.synth is not None:
                log(f"{name} {row.label}: cached synthesis: {synth_line(row.synth)}")
            elif args.synth:
                run_synth(row, dirs[row.label], args.clock, cache, work, n_seeds, first)
        if row.folding == "balanced" and args.sim:
            row.sim = cache.get(sim_key(name, args.sim, row.vhash))
            if row.sim is None:
                run_sim(row, design, dirs[row.label], test[:args.sim], cache, work)
        shutil.rmtree(dirs[row.label].parent, ignore_errors=True)
    return info, rows


# ----------------------------------------------------------------------------- tables

def model_table(models: list[Model]) -> str:
    lines = ["| model | input | MACs | parameters | weight bits | activation bits |", "|---|---|--:|--:|--:|--:|"]
    for m in models:
        shape = "x".join(str(d) for d in m.input_shape)
        lines.append(f"| {m.name} | {shape} | {m.macs:,} | {m.params:,} | {m.weight_bits} | {m.act_bits} |")
    return "\n".join(lines)


def speed(row: Row, clock: float) -> tuple[str, str, str]:
    """(clock used, latency in us, inferences per second): at the achieved Fmax when
    synthesized, else at the target clock (marked ``target``)."""
    rep = row.synth if row.synth and "error" not in row.synth else None
    f = fmax(rep) if rep else clock
    t = row.totals
    which = f"{f:.1f}" if rep else f"{clock:g} (target)"
    return which, f"{t['latency_cycles'] / f:,.1f}", f"{f * 1e6 / t['ii_cycles']:,.0f}"


def mults(t: dict) -> str:
    """Multiplier blocks, and the products built from LUTs (a 4-bit operand) beside them."""
    lut = t.get("lut_multipliers", 0)
    return f"{t['multipliers']}" + (f" + {lut} LUT" if lut else "")


def design_table(rows: list[Row], clock: float) -> str:
    lines = ["| model | folding | part | cycles / inference | --fit goal | latency cycles | multipliers "
             "| LUT4 est. | FF est. | BRAM est. | efficiency | MHz | latency us | inferences / s |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        if r.error:
            lines.append(f"| {r.model} | {r.label} | {r.part} | {r.error} |" + " |" * 10)
            continue
        t, est, lim = r.totals, r.totals["estimate"], limits(r)
        goal = "-"
        if lim:
            goal = f"{lim['fit_cycles']:,}" + (" **missed**" if misses_fit(r) else " met")
        part = r.part if r.folding == "fit" else (f"fits {r.part}" if r.part else "fits none")
        mhz, lat, ips = speed(r, clock)
        lines.append(f"| {r.model} | {r.label} | {part} | {t['ii_cycles']:,} | {goal} | {t['latency_cycles']:,} | "
                     f"{mults(t)} | {est['luts']:,} | {est['ffs']:,} | {est['bram']} | "
                     f"{t['efficiency']:.3f} | {mhz} | {lat} | {ips} |")
    return "\n".join(lines)


YOSYS_COUNT = re.compile(r"(\d+) (LUT4s|flip-flops|DP16KD|MULT18X18D)")
YOSYS_NAMES = {"LUT4s": "LUT", "flip-flops": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP"}


def yosys_counts(error: str) -> dict:
    """What Yosys counted (LUT, FF, BRAM, DSP) for a design nextpnr was not run on, from
    the ``(Yosys: ...)`` part of a cached "does not fit" message ({} if it has none)."""
    _, _, counted = error.partition(" (Yosys: ")
    return {YOSYS_NAMES[what]: {"used": int(n)} for n, what in YOSYS_COUNT.findall(counted)}


def resource_cell(rep: dict, key: str, estimate: int) -> str:
    """Yosys's count of a resource (the synthesized netlist; the placed one for a result
    that has no Yosys counts), the estimate and its error against that count."""
    used = (rep.get("synthesized") or {}).get(key)
    if used is None:
        used = rep["utilization"].get(key, {}).get("used")
    if used is None:
        return "-"
    err = 100.0 * (estimate - used) / used if used else (0.0 if estimate == 0 else math.inf)
    mark = " **!**" if abs(err) > ESTIMATE_TOLERANCE else ""
    return f"{used:,} ({estimate:,}, {err:+.0f}%{mark})"


def placed_luts(rep: dict) -> str:
    used = rep.get("utilization", {}).get("LUT", {}).get("used")
    return "-" if used is None or "synthesized" not in rep else f"{used:,}"


def load(entry: dict) -> str:
    """`` (L)``: the one-minute load average when the result was taken, if known."""
    return f" ({entry['load']:g})" if entry.get("load") is not None else ""


def synth_table(rows: list[Row], clock: float) -> str:
    lines = ["| model | folding | part | Fmax MHz | LUT4 (est., err) | LUT4 placed | FF (est., err) | DSP (est., err) "
             "| BRAM (est., err) | time to bitstream (load) | critical path |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        rep = r.synth
        if rep is None:
            continue
        est = r.totals["estimate"]
        if "error" in rep:  # Yosys's counts beside the estimate, where the message has them
            counts = yosys_counts(rep["error"])
            cells = [resource_cell({"utilization": counts}, k, est[e]) for k, e in RESOURCES]
            cells.insert(1, "-")
            lines.append(f"| {r.model} | {r.label} | {r.part} | {rep['error'].split(' (Yosys: ')[0]} | "
                         f"{' | '.join(cells)} | - | - |")
            continue
        f = fmax(rep)
        fcell = f"{f:.1f}" + ("" if rep["timing_met"] else f" **< {rep['clock_mhz']:g}**")
        cells = [resource_cell(rep, k, est[e]) for k, e in RESOURCES]
        cells.insert(1, placed_luts(rep))
        cells = " | ".join(cells)
        path = (rep.get("critical_path") or {}).get("summary", "-").replace("|", "\\|")
        how = rep.get("router", router(r.model))
        notes = ([how] if how != DEFAULT_ROUTER else []) + (
            [f"seed {rep['seed']} of {len(rep['seeds'])}"] if rep.get("seeds") else
            [f"seed {rep['seed']}"] if rep.get("seed", 1) != 1 else [])
        part = r.part + (f" ({', '.join(notes)})" if notes else "")
        lines.append(f"| {r.model} | {r.label} | {part} | {fcell} | {cells} | "
                     f"{rep['seconds']['total'] / 60:.1f} min{load(rep)} | {path} |")
    return "\n".join(lines) if len(lines) > 2 else "(no design synthesized yet)"


def sim_table(rows: list[Row]) -> str:
    lines = ["| model | samples | simulated cycles | cycles / s (load) | cycles / inference | outputs equal golden |",
             "|---|--:|--:|--:|--:|---|"]
    for r in rows:
        s = r.sim
        if s is None:
            continue
        ok = "all" if s["mismatches"] == 0 else f"**{s['mismatches']} of {s['outputs']} differ**"
        lines.append(f"| {r.model} | {s['samples']} | {s['cycles']:,} | {s['cycles_per_second']:,.0f}{load(s)} | "
                     f"{s['cycles_per_inference']:,.0f} | {ok} ({s['outputs']:,} integers) |")
    return "\n".join(lines) if len(lines) > 2 else "(not simulated yet)"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def tools_line(rows: list[Row]) -> str:
    for r in rows:
        if r.synth and "tools" in r.synth:
            t = r.synth["tools"]
            pk = ", ".join(f"{k} {v}" for k, v in t.get("packages", {}).items())
            return f"{t['yosys']}; {t['nextpnr']}" + (f" ({pk})" if pk else "")
    return ""


def report(models: list[Model], rows: list[Row], clock: float, command: str) -> str:
    """The Markdown between the markers: what ran, where, and the tables."""
    parts = [f"Measured on {machine()}, {time.strftime('%Y-%m-%d')}, with `{command}`"
             + (f"; tools: {tools_line(rows)}." if tools_line(rows) else "."),
             "", "### Models", "", model_table(models),
             "", "### Designs", "", design_table(rows, clock),
             "", "### Synthesized (Yosys, nextpnr-ecp5, ecppack)", "",
             "What Yosys counted in the synthesized netlist, with the estimate and its error beside it, and the "
             "LUT4s nextpnr placed (packing adds cells to Yosys's count).", "", synth_table(rows, clock),
             "", "### Simulated (balanced designs, Verilator)", "", sim_table(rows)]
    missing = [f"{r.model} {r.label}" for r in rows
               if not r.error and r.part and r.synth is None and r.folding == "fit"]
    if missing:
        parts += ["", "Not synthesized in this table (figures at the target clock): " + ", ".join(missing) + "."]
    return "\n".join(parts)


def rewrite_markdown(path: Path, text: str) -> None:
    """Replace what lies between the marker comments of ``path`` with ``text``."""
    doc = path.read_text()
    if BEGIN not in doc or END not in doc or doc.index(BEGIN) > doc.index(END):
        raise SystemExit(f"{path}: the markers {BEGIN} and {END} are missing")
    head, rest = doc.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + text.rstrip() + "\n" + END + rest.split(END, 1)[1])


# ----------------------------------------------------------------------------- main

def parse_args(argv, available):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(available), help="comma-separated, of: " + ", ".join(available))
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated ECP5 parts for --fit")
    ap.add_argument("--foldings", default=",".join(FOLDINGS), help="comma-separated: balanced, fit")
    ap.add_argument("--synth", action="store_true", help="synthesize, place and route what the cache lacks")
    ap.add_argument("--sim", type=int, default=0, metavar="N", help="simulate the balanced designs on N samples")
    ap.add_argument("--clock", type=float, default=125.0, help="target clock in MHz (default 125)")
    ap.add_argument("--seed", type=int, metavar="S",
                    help="the first placement seed (default: SEED's for the model, else 1)")
    ap.add_argument("--seeds", type=int, metavar="N",
                    help="place with seeds S .. S+N-1 (one run per core at a time) and keep the lowest that meets "
                         "the clock, else the fastest (default: SEEDS's count for the model, else 1)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"results cache (default {DEFAULT_CACHE})")
    ap.add_argument("--markdown", type=Path, help="rewrite the tables of this file between its markers")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = ap.parse_args(argv)
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    args.models, args.foldings = split(args.models), split(args.foldings)
    args.parts = [resolve_part(p).name for p in split(args.parts)]
    for m in args.models:
        if m not in available:
            ap.error(f"unknown model {m!r}; choose from {', '.join(available)}")
    if args.seed is not None and args.seed < 1:
        ap.error("--seed must be at least 1")
    if args.seeds is not None and args.seeds < 1:
        ap.error("--seeds must be at least 1")
    for f in args.foldings:
        if f not in FOLDINGS:
            ap.error(f"unknown folding {f!r}; choose from {', '.join(FOLDINGS)}")
    return args


def main(argv=None) -> int:
    tiny = load_models()
    args = parse_args(argv, list(tiny.MODELS))
    cache = Cache(args.cache)
    log(f"cache: {cache.path}")
    models, rows = [], []
    with tempfile.TemporaryDirectory(prefix="nnforge_mlperf_fpga_") as tmp:
        for name in args.models:
            info, r = measure_model(name, tiny.MODELS[name], args, cache, Path(tmp))
            models.append(info)
            rows += r
    command = "python3 benchmarks/mlperf_tiny_fpga.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = report(models, rows, args.clock, command.strip())
    print(text)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=1, default=str))
    if args.markdown:
        rewrite_markdown(args.markdown, text)
    bad = [r for r in rows if r.sim and r.sim["mismatches"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
