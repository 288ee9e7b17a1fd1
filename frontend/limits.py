"""How much work and memory importing a model may take.

A model file is data from anywhere: a few hundred bytes can declare a tensor of 2^40
elements, a ``ConstantOfShape`` of a huge shape, a ``Range`` with a tiny step or a loop
of 2^62 trips. Every size is therefore computed from shapes (in Python integers, which
cannot overflow) and checked before anything is allocated, and constant folding runs
under a budget:

- ``max_elements`` (default :data:`DEFAULT_MAX_ELEMENTS` = 2^28 = 268,435,456): the
  largest tensor, declared, inferred or folded (``--max-elements`` /
  ``nnforge.compile(max_elements=)``). 2^28 float32 values are 1 GiB; the largest layer of
  VGG-19 (25088 x 4096 = 102.8 M weights) fits with room to spare.
- all folded results together: ``FOLD_TOTAL_FACTOR`` x ``max_elements`` elements.
- per folded node, :data:`FOLD_WORK` multiply-adds (matrix products, convolutions)
  or element steps; ops that onnx's reference evaluator runs element by element in
  Python count :data:`SLOW_STEP` steps per output element.
- the whole of folding: :data:`FOLD_SECONDS` seconds of wall time, checked between nodes.

Control flow (If, Loop, Scan) and random number generators are never folded.
"""

from __future__ import annotations

import math

DEFAULT_MAX_ELEMENTS = 1 << 28
FOLD_TOTAL_FACTOR = 2
FOLD_WORK = 1 << 32
SLOW_STEP = 256
FOLD_SECONDS = 30.0
MAX_RANK = 32

CONTROL_FLOW = ("If", "Loop", "Scan", "SequenceMap")
RANDOM = ("RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial")

# ops whose result size depends on the values of their inputs: folded only when the size
# is known (from shape inference) beforehand
GROWING = ("ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot", "CenterCropPad",
           "Col2Im", "MaxUnpool", "ConvTranspose", "DFT", "STFT", "MelWeightMatrix", "BlackmanWindow",
           "HannWindow", "HammingWindow", "EyeLike", "Einsum", "MatMul", "Gemm")
# ops onnx's reference evaluator computes with a Python loop per output element
SLOW = ("Resize", "Upsample", "MaxPool", "AveragePool", "LpPool", "MaxUnpool", "ConvTranspose", "Col2Im",
        "GridSample", "RoiAlign", "ScatterND", "GatherND", "ScatterElements", "Scatter", "NonMaxSuppression",
        "DeformConv", "CenterCropPad", "StringSplit", "RegexFullMatch", "StringConcat")

OPTION = "--max-elements / nnforge.compile(max_elements=...)"


def count(shape) -> int:
    """Elements of ``shape`` (exact, any size)."""
    return math.prod(int(d) for d in shape)


def check_max_elements(max_elements) -> int:
    if max_elements is None:
        return DEFAULT_MAX_ELEMENTS
    if isinstance(max_elements, bool) or not isinstance(max_elements, int) or max_elements < 1:
        raise ValueError(f"max_elements must be a positive integer, got {max_elements!r}")
    return max_elements


def over(what: str, shape, limit: int) -> str | None:
    """The message for ``what`` of ``shape`` when it holds more than ``limit`` elements (or
    has a negative or too many axes), else None."""
    shape = tuple(int(d) for d in shape)
    if len(shape) > MAX_RANK:
        return f"{what} has {len(shape)} axes; nnforge supports at most {MAX_RANK}"
    if any(d < 0 for d in shape):
        return f"{what} has a negative size in its shape {_shape_text(shape)}"
    n = count(shape)
    if n > limit:
        return (f"{what} would hold {n} elements (shape {_shape_text(shape)}), over the limit of {limit} "
                f"elements per tensor; raise it with {OPTION} if the model really needs it")
    return None


def _shape_text(shape) -> str:
    text = "x".join(str(d) for d in shape) or "scalar"
    return text if len(text) <= 120 else text[:120] + "..."


def fold_work(op_type: str, in_shapes: list, out_elements: int) -> int:
    """Multiply-adds (or element steps) that folding ``op_type`` takes, from the input
    shapes and the number of elements it produces."""
    if op_type in SLOW:
        return out_elements * SLOW_STEP
    if op_type in ("MatMul", "MatMulInteger", "Gemm", "QLinearMatMul") and in_shapes and in_shapes[0]:
        trans_a_k = max(in_shapes[0][-1], in_shapes[0][0] if len(in_shapes[0]) == 2 else 0)
        return out_elements * max(int(trans_a_k), 1)
    if op_type in ("Conv", "ConvInteger", "QLinearConv"):
        w = in_shapes[3] if op_type == "QLinearConv" else in_shapes[1] if len(in_shapes) > 1 else ()
        return out_elements * max(count(w[1:]) if w else 1, 1)
    if op_type == "Einsum":
        return out_elements * max([count(s) for s in in_shapes] or [1])
    return out_elements + sum(count(s) for s in in_shapes)
