"""The targets nnforge writes, as one table: :data:`TARGETS`.

Each entry implements :class:`Target`: what it is called (``name``, also the folder of the
output it writes), how it lowers a quantized graph (:meth:`Target.lower`, where the
numeric mode is decided from the graph: fixed point, or float16 / bfloat16), how it
writes its sources, how its sources are built and run on vectors and traced layer by
layer, and any second program it writes beside the main one (:meth:`Target.variants`:
C's run-time-scaled ``nnforge_run_dynamic``). :class:`nnforge.design.Design` loops over
this table; nothing else names a target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

import numpy as np

from .codegen import c as c_backend
from .codegen import hls as hls_backend
from .codegen.folding import ARCH_UNITS, ARCHS
from .codegen.c_float import FloatProgram, is_float_graph, lower_float_for
from .codegen.c_float import write_c as write_float_c
from .codegen.c_float import write_hls as write_float_hls
from .codegen.targets import lower_for
from .ir import Graph, run_int
from .ir.floats import is_float, random_patterns
from .ir.serialize import DesignFileError
from .ir.text import name as pname
from .passes import QuantConfig
from .sim import native
from .sim.parts import VIVADO_PART
from .sim.progress import Progress
from .sim.result import SimRun

HLS_TB_SAMPLES = 16  # vectors of the HLS C-simulation testbench
PARALLELISM = ("sequential", "balanced", "parallel")


@dataclass(frozen=True)
class WriteJob:
    """What a target's writer reads besides its lowered model."""

    graph: Graph  # the quantized graph
    config: QuantConfig
    parallelism: object  # the Verilog folding goal (:func:`folding_goal`)
    progress: Progress
    part: str | None = None  # the AMD part (Vivado name) the HLS script targets; None: its default
    clock_mhz: float = 100.0  # the clock the HLS script asks for


@dataclass(frozen=True)
class TraceStep:
    """A layer a trace reports: its name, op and the IR tensor it computes."""

    name: str
    op: str
    tensor: str


@dataclass(frozen=True)
class VariantRun:
    """A second program of a target, run on the float inputs: its outputs, and for each
    sample whether it differs from its own golden reference."""

    outputs: np.ndarray
    differs: np.ndarray  # bool, one per sample


class Target(Protocol):
    name: str  # as the API and the command line spell it; the folder its sources go to

    def lower(self, graph: Graph, config: QuantConfig):
        """What the target renders, or :class:`BackendError` naming what it cannot implement."""

    def write(self, model, folder: Path, job: WriteJob) -> dict | None:
        """Write the sources into ``folder``; a section for ``report.json`` or None."""

    def run(self, model, src: Path, build: Path, x_int: np.ndarray, progress: Progress) -> SimRun:
        """Build the sources in ``src`` and run them on the integer rows of ``x_int``."""

    def trace(self, model, graph: Graph, src: Path, build: Path, x_int: np.ndarray, progress: Progress,
              shown: Path) -> tuple[list[TraceStep], dict[int, np.ndarray]]:
        """Run one sample recording every layer: the layers, and their values by index
        (in the IR's order)."""

    def variants(self, graph: Graph, config: QuantConfig, x: np.ndarray, src: Path, work, progress: Progress
                 ) -> dict[str, VariantRun]:
        """Second programs written beside the main one, each run on the float samples ``x``
        (``work(name)`` is a fresh folder)."""

    def check_sources(self, src: Path, shown: Path) -> None:
        """Refuse sources copied from the folder ``shown`` that cannot be run, before any
        warning about them."""

    def report_lines(self, section: dict) -> list[str]:
        """``report.txt``'s lines for the section :meth:`write` returned."""


def lower_graph(graph: Graph, config: QuantConfig, target: str):
    """The numeric mode is the graph's: a float16 / bfloat16 graph lowers to a float
    program (with the NeuZip weight storage of ``config``), any other to fixed point."""
    if is_float_graph(graph):
        return lower_float_for(graph, target, config.neuzip)
    return lower_for(graph, target)


