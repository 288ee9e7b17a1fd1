"""Integer and narrow-float model inputs on the float interpreter.

The float interpreter (:func:`nnforge.ir.run_float`) computes in float32. A model input of
a type whose every value float32 holds exactly (int8, uint8, int16, uint16, the 4- and
2-bit integers, the float8 and float4 formats) is accepted when the caller asks for it
(``import_onnx(..., float_interpreter=True)``, what the ONNX backend does), and a node reading
such a tensor, or one computed from it, only where float32 computes ONNX's result exactly:

- ops that move or select values (translators registered with ``exact=VALUES``);
- ``Cast`` to a type that holds every value of its input's type (its translator checks);
- integer arithmetic (``exact=ARITHMETIC``: Add, Mul, Sum) whose result type lies within
  +-2^24: float32 computes it exactly as long as no result leaves its type, where ONNX
  wraps around. Those results are listed in ``g.meta['integer_ranges']`` (IR tensor ->
  [lo, hi, type]) for the caller to check after running; the ONNX backend refuses a run
  that leaves them.

Anything else on such a tensor is refused with the reason. The compile path does not take
integer inputs (the quantizer has no mapping for them): ``nnforge.compile`` refuses them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import ImportError_, node_label, q as qn
from .translate import ARITHMETIC, DEFAULT_DOMAINS, EXACT

FLOAT_COMPUTED = frozenset({1, 10, 11, 16})  # FLOAT, FLOAT16, DOUBLE, BFLOAT16: computed as float32
FLOAT = 1
EXACT_LIMIT = 1 << 24  # integers up to this magnitude are exact in float32


def np_dtype(elem_type: int):
    """The numpy dtype of an ONNX element type (None when it has none)."""
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return None


def type_name(elem_type: int) -> str:
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"


@lru_cache(maxsize=None)
def every_value(elem_type: int) -> np.ndarray | None:
    """Every value of a numeric ONNX type of at most 16 bits, as float64 (None otherwise)."""
    dt = np_dtype(elem_type)
    if dt is None or dt.itemsize > 2 or dt.kind not in "iufV":
        return None
    patterns = np.arange(1 << (8 * dt.itemsize), dtype=np.uint8 if dt.itemsize == 1 else np.uint16)
    try:
        with np.errstate(all="ignore"):
            return patterns.view(dt).astype(np.float64)
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=None)
def holds_every_value(src: int, dst: int) -> bool:
    """Whether ONNX type ``dst`` represents every value of type ``src`` exactly (NaN and
    the infinities included)."""
    if src == dst:
        return True
    values, dt = every_value(src), np_dtype(dst)
    if values is None or dt is None or dt.kind not in "iufV":
        return False
    try:
        with np.errstate(all="ignore"):
            back = values.astype(np_dtype(src)).astype(dt).astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    return bool(np.all((back == values) | (np.isnan(back) & np.isnan(values))))


def is_exact_input(elem_type: int) -> bool:
    """An input type the float interpreter holds exactly, other than the float types it
    computes as float anyway."""
    return elem_type not in FLOAT_COMPUTED and holds_every_value(elem_type, FLOAT)


def check(imp, onode) -> None:
    """Before ``onode`` is translated: refuse it when it reads an integer (or narrow float)
    tensor and float32 does not compute its ONNX result exactly."""
    read = [t for t in onode.input if t in imp.exact_types]
    if not read or onode.op_type == "Cast":
        return
    kind = EXACT.get(onode.op_type) if onode.domain in DEFAULT_DOMAINS else None
    what = f"{node_label(onode)} reads {qn(read[0])}, a tensor of {type_name(imp.exact_types[read[0]])} values"
    if kind is None:
        raise ImportError_(f"{what}: the float interpreter would compute it in float32, which is not exactly "
                           f"ONNX's result; on integer inputs nnforge takes ops that move values, Cast to a type "
                           f"that holds them, and Add / Mul / Sum")
    if kind == ARITHMETIC:
        out = imp.elem_types.get(onode.output[0])
        values = every_value(out) if out is not None else None
        if values is None or not np.all(values == np.round(values)) or np.abs(values).max() > EXACT_LIMIT:
            raise ImportError_(f"{what}: its {type_name(out) if out is not None else 'result'} results are not "
                               f"all exact in float32, which the float interpreter computes in")


def propagate(imp, onode) -> None:
    """After ``onode`` is translated: its outputs of integer (or narrow float) types are
    tracked; results of integer arithmetic get their type's range checked at run time."""
    if not any(t in imp.exact_types for t in onode.input):
        return
    arithmetic = EXACT.get(onode.op_type) == ARITHMETIC
    for out in onode.output:
        t = imp.elem_types.get(out) if out else None
        if not t or t in FLOAT_COMPUTED:
            continue
        imp.exact_types[out] = t
        values = every_value(t)
        if arithmetic and values is not None:
            ranges = imp.g.meta.setdefault("integer_ranges", {})
            ranges[imp.resolve(out)] = [float(values.min()), float(values.max()), type_name(t)]


def check_ranges(g, env: dict) -> None:
    """After running ``g`` (``env``: every tensor's value): refuse a run in which integer
    arithmetic left its type (ONNX wraps around there; float32 does not)."""
    for t, (lo, hi, name) in g.meta.get("integer_ranges", {}).items():
        v = np.asarray(env[t])
        if v.size and (v.min() < lo or v.max() > hi):
            bad = v[(v < lo) | (v > hi)].reshape(-1)[0]
            raise ImportError_(f"tensor {qn(t)}: the {name} result {bad:g} leaves the type's range [{lo:g}, "
                               f"{hi:g}], where ONNX wraps around and the float interpreter does not")
