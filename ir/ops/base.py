"""What an op is: one frozen :class:`OpDef` per op, exported as ``DEF`` by its module.

An op's definition is the only place that states its semantics and its traits. The
interpreters, constant folding, the quantizer and the test oracles call its functions;
every set of op names anywhere in the package is derived from the registry
(:func:`nnforge.ir.ops.ops_with`), never written by hand.

Function signatures (all optional except ``shape`` and ``float_ref``)::

    shape(attrs, in_shapes) -> list[tuple]            per-sample shapes
    float_ref(attrs, inputs) -> list[np.ndarray]      float32 reference
    int_ref(node, g, inputs) -> list[np.ndarray]      the golden integer semantics
    float16_ref(node, g, inputs) -> list[np.ndarray]  float16 / bfloat16 storage patterns
                                                      (the contract of :mod:`..floats`)
    dynamic_ref(node, g, inputs, fracs)               run-time scales (:mod:`..dynamic`):
        -> (values, frac, shifted)                    ``fracs`` the per-sample frac of each
                                                      input (None for a constant); the
                                                      output values at per-sample ``frac``;
                                                      ``shifted`` true when they are an exact
                                                      accumulator that the run-time shift
                                                      still brings into the output type
    quantize(q, node, ctx) -> None                    an op-specific quantization rule where
                                                      no named one (``quant``) fits; ``ctx``
                                                      is the quantizer's (output range, config)
    function(attrs, x) -> np.ndarray                  table ops: the float64 function of
                                                      one value, from which the
                                                      quantizer builds the table

How the quantizer derives an op's output type is the rule named by ``quant`` (one of
:data:`QUANT_RULES`; a table op's default is ``"table"``); the rules are implemented once,
by name, in ``nnforge.passes.quantize`` and ``nnforge.passes.prequant``. An op without a
rule (``float_only``) is refused by the quantizer with its ``refusal``. What one output
value costs in arithmetic and memory is the rule named by ``arith`` (one of
:data:`ARITH_RULES`), counted by the first-order energy estimate ``nnforge.energy``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional


@dataclass(frozen=True)
class Traits:
    """Facts about an op that passes and targets ask for, instead of lists of names."""

    elementwise: bool = False  # output[i] depends on input[i] only (per operand, broadcast)
    channelwise: bool = False  # a per-channel map: channel c of the output reads channel c only
    keeps_type: bool = False  # the integer output has the input's type (pools, moves; rule keep or mean)
    table: bool = False  # integer form: a compile-time lookup table built from ``function``
    weights: bool = False  # may read constant operands quantized at the weight width (Dense, Conv, Mul, ...)
    window: bool = False  # sliding-window geometry (kernel_shape / strides / pads / dilations)
    join: bool = False  # combines two or more activations (Add, Mul, Concat)
    moves_data: bool = False  # only rearranges values (Reshape, Transpose, Resize nearest)
    float_only: bool = False  # no integer semantics: a pass must remove or lower it
    # y = W x + b with an exact accumulator; inputs x, W (output channel first), b (Dense, Conv)
    linear: bool = False


# how an op's output type is derived when quantizing (``OpDef.quant``)
QUANT_RULES = {
    "keep": "the input's type: the values are moved or selected, never rounded",
    "mean": "the input's type: a rounded mean of input values",
    "unsigned": "the input's width and frac, unsigned (negative values clamp to 0)",
    "calibrated": "from the calibrated range of the output",
    "sum": "from calibration; a constant operand at the activation width; with real scales "
           "each operand is rescaled by its own integer multiplier",
    "product": "from calibration; a constant operand at the weight width (a scale)",
    "weights": "from calibration; the weights and the accumulator's bias are quantized, a fused "
               "Relu makes the output unsigned",
    "scale_shift": "from calibration; the per-channel multiplier at the weight width, the shift at "
                   "the product's scale",
    "multiplier": "from calibration; the slope (``alpha``, or a constant slope per channel) becomes integer "
                  "multipliers with one power-of-two scale",
    "bounds": "the input's width and frac; the constant bounds rounded to it",
    "table": "a compile-time lookup table from ``function``; the output type holds ``value_range`` "
             "when it is given, else the calibrated range",
}

# the arithmetic of one output value of an op (``OpDef.arith``), which the first-order
# energy estimate (``nnforge.energy``) counts; ``n`` is the op's fan-in: the operands of an
# elementwise op, the cells of a window, the values reduced into one output. Every rule but
# "view" also reads the ``n`` input values (an elementwise op one value of each operand,
# constants included) and writes the output value once.
ARITH_RULES = {
    "mac": "per multiply-accumulate one multiply (the wider of input and weight) and one add at the "
           "accumulator width, reading the weight and the input; per output value its bias read and the "
           "requantization (a multiply where the multiplier is not a power of two, a rounding add where "
           "bits are dropped)",
    "add": "the operands aligned (a multiply each where its multiplier is not a power of two), n - 1 adds, "
           "a rounding add where bits are dropped",
    "pick": "the operands aligned as for add, n - 1 compares, a rounding add where bits are dropped",
    "max": "n - 1 compares",
    "sum": "n - 1 adds",
    "mean": "n - 1 adds and one multiply (the division by the count)",
    "multiply": "one multiply and a rounding add",
    "multiply_add": "one multiply, one add at the accumulator width and a rounding add",
    "select_multiply": "one compare (the sign) and one multiply, counted for every value, and a rounding add",
    "compare": "one compare",
    "clamp": "two compares",
    "lookup": "one table read",
    "move": "no arithmetic: the value is copied",
    "view": "nothing: the values stay where they are",
}


@dataclass(frozen=True)
class OpDef:
    name: str
    shape: Callable
    float_ref: Callable
    attrs: Mapping[str, Any] = None  # attribute schema: name -> default
    traits: Traits = Traits()
    int_ref: Optional[Callable] = None
    float16_ref: Optional[Callable] = None
    dynamic_ref: Optional[Callable] = None
    quantize: Optional[Callable] = None
    function: Optional[Callable] = None
    doc: str = ""
    quant: str = ""  # the quantization rule (a key of QUANT_RULES); "" for float-only ops
    value_range: Optional[tuple] = None  # table ops: (lo, hi) bounds of ``function``, if it has them
    refusal: str = ""  # float-only ops: why the quantizer cannot keep one (said to the user)
    onnx: str = ""  # the ONNX op that becomes this one node (one activation input, attributes
    #                 by name with this schema's defaults); "" when the frontend translates it itself
    # the arithmetic of one output value (a key of ARITH_RULES); by default "lookup" for a table
    # op, "move" for one that moves data, "mac" for a linear one, "" (not counted) otherwise
    arith: str = ""

    def __post_init__(self):
        if self.attrs is None:
            object.__setattr__(self, "attrs", {})
        if self.traits.table and self.function is None:
            raise TypeError(f"op {self.name}: a table op needs its float function")
        if self.traits.table and not self.quant:
            object.__setattr__(self, "quant", "table")
        if not self.arith:
            t = self.traits
            default = "lookup" if t.table else "move" if t.moves_data else "mac" if t.linear else ""
            object.__setattr__(self, "arith", default)
        if self.arith and self.arith not in ARITH_RULES:
            raise TypeError(f"op {self.name}: unknown arithmetic rule {self.arith!r}; "
                            f"rules are {sorted(ARITH_RULES)}")
        if self.quant and self.quant not in QUANT_RULES:
            raise TypeError(f"op {self.name}: unknown quantization rule {self.quant!r}; "
                            f"rules are {sorted(QUANT_RULES)}")
        if self.traits.keeps_type != (self.quant in ("keep", "mean")):
            raise TypeError(f"op {self.name}: the keeps_type trait and the rule {self.quant!r} disagree")
        if self.traits.float_only and (self.quant or self.quantize):
            raise TypeError(f"op {self.name}: a float-only op has no quantization rule")

    def has(self, **traits: bool) -> bool:
        """True when every named trait has the given value (``has(table=True)``)."""
        names = {f.name for f in fields(Traits)}
        unknown = set(traits) - names
        if unknown:
            raise TypeError(f"unknown op traits {sorted(unknown)}; traits are {sorted(names)}")
        return all(getattr(self.traits, k) == v for k, v in traits.items())


def keeps_scale(int_ref: Callable) -> Callable:
    """The dynamic reference of an op whose values keep their scale (pools, moves): its
    integer reference at the first input's run-time frac."""

    def dynamic_ref(node, g, inputs, fracs):
        return int_ref(node, g, inputs)[0], fracs[0], False

    return dynamic_ref