def tb_vectors(graph: Graph) -> np.ndarray:
    """Deterministic vectors spanning the input type, for the HLS C-sim testbench."""
    rng = np.random.default_rng(0)
    t = graph.qtype(graph.inputs[0])
    shape = graph.shape(graph.inputs[0])
    if is_float(t):
        x = random_patterns(rng, (HLS_TB_SAMPLES, *shape), t.format)
        x[0], x[1] = 0, t.format.sat
        return x
    x = rng.integers(t.lo, t.hi + 1, size=(HLS_TB_SAMPLES, *shape))
    x[0], x[1] = t.lo, t.hi
    return x


def ir_order(values: np.ndarray, shape, perm) -> np.ndarray:
    """Values stored as the tensor of ``shape`` transposed by ``perm`` (a layout), flat in
    the IR's row-major order; values of any other count are returned as they are (the
    comparison with golden then reports them all)."""
    shape = tuple(shape)
    if len(perm) != len(shape) or values.size != int(np.prod(shape)):
        return values
    return values.reshape([shape[p] for p in perm]).transpose(np.argsort(perm)).reshape(-1)


def stream_layers(path: Path, graph: Graph, shown: Path) -> list[tuple[str, str, str, tuple]] | None:
    """The layers of an HLS stream form's ``hls_info.json`` (``path``, a copy of ``shown``):
    (name, op, tensor, layout) each, checked (a tensor of the design, a layout that permutes
    its axes); None for the array form (or a folder without the file). A malformed file is
    one :class:`DesignFileError` line."""
    if not path.is_file():
        return None
    where = pname(shown)
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DesignFileError(f"{where}: not readable JSON ({str(e)[:80]})") from None
    if not isinstance(info, dict):
        raise DesignFileError(f"{where}: expected a JSON object")
    if info.get("form") != "stream":
        return None
    layers = info.get("layers")
    if not isinstance(layers, list) or not layers:
        raise DesignFileError(f"{where}: layers: expected a list of the stream form's layers")
    out = []
    for k, ly in enumerate(layers):
        ok = isinstance(ly, dict) and all(isinstance(ly.get(f), str) for f in ("name", "op", "tensor"))
        if not ok:
            raise DesignFileError(f"{where}: layers[{k}]: expected name, op and tensor (strings)")
        if ly["tensor"] not in graph.tensors or graph.qtype(ly["tensor"]) is None:
            raise DesignFileError(f"{where}: layer {pname(ly['name'])} names tensor {pname(ly['tensor'])}, which is "
                                  f"not an integer tensor of the design")
        layout = ly.get("layout")
        rank = len(graph.shape(ly["tensor"]))
        if (not isinstance(layout, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in layout)
                or sorted(layout) != list(range(rank))):
            raise DesignFileError(f"{where}: layer {pname(ly['name'])}: layout: expected a permutation of "
                                  f"0..{rank - 1}")
        out.append((pname(ly["name"]), pname(ly["op"]), ly["tensor"], tuple(layout)))
    return out


def memory_line(c: dict) -> str:
    """The C section of the report as one line: the arena (or the generic program's static
    buffers), the flash (const data, and code where estimated) and the stack estimate."""
    a, f = c["arena"], c["flash"]
    if "activations_bytes" in a:
        live = (" = live maximum" if a["activations_bytes"] == a["live_max_bytes"]
                else f", live maximum {a['live_max_bytes']:,}")
        ram = (f"arena {a['total_bytes']:,} B (activations {a['activations_bytes']:,}{live}, "
               f"scratch {a['scratch_bytes']:,})")
    else:
        live = f" (live maximum {a['live_max_bytes']:,})" if "live_max_bytes" in a else ""
        ram = f"static buffers {a['static_buffers_bytes']:,} B{live}"
    code = f.get("code_bytes_estimate")
    flash = (f"flash {f['weights_bytes'] + code:,} B (weights {f['weights_bytes']:,}, code ~{code:,})"
             if code is not None else f"flash {f['weights_bytes']:,} B of const data (code not estimated)")
    stack = f", stack ~{c['stack_bytes_estimate']:,} B" if "stack_bytes_estimate" in c else ""
    return f"C ({c['mcu']}): {ram}, {flash}{stack}"


