"""The HLS C++ backend: a Vitis HLS top function with interface, dataflow, pipeline and
partial-unroll pragmas, a C-simulation testbench and a Vitis HLS Tcl script. The same
source compiles with plain g++ (no vendor headers) for bit-exact C simulation.

It renders the same :class:`.program.Program` as the C backend (every op in its lowering
table, :data:`.hls_program.LOWERINGS`), lowered with one buffer per step; the per-step
forms (sliding window over a line buffer for Conv and the window pools) are described in
:mod:`.hls_program`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .c import join
from .hls_program import LOWERINGS, model_context, unroll_factor
from .hls_stream import stream_design
from .program import Program
from .render import render

TARGET = "hls"
TOP, AXIS_TOP = "nnforge_top", "nnforge_top_axis"  # the array top, the stream form's AXI4-Stream one
DEFAULT_PART = "xc7z020clg400-1"
DEFAULT_CLOCK_NS = 10.0
SUPPORTED_OPS = LOWERINGS.ops()

__all__ = ["DEFAULT_CLOCK_NS", "DEFAULT_PART", "SUPPORTED_OPS", "TARGET", "unroll_factor", "write", "write_project"]


def write(prog: Program, outdir: Path, tb_x: np.ndarray, tb_y: np.ndarray,
          part: str = DEFAULT_PART, clock_ns: float = DEFAULT_CLOCK_NS, graph=None, parallelism=None) -> dict:
    """Write the HLS sources; ``tb_x`` / ``tb_y`` (integer vectors and their golden
    outputs) become the C-simulation testbench's vectors. With the quantized ``graph`` and
    the folding goal ``parallelism``: the stream form (:mod:`.hls_stream`, the Verilog
    engine graph's processes and folding) where it implements the graph, else the array
    form. Returns ``hls_info.json``'s content (``form``; the stream form's layers, their
    layouts and the folding)."""
    ctx = model_context(prog)
    design = stream_design(graph, parallelism) if graph is not None and parallelism is not None else None
    if design is None or "array" in design:
        source = render("hls", "nnforge_hls_program.cpp.j2", **ctx)
        info = {"form": "array", "top": TOP, "why": design["array"] if design else "no graph given"}
        design, tb_axis = None, None
    else:
        source = render("hls", "nnforge_hls_stream.cpp.j2", **design)
        info = {"form": "stream", "top": AXIS_TOP, "axis": design["axis"], "folding": design["folding"],
                "layers": design["layers"], "totals": design["totals"],
                "streams": [{k: c[k] for k in ("name", "depth") if k in c} for c in design["channels"]]}
        order = design["axis"]["in_order"]
        tb_axis = [np.asarray(x).reshape(graph.shape(graph.inputs[0])).transpose(order).reshape(-1) for x in tb_x]
    info.update(part=part, clock_ns=round(clock_ns, 3))
    header = render("hls", "nnforge_hls.h.j2", **ctx, axis=design["axis"] if design else None)
    write_project(outdir, header, source, tb_x, tb_y, part, clock_ns, top=info["top"], tb_axis=tb_axis)
    (outdir / "hls_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def write_project(outdir: Path, header: str, source: str, tb_x: np.ndarray, tb_y: np.ndarray,
                  part: str, clock_ns: float, top: str = "nnforge_top", tb_axis=None) -> list[Path]:
    """The HLS folder around a rendered top function (``header``, ``source``): the
    C-simulation testbench with ``tb_x`` / ``tb_y`` (and ``tb_axis``, the inputs in the
    AXI4-Stream top's order, when the source has one) and the Vitis HLS script for ``top``."""
    outdir.mkdir(parents=True, exist_ok=True)
    samples = [{"x": join(np.ravel(x)), "y": join(np.ravel(y))} for x, y in zip(tb_x, tb_y, strict=True)]
    if tb_axis is not None:
        for s, xa in zip(samples, tb_axis, strict=True):
            s["xa"] = join(np.ravel(xa))
    files = {
        "nnforge_hls.h": header,
        "nnforge_hls.cpp": source,
        "tb_nnforge_hls.cpp": render("hls", "tb_nnforge_hls.cpp.j2", axis=tb_axis is not None),
        "tb_vectors.h": render("hls", "tb_vectors.h.j2", samples=samples, axis=tb_axis is not None),
        "run_hls.tcl": render("hls", "run_hls.tcl.j2", part=part, clock_ns=clock_ns, top=top),
    }
    paths = []
    for name, text in files.items():
        (outdir / name).write_text(text)
        paths.append(outdir / name)
    return paths
