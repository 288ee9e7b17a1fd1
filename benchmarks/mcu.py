"""Cortex-M speed and size of the C target's MCU kernels, on an emulated core.

    python3 benchmarks/mcu.py [--models digits_mlp,resnet8,...] [--mcus cortex-m4,cortex-m0plus,generic]
                              [--layers] [--markdown docs/mcu.md]

For each model (the bundled examples and the MLPerf Tiny shapes of ``mlperf_tiny.py``)
and each core: compile it for that core (``nnforge.compile(..., mcu=NAME)``), write the C,
build it with arm-none-eabi-gcc -O2 and run one inference in the emulator
(:mod:`nnforge.sim.cortexm`), check every output integer against the golden model, and
print MACs, executed instructions, MACs per instruction, flash (constant data and code,
measured from the ELF), the arena and the stack's high-water mark. ``generic`` is the
portable C (no ``--mcu``) built for a Cortex-M4, ``generic@cortex-m0plus`` the same C on a
Cortex-M0+: the baselines (``x generic`` is the speed-up over the one of the same core).
``--layers`` adds the instructions of every step. ``--markdown FILE`` rewrites the table between the two marker
comments of FILE (docs/mcu.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import nnforge
from nnforge.codegen import c as c_writer
from nnforge.codegen.mcu import mcu as mcu_named

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
BASELINE_CORE = "cortex-m4"  # the core the generic C is built for
BEGIN, END = "<!-- mcu-table:begin -->", "<!-- mcu-table:end -->"
MODELS = ("digits_mlp", "digits_cnn", "digits_resnet", "fc_autoencoder", "ds_cnn", "resnet8")


def _load(name: str):
    """A module of this folder (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"nnforge_benchmarks_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def harness():
    """:mod:`nnforge.sim.cortexm`, or None if it is not there."""
    try:
        from nnforge.sim import cortexm
    except ImportError:
        return None
    return cortexm


def unavailable() -> str | None:
    """Why the benchmark cannot run here (None: it can)."""
    h = harness()
    if h is None:
        return "nnforge.sim.cortexm is missing"
    return h.available()


def load_model(name: str, n_test: int = 1):
    """``(model, calibration, test inputs)`` of a bundled example or an MLPerf Tiny shape."""
    if (EXAMPLES / name / "model.onnx").exists():
        d = EXAMPLES / name
        return d / "model.onnx", np.load(d / "calibration.npz")["x"], np.load(d / "test.npz")["x"][:n_test]
    tiny = _load("mlperf_tiny")
    if name not in tiny.MODELS:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    model, cal, test = tiny.MODELS[name]()
    return model, cal, test[:n_test]


def parse_target(spec: str) -> tuple[str, str]:
    """``(kernels, core)`` of a ``--mcus`` entry: ``cortex-m4`` is that core's kernels on
    it; ``generic`` the portable C on a Cortex-M4; ``generic@CORE`` the portable C on CORE."""
    kernels, _, core = spec.partition("@")
    mcu_named(kernels)  # a ValueError naming the choices
    if kernels != "generic" and core and core != kernels:
        raise ValueError(f"{spec!r}: only the generic C runs on another core than its own")
    core = core or (BASELINE_CORE if kernels == "generic" else kernels)
    if not mcu_named(core).unicorn:
        raise ValueError(f"{spec!r}: the emulator has no model of {core}")
    return kernels, core


def compile_for(model, cal, mcu: str, **options):
    """``(design, program)``: the model compiled for ``mcu`` and the C program it renders."""
    design = nnforge.compile(model, calibration=cal, mcu=mcu, **options)
    return design, design.lowered("c")


def c_section(src: Path, prog) -> dict:
    """The C writer's figures: its ``c_info.json`` where it writes one, else computed here
    (constant data from the ELF's .rodata then, see :func:`memory`)."""
    info = src / "c_info.json"
    if info.is_file():
        return json.loads(info.read_text())
    return {"arena": {"total_bytes": arena_bytes(prog)}, "flash": {}}


def arena_bytes(prog) -> int:
    """RAM of the activations (and kernel scratch): the MCU arena, or the generic static buffers."""
    if prog.arena is not None:
        return int(prog.arena.total)
    size = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
            "int64_t": 8, "uint64_t": 8}
    return sum(b.size * size[b.ctype] for b in prog.buffers)


def memory(src: Path, prog, build) -> dict:
    """Bytes of ``code`` (.text, measured), ``weights`` (the const arrays, from the C
    section), ``flash`` (.text + .rodata, measured: weights, parameter structs, tables)
    and ``arena``."""
    info = c_section(src, prog)
    weights = info["flash"].get("weights_bytes", build.rodata_bytes)
    return {"code": int(build.code_bytes), "weights": int(weights),
            "flash": int(build.code_bytes + build.rodata_bytes), "arena": int(info["arena"]["total_bytes"])}


@dataclass
class Row:
    model: str
    mcu: str
    macs: int
    instructions: int
    code: int
    weights: int
    flash: int
    arena: int
    stack: int
    layers: list = field(default_factory=list)  # (step name, op, kind, instructions, macs)

    @property
    def macs_per_instruction(self) -> float:
        return self.macs / self.instructions if self.instructions else 0.0