class _Native:
    """C and HLS C++: a :class:`~nnforge.codegen.program.Program` (or a float program),
    compiled with gcc / g++ around the native harness (:mod:`nnforge.sim.native`)."""

    name = ""
    build: native.Native

    def lower(self, graph: Graph, config: QuantConfig):
        return lower_graph(graph, config, self.name)

    def run(self, model, src: Path, build: Path, x_int: np.ndarray, progress: Progress) -> SimRun:
        return native.run(self.build, self.name, model, src, build, x_int.reshape(len(x_int), -1), progress)

    def trace(self, model, graph: Graph, src: Path, build: Path, x_int: np.ndarray, progress: Progress,
              shown: Path) -> tuple[list[TraceStep], dict[int, np.ndarray]]:
        got = native.trace(self.build, src, build, x_int.reshape(1, -1), model.n_out, progress)
        return [TraceStep(s.name, s.op, s.tensor) for s in model.steps], got

    def variants(self, graph, config, x, src, work, progress) -> dict[str, VariantRun]:
        return {}

    def check_sources(self, src: Path, shown: Path) -> None:
        return None

    def report_lines(self, section: dict) -> list[str]:
        return []


class C(_Native):
    """C99: the portable program (``mcu`` generic), or the kernels of a microcontroller
    (:mod:`nnforge.codegen.mcu_program`), whose activations may be stored channels last
    (a step's ``layout``)."""

    name = "c"
    build = native.C

    def lower(self, graph: Graph, config: QuantConfig):
        if config.mcu == "generic" or is_float_graph(graph):
            return lower_graph(graph, config, self.name)
        from .codegen.mcu import mcu
        from .codegen.mcu_program import lower_mcu

        return lower_mcu(graph, mcu(config.mcu))

    def write(self, model, folder: Path, job: WriteJob) -> dict | None:
        if isinstance(model, FloatProgram):
            job.progress(f"writing C ({model.fmt}, {model.weight_format} weights)")
            write_float_c(model, folder)
            return None
        job.progress("writing C" + ("" if model.mcu == "generic" else f" ({model.mcu} kernels)"))
        info = c_backend.write(model, folder, softmax=bool(job.graph.meta.get("output_softmax")))
        if job.config.dynamic:
            from .codegen.c_dynamic import write_dynamic

            write_dynamic(job.graph, folder)
        return info

    def trace(self, model, graph: Graph, src: Path, build: Path, x_int: np.ndarray, progress: Progress,
              shown: Path) -> tuple[list[TraceStep], dict[int, np.ndarray]]:
        """Every step's buffer on one sample, put back from the step's layout into the IR's order."""
        steps, got = super().trace(model, graph, src, build, x_int, progress, shown)
        for i, s in enumerate(model.steps):
            perm = getattr(s, "layout", ())  # a float program's steps are in the IR's order
            if perm and s.tensor and i in got:
                got[i] = ir_order(got[i], graph.shape(s.tensor), perm)
        return steps, got

    def report_lines(self, c: dict) -> list[str]:
        """``report.txt``'s C line: the memory the program needs (:func:`memory_line`)."""
        return [memory_line(c)]

    def variants(self, graph, config, x, src, work, progress) -> dict[str, VariantRun]:
        """With dynamic quantization: the generated ``nnforge_run_dynamic`` against
        :func:`nnforge.ir.dynamic.run_dynamic`, every output integer and its run-time
        fractional bits."""
        if not config.dynamic:
            return {}
        from .sim.native import run_dynamic_c
        from .ir.dynamic import run_dynamic

        xf = np.asarray(x, dtype=np.float32)
        want, want_f = run_dynamic(graph, xf.astype(np.float64))
        n_out = int(np.prod(graph.shape(graph.outputs[0])))
        got, got_f = run_dynamic_c(src, work("c-dynamic"), xf.reshape(len(xf), -1), n_out)
        differs = np.any(got.reshape(len(x), -1) != want.reshape(len(x), -1), axis=1) | (got_f != want_f)
        return {"c-dynamic": VariantRun(got, differs)}


