"""The HLS C++ backend over a :class:`.program.Program`: the same steps the C backend
renders, as Vitis HLS functions in one DATAFLOW region.

Forms (named in each generated function's comment):

- Conv, MaxPool, AveragePool: a sliding-window engine. The input is read once in raster
  order over the padded plane; a line buffer holds the last ``span_h - 1`` padded rows of
  every channel and a ``span_h x span_w`` window register (``span = (k - 1) * dilation + 1``)
  shifts by one column per pixel; ``PIPELINE II=1`` on the per-pixel loop, the window and
  the line buffer are partitioned. Stride, dilation, groups, asymmetric pads, ceil mode
  and 1-D (H = 1, no line buffer) all use it: the window covers the dilated span and the
  taps are read at multiples of the dilation, so there is no direct-loop fallback.
- Dense: as the Dense-chain engine (pipelined inner loop, partial unroll).
- Elementwise, BatchNormalization, nearest Resize, global pools: one pipelined loop per value.
- Resize by tap tables (linear, cubic, general nearest): a pipelined loop over the output
  values, the taps of every resized axis unrolled in it.
- Mul and Transpose: a loop nest over the output (size-1 axes dropped, neighbouring axes
  merged), every operand read at its own (broadcast or permuted) strides, PIPELINE II=1 on
  the innermost loop. Concat: one pipelined copy loop per input.

Every buffer is written by exactly one step (``lower_program(reuse=False)``) and read by
exactly one: a value read by several steps (a residual block's skip, the input of two
branches) is first copied by a ``dup`` step into one buffer per reader, as a DATAFLOW
region requires (one producer, one consumer per channel). The
integer rules are those of the C templates: portable floor shift, floor division, int64
where the widths need it, ``ap_int<acc_width>`` accumulators under ``__SYNTHESIS__`` only.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph
from .lower import c_int_type
from .program import LOWERINGS as C_LOWERINGS, Buffer, Program, Step, lower_program
from .registry import Lowerings
from .render import calls

DIVIDE = "nnf_floor_div"  # the helper nnforge_hls_program.cpp.j2 defines under need_div
_WINDOW_KINDS = frozenset({"conv", "maxpool", "avgpool"})


def _shared_with_c() -> Lowerings:
    """The HLS target's lowering table: the C target's functions (the same steps and
    parameters; only the templates differ), registered under its own name."""
    table = Lowerings("hls")
    for op in sorted(C_LOWERINGS.ops()):
        table.lowers_all((op,), C_LOWERINGS[op])
    return table


LOWERINGS = _shared_with_c()
HLS_OPS = LOWERINGS.ops()  # derived, kept for existing importers


def lower_hls(q: Graph) -> Program:
    return single_readers(lower_program(q, LOWERINGS, reuse=False))


def single_readers(prog: Program) -> Program:
    """Insert a ``dup`` step after the producer of every buffer that several steps read
    (each reading step counts once, however many of its arguments name the buffer)."""
    readers: dict[str, list[int]] = {}
    for i, st in enumerate(prog.steps):
        for b in dict.fromkeys(st.inputs):
            readers.setdefault(b, []).append(i)
    shared = {b: r for b, r in readers.items() if len(r) > 1}
    if not shared:
        return prog
    sizes = {b.name: b.size for b in prog.buffers}
    sizes["in"] = prog.n_in
    ctype_of = {"in": c_int_type(prog.in_t.width, prog.in_t.signed)}
    for st in prog.steps:
        ctype_of[st.output] = st.out_ctype
    buffers = list(prog.buffers)
    rename: dict[tuple[int, str], str] = {}
    dups: dict[str, Step] = {}
    for b, steps in shared.items():
        outs = []
        for j, i in enumerate(steps):
            name = f"{b}_r{j}" if b != "in" else f"nnf_in_r{j}"
            buffers.append(Buffer(name, ctype_of[b], sizes[b]))
            rename[(i, b)] = name
            outs.append(name)
        dups[b] = Step(kind="dup", name=f"dup_{b if b != 'in' else 'nnf_in'}", op="Dup", inputs=(b,),
                       output=outs[0], in_ctypes=(ctype_of[b],), out_ctype=ctype_of[b],
                       params={"outs": outs, "size": sizes[b]})
    steps_out = [dups["in"]] if "in" in dups else []
    for i, st in enumerate(prog.steps):
        steps_out.append(replace(st, inputs=tuple(rename.get((i, b), b) for b in st.inputs)))
        if st.output in dups:
            steps_out.append(dups[st.output])
    return replace(prog, steps=tuple(steps_out), buffers=tuple(buffers))


def unroll_factor(n_in: int, limit: int = 8) -> int:
    """Inputs multiplied per cycle in a neuron: the largest divisor of n_in up to limit."""
    return max(d for d in range(1, min(limit, n_in) + 1) if n_in % d == 0)


def step_extras(prog: Program) -> list[dict]:
    """Per step: the array sizes of its arguments, the form it uses, and window numbers."""
    sizes = {b.name: b.size for b in prog.buffers}
    sizes["in"], sizes["out"] = prog.n_in, prog.n_out
    extras = []
    for s in prog.steps:
        p = s.params
        e: dict = {"in_sizes": [sizes[b] for b in s.inputs], "out_size": sizes[s.output]}
        if s.kind in _WINDOW_KINDS:
            span_h, span_w = (p["kh"] - 1) * p["dh"] + 1, (p["kw"] - 1) * p["dw"] + 1
            e.update(span_h=span_h, span_w=span_w, c=p["c"],
                     hr=max(p["h"] + p["pt"] + p["pb"], (p["oh"] - 1) * p["sh"] + span_h),
                     wr=max(p["w"] + p["pl"] + p["pr"], (p["ow"] - 1) * p["sw"] + span_w),
                     form=(f"line buffer ({span_h - 1} row(s)) + {span_h}x{span_w} window, PIPELINE II=1 per pixel"
                           if span_h > 1 else f"1x{span_w} shift-register window (no line buffer), "
                                              f"PIPELINE II=1 per pixel"))
            if s.kind == "conv":
                e["taps"] = p["cg"] * p["kh"] * p["kw"]
        elif s.kind == "dense":
            e.update(simd=unroll_factor(p["n_in"]),
                     form="pipelined inner loop, partial unroll " + str(unroll_factor(p["n_in"])))
        elif s.kind in ("mul", "transpose"):
            e["form"] = (f"{len(p['dims'])} nested loop(s) over the output, PIPELINE II=1 on the innermost, "
                         f"one value per cycle")
        elif s.kind == "interp":
            e["form"] = "pipelined loop over the output values, the tap loops unrolled in it"
        elif s.kind == "dup":
            e["form"] = f"one pipelined loop writing {len(p['outs'])} copies, one value per cycle"
        elif s.kind == "concat":
            e["form"] = f"one pipelined copy loop per input ({len(p['parts'])}), one value per cycle"
        else:
            e["form"] = "pipelined loop, one value per cycle"
        extras.append(e)
    return extras


def model_context(prog: Program) -> dict:
    return {
        "model": prog.name, "n_in": prog.n_in, "n_out": prog.n_out,
        "in_t": str(prog.in_t), "out_t": str(prog.out_t),
        "in_frac": prog.in_t.frac, "out_frac": prog.out_t.frac,
        "in_ctype": c_int_type(prog.in_t.width, prog.in_t.signed),
        "out_ctype": c_int_type(prog.out_t.width, prog.out_t.signed),
        "steps": prog.steps, "buffers": prog.buffers, "extras": step_extras(prog),
        # the division helper, when a step's template (step_<kind>.j2) calls it
        "need_div": any(calls("hls", f"step_{kind}.j2", DIVIDE) for kind in {s.kind for s in prog.steps}),
    }