def measure_one(name: str, spec: str, model, cal, test, workdir: Path, options: dict | None = None) -> Row:
    """Model ``name`` compiled, built and run for one ``--mcus`` entry; raises if any
    output differs from the golden model's."""
    h = harness()
    kernels, core = parse_target(spec)
    design, prog = compile_for(model, cal, kernels, **(options or {}))
    src = workdir / f"{name}-{spec}" / "c"
    c_writer.write(prog, src)
    build = h.build(src, workdir / f"{name}-{spec}" / "build", mcu_named(core))
    x_int = design.quantize_input(test)
    run = h.run(build, x_int)
    golden = np.asarray(design.predict_int(x_int), dtype=np.int64).reshape(len(x_int), -1)
    got = np.asarray(run.outputs, dtype=np.int64).reshape(len(x_int), -1)
    bad = int(np.count_nonzero(got != golden))
    if bad:
        raise AssertionError(f"{name} on {spec}: {bad} of {golden.size} outputs differ from the golden model")
    layers = [(s.name, s.op, s.kind, int(n), int(s.macs)) for s, n in zip(prog.steps, run.step_instructions or ())]
    mem = memory(src, prog, build)
    return Row(name, spec, int(prog.macs), int(run.instructions[0]), mem["code"], mem["weights"], mem["flash"],
               mem["arena"], int(run.stack_bytes), layers)


def measure(name: str, mcus, workdir: Path, options: dict | None = None, log=None, errors=None) -> list[Row]:
    """One :class:`Row` per entry of ``mcus`` for model ``name``. A failure (outputs unlike
    golden, a build error ...) raises, or with a list ``errors`` is appended to it and the
    next entry runs."""
    model, cal, test = load_model(name)
    rows = []
    for m in mcus:
        t0 = time.time()
        try:
            rows.append(measure_one(name, m, model, cal, test, workdir, options))
        except Exception as e:
            if errors is None:
                raise
            errors.append(f"{name} on {m}: {type(e).__name__}: {e}")
            if log:
                log(f"{name} {m}: FAILED: {errors[-1]}")
            continue
        if log:
            log(f"{name} {m}: {rows[-1].instructions:,} instructions, outputs equal golden ({time.time() - t0:.1f} s)")
    return rows


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table; ``x generic``: the speed-up over the generic C of the
    same model on the same core (``-`` when that was not measured)."""
    base = {(r.model, parse_target(r.mcu)[1]): r.instructions for r in rows if r.mcu.startswith("generic")}
    head = ("| model | mcu | MACs | instructions | MACs/instr | x generic | code B | weights B | flash B "
            "| arena B | stack B |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    lines = [head]
    for r in rows:
        b = base.get((r.model, parse_target(r.mcu)[1]))
        speed = f"{b / r.instructions:.2f}" if b and r.instructions else "-"
        lines.append(f"| {r.model} | {r.mcu} | {r.macs:,} | {r.instructions:,} | {r.macs_per_instruction:.3f} | "
                     f"{speed} | {r.code:,} | {r.weights:,} | {r.flash:,} | {r.arena:,} | {r.stack:,} |")
    return "\n".join(lines)


def layer_table(r: Row) -> str:
    lines = [f"{r.model} on {r.mcu}:", f"  {'step':<28} {'op':<18} {'kind':<12} {'instructions':>12} "
             f"{'MACs':>10} {'MACs/instr':>10}"]
    for name, op, kind, n, macs in r.layers:
        ratio = f"{macs / n:.3f}" if n and macs else "-"
        lines.append(f"  {name:<28} {op:<18} {kind:<12} {n:>12,} {macs:>10,} {ratio:>10}")
    if not r.layers:
        lines.append("  (no per-step counts for this build)")
    return "\n".join(lines)


def rewrite_markdown(path: Path, text: str) -> None:
    """Replace what lies between the marker comments of ``path`` with ``text``."""
    doc = path.read_text()
    if BEGIN not in doc or END not in doc or doc.index(BEGIN) > doc.index(END):
        raise SystemExit(f"{path}: the markers {BEGIN} and {END} are missing")
    head, rest = doc.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + text.rstrip() + "\n" + END + rest.split(END, 1)[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    ap.add_argument("--mcus", default="cortex-m4,cortex-m0plus,generic",
                    help="comma-separated names of nnforge.codegen.mcu.MCUS; generic@CORE: the generic C on CORE")
    ap.add_argument("--layers", action="store_true", help="instructions per step")
    ap.add_argument("--scale", default="pow2", choices=("pow2", "real"), help="compile option scale")
    ap.add_argument("--markdown", type=Path, help="rewrite the table of this file between its markers")
    args = ap.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    mcus = [m for m in args.mcus.split(",") if m]
    try:
        for m in mcus:
            parse_target(m)
    except ValueError as e:
        ap.error(str(e))
    mcus = sorted(mcus, key=lambda m: (parse_target(m)[1] != BASELINE_CORE, parse_target(m)[1],
                                       not m.startswith("generic")))
    rows, errors = [], []
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        for name in (m for m in args.models.split(",") if m):
            log(f"{name} ...")
            rows += measure(name, mcus, Path(tmp), {"scale": args.scale}, log, errors)
    text = table(rows)
    print(text)
    if args.layers:
        for r in rows:
            print("\n" + layer_table(r))
    for e in errors:
        print(f"FAILED: {e}", file=sys.stderr)
    if args.markdown and not errors:
        rewrite_markdown(args.markdown, text)
    elif args.markdown:
        print(f"{args.markdown} left as it was: {len(errors)} failure(s)", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