class HLS(_Native):
    name = "hls"
    build = native.HLS

    def write(self, model, folder: Path, job: WriteJob) -> dict | None:
        tb_x = tb_vectors(job.graph)
        tb_y = run_int(job.graph, np.asarray(tb_x))[0]
        if isinstance(model, FloatProgram):
            job.progress(f"writing HLS C++ ({model.fmt})")
            write_float_hls(model, folder, tb_x, tb_y, job.part or hls_backend.DEFAULT_PART,
                            round(1000.0 / job.clock_mhz, 3))
        else:
            job.progress("writing HLS C++")
            return hls_backend.write(model, folder, tb_x, tb_y, part=job.part or hls_backend.DEFAULT_PART,
                                     clock_ns=round(1000.0 / job.clock_mhz, 3), graph=job.graph, parallelism=job.parallelism)
        return None

    def report_lines(self, h: dict) -> list[str]:
        """``report.txt``'s HLS lines: the stream form's period, multipliers and estimate,
        per layer its lanes and cycles, beside the Verilog engine's."""
        if h.get("form") != "stream":
            return [f"HLS C++ (array form, one buffer per step: {h.get('why')}; part {h.get('part')}, "
                    f"{h.get('clock_ns')} ns)"]
        t, units = h["totals"], ARCH_UNITS.get(h["totals"]["arch"], {})
        est = t["estimate"]
        lines = [f"HLS C++ (stream form, the Verilog's folding; part {h['part']}, {h['clock_ns']:g} ns): period "
                 f"{t['period_cycles']} cycles (Verilog {t['verilog_period_cycles']}), {t['multipliers']} multipliers "
                 f"(PE x SIMD), estimate {est['dsp']} DSPs, {est['bram']:g} {units.get('bram', 'block RAMs')}, "
                 f"{est['luts']} {units.get('luts', 'LUTs')}, {est['ffs']} flip-flops"]
        for ly in h["layers"]:
            if "pe" in ly:
                lines.append(f"  {pname(ly['name']):<16} PE {ly['pe']:>4} SIMD {ly['simd']:>4} "
                             f"cycles {ly['cycles']:>7} (Verilog {ly['verilog_compute_cycles']})")
        return lines

    def trace(self, model, graph: Graph, src: Path, build: Path, x_int: np.ndarray, progress: Progress,
              shown: Path) -> tuple[list[TraceStep], dict[int, np.ndarray]]:
        """The array form: every step's buffer. The stream form (``hls_info.json``): every
        layer's output stream, put back from its layout into the IR's order."""
        layers = stream_layers(src / "hls_info.json", graph, shown / "hls_info.json")
        if layers is None:
            return super().trace(model, graph, src, build, x_int, progress, shown)
        got = native.trace(self.build, src, build, x_int.reshape(1, -1), model.n_out, progress)
        steps = []
        for i, (name, op, tensor, layout) in enumerate(layers):
            steps.append(TraceStep(name, op, tensor))
            if i in got:
                got[i] = ir_order(got[i], graph.shape(tensor), layout)
        return steps, got


