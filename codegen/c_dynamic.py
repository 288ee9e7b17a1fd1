"""Dynamic quantization for the C target: ``nnforge_dynamic.c`` / ``nnforge_dynamic.h``.

The generated C implements :func:`nnforge.ir.dynamic.run_dynamic` bit for bit: every
activation buffer carries a run-time ``int`` frac, chosen per input sample. The loop
nests and geometry come from :func:`.program.lower_program` (the same Program the static
C backend renders); Python computes every number here and the template
(``hls_templates/c/nnforge_dynamic.c.j2``) only lays text out.

Dense, Conv and Add run in two passes: the exact accumulators go to one int64 scratch
buffer (sized for the largest such output), then the run-time shift is the smallest
``s >= 0`` that fits the tensor's min and max in the output type (kept within
``DYN_RANGE`` bits of the static frac), and the outputs are ``sat(round_shift(acc, s))``.

Run-time fracs stay within ``DYN_RANGE`` bits of the static ones and ``check_dynamic``
proves every shifted bias and aligned operand fits int64, so no sum overflows; the
integer helpers still avoid undefined behaviour (shifts of negative numbers, shifts by
64 or more) by working in unsigned arithmetic.
"""

from __future__ import annotations

from pathlib import Path


from ..ir import FixedType, Graph
from ..ir.dynamic import DYN_RANGE, MAX_SHIFT, check_dynamic
from .lower import BackendError, c_int_type
from .program import Program, lower_program
from .render import branches_calling, render

FILES = ("nnforge_dynamic.h", "nnforge_dynamic.c")
PREFIX = "nnf_dyn_"
_KINDS = frozenset({"dense", "conv", "relu", "maxpool", "avgpool", "gap", "gmp", "add"})


def _c64(v: int) -> str:
    """An int64 literal, valid C99 for any int64 value."""
    v = int(v)
    if v == -(1 << 63):
        return "INT64_MIN"
    return f"INT64_C({v})"


def _buf(name: str) -> str:
    if name in ("in", "out"):
        return PREFIX + name
    return PREFIX + name.removeprefix("nnf_")


def dynamic_program(q: Graph) -> Program:
    """Check ``q`` for dynamic quantization and lower it (raises before anything is written)."""
    check_dynamic(q)
    prog = lower_program(q)
    for s in prog.steps:
        if s.kind not in _KINDS:  # check_dynamic covers this; defensive
            raise BackendError(f"dynamic C: no dynamic lowering for step {s.name!r} (kind {s.kind})")
    return prog


def dynamic_context(q: Graph, prog: Program | None = None) -> dict:
    prog = prog or dynamic_program(q)
    nodes = {n.outputs[0]: n for n in q.topo()}
    steps, scratch = [], 1
    for s in prog.steps:
        p = dict(s.params)
        node = nodes[s.tensor]
        out_t = q.qtype(s.tensor)
        st = {"kind": s.kind, "op": s.op, "fn": f"{PREFIX}{s.name}_run", "w": f"{PREFIX}{s.name}_w",
              "b": f"{PREFIX}{s.name}_b", "inputs": [_buf(b) for b in s.inputs],
              "output": _buf(s.output), "in_ctypes": list(s.in_ctypes), "out_ctype": s.out_ctype,
              "size": s.size, "lo": _c64(out_t.lo), "hi": _c64(out_t.hi),
              "f_lo": out_t.frac - DYN_RANGE, "f_hi": out_t.frac + DYN_RANGE}
        if s.kind in ("dense", "conv"):
            w_t, b_t = q.qtype(node.inputs[1]), q.qtype(node.inputs[2])
            p.update(w_frac=w_t.frac, b_frac=b_t.frac, relu=bool(node.attr("relu")))
            scratch = max(scratch, s.size)
        elif s.kind == "add":
            scratch = max(scratch, s.size)
        st["p"] = p
        steps.append(st)
    # the input is quantized as the golden model does: the width and signedness of the
    # static input type only (its frac, scale or bounds do not apply)
    in_t, out_t = FixedType(prog.in_t.width, 0, prog.in_t.signed), prog.out_t
    hi = in_t.hi
    buffers = [{"name": _buf(b.name), "ctype": b.ctype, "size": b.size} for b in prog.buffers]
    buffers.insert(0, {"name": _buf("in"), "ctype": c_int_type(in_t.width, in_t.signed), "size": prog.n_in})
    buffers.append({"name": _buf("out"), "ctype": c_int_type(out_t.width, out_t.signed), "size": prog.n_out})
    index = {b["name"]: i for i, b in enumerate(buffers)}  # each buffer's run-time frac: f[index]
    for st in steps:
        st["in_indices"] = [index[b] for b in st["inputs"]]
        st["out_index"] = index[st["output"]]
    return {
        "model": prog.name, "n_in": prog.n_in, "n_out": prog.n_out, "in_t": str(prog.in_t), "out_t": str(out_t),
        "in_lo": in_t.lo, "in_hi": in_t.hi, "in_hi_bits": int(hi).bit_length(),
        "in_zero_frac": in_t.width - 1 - (1 if in_t.signed else 0),
        "in_f_lo": prog.in_t.frac - DYN_RANGE, "in_f_hi": prog.in_t.frac + DYN_RANGE, "dyn_range": DYN_RANGE,
        "in_buf": _buf("in"), "out_buf": _buf("out"),
        "steps": steps, "buffers": buffers,
        # the division helper, when the template's branch of a step's kind calls it
        "need_div": any(st["kind"] in branches_calling("c", "nnforge_dynamic.c.j2", "floor_div") for st in steps),
        "scratch": scratch, "max_shift": MAX_SHIFT,
        "prefix": PREFIX,
    }


def write_dynamic(q: Graph, outdir: Path) -> list[Path]:
    """Write ``nnforge_dynamic.h`` and ``nnforge_dynamic.c`` into ``outdir``. An unsupported
    graph raises (DynamicError / BackendError) before any file is written."""
    ctx = dynamic_context(q)
    texts = {name: render("c", name + ".j2", **ctx) for name in FILES}
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FILES:
        path = outdir / name
        path.write_text(texts[name])
        paths.append(path)
    return paths


__all__ = ["FILES", "dynamic_context", "dynamic_program", "write_dynamic"]
