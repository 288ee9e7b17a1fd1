"""C and HLS C++ for float16 / bfloat16 graphs (the contract: :mod:`nnforge.ir.floats`).

Tensors are 16-bit float patterns (``uint16_t``); every operation widens to ``float``,
computes in IEEE binary32 with round to nearest even, and narrows with the contract's
rounding and saturation, in exactly the golden model's order (Dense: inputs ascending;
Conv: input channel, kernel row, kernel column; taps in the padding are skipped, which
the contract makes exact). The generated source refuses to compile where ``float``
arithmetic is not binary32 without excess precision (``FLT_EVAL_METHOD != 0``); it must
be compiled without contracting ``a * b + c`` into a fused multiply-add (gcc and clang in
ISO C mode, ``-std=c99``, do not contract; with ``-std=gnu*`` pass ``-ffp-contract=off``).

Weights are stored in one of the weight formats of :data:`WEIGHT_FORMATS`:

* ``plain``: the 16-bit patterns, ``const`` (flash).
* ``neuzip``: each layer's patterns entropy-coded (the exponents by rANS,
  :mod:`nnforge.passes.neuzip`); at run time each layer is decoded, just before it runs,
  into one static buffer the size of the largest layer, so flash holds the compressed
  form and RAM one layer.
* ``lossy``: NeuZip lossy storage (sign and K + 1 magnitude bits per weight, one
  exponent per block of 32), decoded the same way; the weights themselves were made
  what this storage holds when the design was compiled, so the results are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import Graph
from ..ir.floats import FloatType, is_float
from .hls import write_project
from .lower import BackendError, ModelIO, check_ops, interface
from .naming import sanitize
from .program import rows, window
from .registry import Lowerings
from .render import TEMPLATES, render

WEIGHT_FORMATS = ("plain", "neuzip", "lossy")


@dataclass(frozen=True)
class FloatStep:
    kind: str  # dense, conv, maxpool, gap, add, relu
    name: str
    inputs: tuple[str, ...]
    output: str
    params: dict = field(repr=False)
    macs: int = 0
    tensor: str = ""
    size: int = 0


@dataclass(frozen=True)
class FloatProgram(ModelIO):
    fmt: str
    steps: tuple[FloatStep, ...]
    buffers: tuple[tuple[str, int], ...]  # (name, size) of the uint16_t activation buffers
    weight_format: str = "plain"
    lossy_bits: int = 0

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def weight_bytes(self) -> int:
        return sum(s.params.get("weight_bytes", 0) for s in self.steps)


def is_float_graph(q: Graph) -> bool:
    return is_float(q.qtype(q.inputs[0]))


def _f32_literal(v: float) -> str:
    """A C float literal that converts to exactly ``float32(v)``."""
    s = repr(float(np.float32(v)))
    return (s if ("." in s or "e" in s) else s + ".0") + "f"


def lower_float_for(q: Graph, target: str, neuzip: str = "") -> FloatProgram:
    """What a target renders for a float graph: C takes the NeuZip weight storage, HLS
    and Verilog plain patterns (the same values; Verilog runs them on the float processor of
    :mod:`.verilog_float`)."""
    if target not in ("c", "hls", "verilog"):
        raise ValueError(f"unknown target {target!r}")
    fmt, k = "plain", 0
    if target == "c" and neuzip:
        fmt, k = ("neuzip", 0) if neuzip == "lossless" else ("lossy", int(neuzip.split(":")[1]))
    return lower_float(q, target, fmt, k)


# The float C / HLS lowering of each IR op: (kind, params, macs) of one node, ``kind``
# naming the template's step (the float processor of :mod:`.verilog_float` runs the same
# kinds). The ops the float backends implement are this table's keys.
LOWERINGS = Lowerings("c-float")


@LOWERINGS.lowers("Reshape")
def lower_reshape(q: Graph, node, name: str):
    """No step: a tensor is stored flat, row-major, so the output is the input's buffer."""
    return "alias", {}, 0


def _weights(q: Graph, node) -> tuple[dict, int]:
    """The common params of a Dense / Conv (weights, bias, fused Relu) and its MACs."""
    w, b = (np.asarray(q.consts[c], dtype=np.int64) for c in node.inputs[1:])
    params = dict(w_rows=rows(w), b_rows=rows(b), n_w=int(w.size), m=int(w.shape[0]),
                  relu=bool(node.attrs.get("relu")), weight_bytes=2 * int(w.size + b.size), weights=w, bias=b)
    return params, int(np.prod(q.shape(node.outputs[0]))) * int(np.prod(w.shape[1:]))


@LOWERINGS.lowers("Dense")
def lower_dense(q: Graph, node, name: str):
    params, macs = _weights(q, node)
    params.update(k=int(params["weights"].shape[1]))
    return "dense", params, macs