class Verilog:
    """Verilog: the Dense chain (:class:`~nnforge.codegen.lower.HwModel`), the CNN engine
    graph (:class:`~nnforge.codegen.verilog_cnn.CnnModel`) or the float processor, run in
    Verilator (:mod:`nnforge.sim.verilog`)."""

    name = "verilog"

    def lower(self, graph: Graph, config: QuantConfig):
        return lower_graph(graph, config, self.name)

    def write(self, model, folder: Path, job: WriteJob) -> dict:
        from .codegen import verilog as verilog_backend
        from .codegen.verilog_cnn import CnnModel, write_cnn

        job.progress(f"writing Verilog ({job.parallelism})")
        if isinstance(model, FloatProgram):
            from .codegen.verilog_float import write_float_verilog

            return write_float_verilog(model, folder)
        if isinstance(model, CnnModel):  # the engine graph (codegen/verilog_cnn.py)
            return write_cnn(model, folder, parallelism=job.parallelism)
        return verilog_backend.write(model, folder, parallelism=job.parallelism)

    def run(self, model, src: Path, build: Path, x_int: np.ndarray, progress: Progress) -> SimRun:
        from .sim import verilog

        return verilog.run(model, src, build, x_int.reshape(len(x_int), -1), progress)

    def trace(self, model, graph: Graph, src: Path, build: Path, x_int: np.ndarray, progress: Progress,
              shown: Path) -> tuple[list[TraceStep], dict[int, np.ndarray]]:
        """Every engine's output stream on one sample, in the IR's flat order, by engine
        (``verilog_info.json`` of the copy ``src`` of ``shown`` checked, its layers'
        tensors among the design's)."""
        from .sim import verilog

        info = verilog.verilog_info(src, shown=shown)
        layers = [ly for ly in info["layers"] if ly.get("tensor")]
        for ly in layers:
            if ly["tensor"] not in graph.tensors or graph.qtype(ly["tensor"]) is None:
                raise DesignFileError(f"{pname(shown / 'verilog_info.json')}: layer {pname(ly['name'])} names "
                                      f"tensor {pname(ly['tensor'])}, which is not an integer tensor of the design")
        run = verilog.run(model, src, build, x_int.reshape(1, -1), progress, trace=[ly["output"] for ly in layers])
        streams = run.extra["trace"]
        got = {}
        for i, ly in enumerate(layers):
            t = graph.qtype(ly["tensor"])
            raw = np.asarray(streams.get(ly["output"], []), dtype=np.uint64)
            vals = verilog.to_signed(raw, t.width, t.signed)
            shape = tuple(graph.shape(ly["tensor"]))
            perm = [int(p) for p in ly["layout"]] if len(ly["layout"]) == len(shape) else list(range(len(shape)))
            got[i] = ir_order(vals, shape, perm)
        return [TraceStep(ly["name"], ly.get("op", "Dense"), ly["tensor"]) for ly in layers], got

    def check_sources(self, src: Path, shown: Path) -> None:
        """Refuse a malformed ``verilog_info.json`` before anything runs."""
        from .sim.verilog import verilog_info

        verilog_info(src, shown=shown)

    def variants(self, graph, config, x, src, work, progress) -> dict[str, VariantRun]:
        return {}

    def report_lines(self, v: dict) -> list[str]:
        """``report.txt``'s Verilog lines: latency, II, multipliers, and per layer."""
        t = v["totals"]
        eff = f", efficiency {t['efficiency']:.2f}" if t.get("efficiency") is not None else ""
        lines = [f"Verilog ({v['parallelism']}): latency {t['latency_cycles']} cycles, initiation "
                 f"interval {t['ii_cycles']} cycles, {t['multipliers']} multipliers"
                 + (f" + {t['lut_multipliers']} in LUTs" if t.get("lut_multipliers") else "")
                 + f"{eff} (MACs per inference / (multipliers x II))"]
        lines += _budget_lines(v.get("folding") or {}, t.get("estimate") or {})
        for layer in v["layers"]:
            lines.append(f"  {pname(layer['name']):<16} PE {layer['pe']:>4} SIMD {layer['simd']:>4}"
                         f"{' (row)' if layer.get('row_fold') else '      '} "
                         f"latency {layer['latency_cycles']:>6} II {layer['ii_cycles']:>6}")
        return lines


# a budget's keys, the estimate's figure each limits and its unit
_BUDGET_UNITS = (("max_multipliers", "dsp", "multipliers"), ("max_luts", "luts", "LUT4s"),
                 ("max_ffs", "ffs", "flip-flops"), ("max_bram", "bram", "block RAMs"))


def _budget_lines(folding: dict, estimate: dict) -> list[str]:
    """A budget's use (``--fit``, ``--max-*``): each resource's estimate against its limit."""
    if folding.get("mode") != "budget":
        return []
    units = ARCH_UNITS.get(folding.get("arch", "ecp5"), {})
    used = [f"{estimate[k]:g} of {folding[b]} {units.get(k, unit)} ({100 * estimate[k] / max(1, folding[b]):.0f}%)"
            for b, k, unit in _BUDGET_UNITS if b in folding and k in estimate]
    return ["  budget use (estimate): " + ", ".join(used)] if used else []


TARGETS: dict[str, Target] = {t.name: t for t in (C(), HLS(), Verilog())}


