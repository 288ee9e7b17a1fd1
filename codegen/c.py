"""The C backend: C99 for microcontrollers, no malloc, static buffers, const weights.

It renders a :class:`.program.Program` (any DAG of the ops in its lowering table,
:data:`.program.LOWERINGS`, or the microcontroller kernels of :mod:`.mcu_program`), the
MLP included: one C path. Each step kind has its template, ``hls_templates/c/<kind>.j2``.

Beside the sources it writes ``c_info.json`` (:func:`c_info`): the interface (input and
output shape, element order, C type, scale), the memory the program needs (the activation
arena or static buffers, the const data in flash, the code and stack estimates where
:mod:`.mcu` gives them) and its steps. The same object is the ``c`` section of
``report.json``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from ..ir import FixedType
from .mcu_size import code_estimate, stack_estimate
from .arena import Value, lifetimes, live_maximum
from .lower import c_int_type
from .program import LOWERINGS, Program
from .render import calls, environment, render_to

TARGET = "c"
SUPPORTED_OPS = LOWERINGS.ops()
FILES = ("nnforge_model.h", "nnforge_model.c")
INFO = "c_info.json"
ORDER = "row-major over the shape (C, H, W for images), as the ONNX model"
CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
               "int64_t": 8, "uint64_t": 8, "float": 4, "double": 8}
# a const array's declaration in the generated C: "static const int8_t conv1_w[16][9] ..."
# (storage words such as an alignment macro may stand between "const" and the type)
CONST_ARRAY = re.compile(r"^\s*static\s+const\s+(?:\w+\s+)*?(" + "|".join(CTYPE_BYTES) + r")\s+(\w+)\s*"
                         r"((?:\[\s*\d+\s*\])+)")
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
        "arena": prog.arena, "runtime": prog.runtime, "dsp": prog.dsp, "mcu": prog.mcu,
        **{flag: flag in needs for flag in HELPERS},
    }


def write(prog: Program, outdir: Path, softmax: bool = False) -> dict:
    """``nnforge_model.h``, ``nnforge_model.c`` and ``c_info.json`` into ``outdir``; the
    info (:func:`c_info`), which is also ``report.json``'s ``c`` section."""
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = model_context(prog, softmax)
    for name in FILES:
        render_to(outdir / name, "c", name + ".j2", **ctx)
    info = c_info(prog, flash_bytes(prog, outdir / FILES[1]))
    (outdir / INFO).write_text(json.dumps(info, indent=1) + "\n")
    return info


def const_arrays(lines) -> dict[str, int]:
    """The bytes of every ``static const`` array of integers or floats declared in C
    source ``lines``, by name (element count of every dimension x the C type's size)."""
    found = {}
    for line in lines:
        m = CONST_ARRAY.match(line)
        if m:
            count = 1
            for d in re.findall(r"\d+", m.group(3)):
                count *= int(d)
            found[m.group(2)] = count * CTYPE_BYTES[m.group(1)]
    return found


def rendered_lines(prog: Program):
    """The lines of the program's ``nnforge_model.c``, rendered as they are produced."""
    rest = ""
    for chunk in environment(TARGET).get_template(FILES[1] + ".j2").generate(**model_context(prog, False)):
        *done, rest = (rest + chunk).split("\n")
        yield from done
    yield rest


def flash_bytes(prog: Program, source: Path | None = None) -> dict:
    """The const data the program keeps in flash: ``weights_bytes``, the bytes of every
    ``static const`` array its ``nnforge_model.c`` declares (weights, biases, per-channel
    multipliers, sparse indices and shared-weight tables, interpolation tables, constant
    operands), and ``by_step``, those bytes by the step whose name prefixes the array's
    (``other`` for any array of no step). Counted from the declarations of the source
    ``source`` (the written file) or, without it, of the program rendered again. Not
    counted: const parameter structs and the code (see :func:`c_info`)."""
    if source is None:
        arrays = const_arrays(rendered_lines(prog))
    else:
        with open(source, encoding="utf-8") as f:
            arrays = const_arrays(f)
    names = sorted({s.name for s in prog.steps}, key=len, reverse=True)
    by_step: dict[str, int] = {}
    for array, n in arrays.items():
        owner = next((s for s in names if array.startswith(s + "_")), "other")
        by_step[owner] = by_step.get(owner, 0) + n
    return {"weights_bytes": sum(arrays.values()), "by_step": by_step}


def io_info(shape, t: FixedType) -> dict:
    """An input or output of ``nnforge_run``: per-sample shape, element order and type;
    a real value is (stored integer + zero) x scale."""
    info = {"shape": [int(d) for d in shape], "order": ORDER, "ctype": c_int_type(t.width, t.signed),
            "type": str(t), "min": int(t.lo), "max": int(t.hi)}
    if t.real_scale:
        info["scale"] = float(t.real_scale)
    else:
        info["frac"], info["scale"] = int(t.frac), 2.0 ** -int(t.frac)
    info["zero"] = int(t.zero)
    return info


def arena_info(prog: Program) -> dict:
    """The RAM of the activations: the MCU arena (:mod:`.arena`: activations at the live
    maximum when placement reaches it, plus kernel scratch), or the generic program's
    static buffers and their live maximum (4-byte aligned values: the least one arena
    could hold them in, in this step order)."""
    a = prog.arena
    if a is not None:
        return {"activations_bytes": int(a.activations), "live_max_bytes": int(a.live_max),
                "scratch_bytes": int(a.scratch), "total_bytes": int(a.total)}
    static = sum(b.size * CTYPE_BYTES[b.ctype] for b in prog.buffers)
    return {"static_buffers_bytes": static, "live_max_bytes": live_maximum(live_values(prog)), "total_bytes": static}


def live_values(prog: Program) -> list[Value]:
    """Every value a step writes to a buffer (not the model's ``in`` / ``out``), as the
    arena planner (:func:`.arena.lifetimes`) takes them."""
    return lifetimes(((s.inputs, s.output, s.size * CTYPE_BYTES[s.out_ctype]) for s in prog.steps),
                     outside=("in", "out"))


def c_info(prog: Program, flash: dict) -> dict:
    """``c_info.json``: the interface, memory and steps of the program (``flash`` from
    :func:`flash_bytes`). ``code_bytes_estimate`` and ``stack_bytes_estimate`` come from
    :mod:`.mcu_size` (none for the generic program)."""
    per_step = flash["by_step"]
    info = {"mcu": prog.mcu, "input": io_info(prog.input_shape, prog.in_t),
            "output": io_info(prog.output_shape, prog.out_t), "arena": arena_info(prog),
            "flash": {"weights_bytes": flash["weights_bytes"]}}
    code, stack = code_estimate(prog), stack_estimate(prog)
    if code is not None:
        info["flash"]["code_bytes_estimate"] = int(code)
    if stack is not None:
        info["stack_bytes_estimate"] = int(stack)
    info["steps"] = [{"name": s.name, "op": s.op, "kind": s.kind, "macs": int(s.macs),
                      "layout": list(s.layout) or "ir", "weights_bytes": per_step.get(s.name, 0),
                      "scratch_bytes": int(s.scratch)} for s in prog.steps]
    return info