@LOWERINGS.lowers("Conv")
def lower_conv(q: Graph, node, name: str):
    params, macs = _weights(q, node)
    w = params["weights"]
    groups = int(node.attrs.get("groups", 1))
    params.update(window(node.attrs, q.shape(node.inputs[0]), w.shape[2:]), groups=groups,
                  cg=int(w.shape[1]), mg=int(w.shape[0]) // groups)
    return "conv", params, macs


@LOWERINGS.lowers("MaxPool")
def lower_maxpool(q: Graph, node, name: str):
    return "maxpool", window(node.attrs, q.shape(node.inputs[0]), tuple(node.attr("kernel_shape")),
                             bool(node.attr("ceil_mode"))), 0


@LOWERINGS.lowers("GlobalAveragePool")
def lower_gap(q: Graph, node, name: str):
    shp = q.shape(node.inputs[0])
    count = int(np.prod(shp[1:]))
    return "gap", dict(c=int(shp[0]), count=count, recip=_f32_literal(1.0 / count)), 0


@LOWERINGS.lowers("Add")
def lower_add(q: Graph, node, name: str):
    if q.shape(node.inputs[0]) != q.shape(node.inputs[1]):
        raise BackendError(f"node {name!r}: the float backends add tensors of one shape only "
                           f"({q.shape(node.inputs[0])} + {q.shape(node.inputs[1])})")
    return "add", {}, 0


@LOWERINGS.lowers("Relu")
def lower_relu(q: Graph, node, name: str):
    return "relu", {}, 0


def lower_float(q: Graph, target: str, weight_format: str = "plain", lossy_bits: int = 0) -> FloatProgram:
    """The float program of a float16 / bfloat16 graph, every node lowered by its op's
    function in :data:`LOWERINGS`; refuses an op outside the table, naming the node."""
    if weight_format not in WEIGHT_FORMATS:
        raise BackendError(f"weight format must be one of {', '.join(WEIGHT_FORMATS)}, got {weight_format!r}")
    check_ops(q, target, LOWERINGS.ops())
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("the float backends need exactly one input and one output tensor")
    t = q.qtype(q.inputs[0])
    assert isinstance(t, FloatType)
    used: set[str] = set()
    where = {q.inputs[0]: "in"}
    buffers: list[tuple[str, int]] = []
    steps: list[FloatStep] = []
    for node in q.topo():
        out = node.outputs[0]
        lowering = LOWERINGS[node.op]
        if lowering is lower_reshape:
            where[out] = where[node.inputs[0]]
            continue
        name = sanitize(node.name, used, prefix="step")
        size = int(np.prod(q.shape(out)))
        if out == q.outputs[0]:
            buf = "out"
        else:
            buf = f"nnf_buf{len(buffers)}"
            buffers.append((buf, size))
        where[out] = buf
        kind, params, macs = lowering(q, node, name)
        params["n"] = size
        steps.append(FloatStep(kind, name, tuple(where[i] for i in node.inputs if not q.is_const(i)), buf,
                               params, macs, out, size))
    if weight_format != "plain":
        _neuzip(steps, t.format, lossy_bits)
    return FloatProgram(**interface(q), fmt=t.fmt, steps=tuple(steps), buffers=tuple(buffers),
                        weight_format=weight_format, lossy_bits=lossy_bits)


def _neuzip(steps: list[FloatStep], fmt, lossy_bits: int) -> None:
    """Each layer's weights as a NeuZip blob (decoded at run time, see module doc)."""
    from ..ir.floats import from_f32, to_f32
    from ..passes.floatfmt import LOSSY_BLOCK
    from ..passes.neuzip import encode_lossless, encode_lossy, lossy_values

    for s in steps:
        if "weights" not in s.params:
            continue
        w = np.asarray(s.params["weights"]).astype(np.uint16).reshape(-1)
        if lossy_bits:
            vals = to_f32(w, fmt)
            # the compiled weights already are what the lossy storage holds
            if not np.array_equal(from_f32(lossy_values(vals, lossy_bits, LOSSY_BLOCK), fmt), w.astype(np.int64)):
                raise BackendError(f"layer {s.name!r}: its weights are not NeuZip lossy:{lossy_bits} values")
            blob = encode_lossy(vals, lossy_bits, LOSSY_BLOCK)
        else:
            blob = encode_lossless(w, fmt.exp_bits)
        s.params.update(blob_rows=rows(np.frombuffer(blob, dtype=np.uint8)), blob_bytes=len(blob),
                        weight_bytes=len(blob) + 2 * s.params["m"])


def context(prog: FloatProgram, hls: bool) -> dict:
    from ..passes.floatfmt import LOSSY_BLOCK

    neuzip = prog.weight_format != "plain"
    return {"model": prog.name, "fmt": prog.fmt, "n_in": prog.n_in, "n_out": prog.n_out,
            "steps": prog.steps, "buffers": prog.buffers, "hls": hls, "neuzip": neuzip,
            "scratch": max((s.params["n_w"] for s in prog.steps if "n_w" in s.params), default=1),
            "neuzip_c": (TEMPLATES / "c" / "neuzip.c").read_text() if neuzip else "",
            "weight_bytes": prog.weight_bytes, "lossy_bits": prog.lossy_bits, "lossy_block": LOSSY_BLOCK,
            "weight_format": prog.weight_format + (f":{prog.lossy_bits}" if prog.lossy_bits else "")}


def write_c(prog: FloatProgram, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    ctx = context(prog, hls=False)
    paths = []
    for name in ("nnforge_model.h", "nnforge_model.c"):
        path = outdir / name
        path.write_text(render("c", f"float_{name}.j2", **ctx))
        paths.append(path)
    return paths


def write_hls(prog: FloatProgram, outdir: Path, tb_x: np.ndarray, tb_y: np.ndarray,
              part: str, clock_ns: float) -> list[Path]:
    if prog.weight_format != "plain":
        raise BackendError("the HLS backend stores float weights plainly (NeuZip decoding is for the C backend)")
    ctx = context(prog, hls=True)
    return write_project(outdir, render("c", "float_nnforge_model.h.j2", **ctx),
                         render("c", "float_nnforge_model.c.j2", **ctx), tb_x, tb_y, part, clock_ns)