def folding_goal(parallelism="balanced", target_fps: float | None = None, clock_mhz: float = 100.0,
                 max_multipliers: int | None = None, max_luts: int | None = None,
                 max_ffs: int | None = None, max_bram: int | None = None, arch: str | None = None):
    """The Verilog folding goal: a mode of ``PARALLELISM``, ``{"target_cycles": T}`` for
    ``target_fps`` at ``clock_mhz``, or a budget: any of ``{"max_multipliers": N,
    "max_luts": L, "max_ffs": F, "max_bram": B}`` (multiplier blocks, LUTs, flip-flops,
    block RAMs, the last three checked on the resource estimate). ``arch``: the
    architecture the estimate is made for (``ecp5``, the default: LUT4s, DP16KD blocks; or
    ``amd``: LUT6s, 36 kbit block RAM tiles), kept in the goal as ``"arch"``."""
    if arch is not None and arch not in ARCHS:
        raise ValueError(f"unknown estimate architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if isinstance(parallelism, dict):
        return {**parallelism, "arch": arch} if arch not in (None, "ecp5") else parallelism
    if parallelism not in PARALLELISM:
        raise ValueError(f"unknown parallelism {parallelism!r}; choose from {', '.join(PARALLELISM)}")
    budget = {k: v for k, v in (("max_multipliers", max_multipliers), ("max_luts", max_luts),
                                ("max_ffs", max_ffs), ("max_bram", max_bram)) if v is not None}
    if target_fps is not None and budget:
        raise ValueError("give a target frame rate or a resource budget, not both")
    if target_fps is not None:
        if not target_fps > 0 or not clock_mhz > 0:
            raise ValueError("the target frame rate and the clock must be positive")
        cycles = int(clock_mhz * 1e6 // target_fps)
        if cycles < 1:
            raise ValueError(f"{target_fps} inferences per second at {clock_mhz} MHz leaves less than a cycle each")
        return {"target_cycles": cycles, **({"arch": arch} if arch not in (None, "ecp5") else {})}
    if budget:
        if "max_multipliers" in budget and int(budget["max_multipliers"]) < 0:
            raise ValueError("the multiplier budget must be at least 0")
        for k in ("max_luts", "max_ffs", "max_bram"):
            if k in budget and int(budget[k]) < 1:
                raise ValueError(f"{k} must be at least 1")
        return {**{k: int(v) for k, v in budget.items()}, **({"arch": arch} if arch not in (None, "ecp5") else {})}
    if arch not in (None, "ecp5"):
        raise ValueError(f"arch={arch!r} is the estimate a budget or a target frame rate is checked on; give one "
                         f"(or --fit an AMD part)")
    return parallelism


def folding_of(report: dict):
    """The Verilog folding goal an output folder was written with, from its ``report.json``
    (the ``verilog`` section's ``folding`` decision, else the HLS stream form's): a mode,
    ``{"target_cycles": T}`` or the budget; ``balanced`` when the folder has neither."""
    section = report.get("verilog") if isinstance(report, dict) else None
    if not isinstance(section, dict) and isinstance(report, dict):
        section = report.get("hls")  # an HLS-only folder: its stream form's folding
    decision = section.get("folding") if isinstance(section, dict) else None
    if not isinstance(decision, dict):
        return "balanced"
    mode = decision.get("mode", "balanced")
    keys = {"target": ("period_cycles",), "budget": ("max_multipliers", "max_luts", "max_ffs", "max_bram")}
    if mode in keys:
        vals = {k: decision[k] for k in keys[mode] if k in decision}
        if not vals or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vals.values()):
            raise ValueError(f"report.json: the Verilog folding {mode!r} has no usable "
                             f"{' / '.join(keys[mode])}")
        goal = {"target_cycles": vals["period_cycles"]} if mode == "target" else vals
        arch = decision.get("arch", "ecp5")
        if arch not in ARCHS:
            raise ValueError(f"report.json: unknown estimate architecture {pname(repr(arch)[:40])}")
        return {**goal, "arch": arch} if arch != "ecp5" else goal
    if mode not in PARALLELISM:
        raise ValueError(f"report.json: unknown Verilog folding mode {pname(repr(mode)[:40])}")
    return mode


def hls_settings(report: dict) -> dict:
    """The AMD part and clock an output folder's HLS script was written for (``part``,
    ``clock_mhz``: :meth:`nnforge.design.Design.write` keywords), from its ``report.json``;
    empty when it has no HLS section."""
    h = report.get("hls") if isinstance(report, dict) else None
    if not isinstance(h, dict) or "part" not in h:
        return {}
    part, ns = h.get("part"), h.get("clock_ns")
    if not (isinstance(part, str) and VIVADO_PART.fullmatch(part)) or not (
            isinstance(ns, (int, float)) and not isinstance(ns, bool) and 0 < ns < 1e6):
        raise ValueError("report.json: the HLS section's part or clock is not usable")
    return {"part": part, "clock_mhz": 1000.0 / ns}


def check_names(names: Iterable[str], allowed: Sequence[str], what: str) -> list[str]:
    """``names`` stripped, each among ``allowed``, without repeats (in the order given)."""
    names = [n.strip() for n in names]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(names))
