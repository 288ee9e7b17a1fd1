"""The C backend: C99 for microcontrollers, no malloc, static buffers, const weights.

It renders a :class:`.program.Program` (any DAG of the ops in its lowering table,
:data:`.program.LOWERINGS`), the MLP included: one C path. Each step kind has its
template, ``hls_templates/c/<kind>.j2``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .lower import c_int_type
from .program import LOWERINGS, Program
from .render import calls, render_to

TARGET = "c"
SUPPORTED_OPS = LOWERINGS.ops()
FILES = ("nnforge_model.h", "nnforge_model.c")
# the runtime helpers nnforge_model.c.j2 defines: the flag that emits each -> the function
# a step's template calls
HELPERS = {"need_requant": "nnf_requant", "need_div": "nnf_floor_div"}


@lru_cache(maxsize=None)
def helpers_called(kind: str) -> frozenset[str]:
    """The flags of :data:`HELPERS` a step of ``kind`` needs: the helpers its template
    (``hls_templates/c/<kind>.j2``, with the templates it imports or includes) calls. A
    template calls each helper it names on every path through it (a test checks it), so
    the model's file defines exactly the helpers its steps call: none unused, none missing."""
    return frozenset(flag for flag, fn in HELPERS.items() if calls(TARGET, kind + ".j2", fn))


def join(values) -> str:
    """Integers as one comma-separated line."""
    return ", ".join(str(int(v)) for v in values)


def model_context(prog: Program, softmax: bool) -> dict:
    needs = set().union(*(helpers_called(kind) for kind in {s.kind for s in prog.steps}))
    return {
        "model": prog.name, "n_in": prog.n_in, "n_out": prog.n_out,
        "in_t": str(prog.in_t), "out_t": str(prog.out_t),
        "in_frac": prog.in_t.frac, "out_frac": prog.out_t.frac,
        # real (non power-of-two) scales as exact double literals; "" for 2**-frac
        "in_scale": repr(prog.in_t.real_scale) if prog.in_t.real_scale else "",
        "out_scale": repr(prog.out_t.real_scale) if prog.out_t.real_scale else "",
        "out_zero": prog.out_t.zero,
        "in_lo": prog.in_t.lo, "in_hi": prog.in_t.hi,
        "in_ctype": c_int_type(prog.in_t.width, prog.in_t.signed),
        "out_ctype": c_int_type(prog.out_t.width, prog.out_t.signed),
        "softmax": softmax, "steps": prog.steps, "buffers": prog.buffers,
        **{flag: flag in needs for flag in HELPERS},
    }


def write(prog: Program, outdir: Path, softmax: bool = False) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = model_context(prog, softmax)
    paths = []
    for name in FILES:
        paths.append(render_to(outdir / name, "c", name + ".j2", **ctx))
    return paths
