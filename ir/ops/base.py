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
    dynamic_ref(node, g, inputs) -> list[np.ndarray]  dynamic (runtime-scaled) int8
    quantize(q, node, ctx) -> None                    sets the output type (and any
                                                      integer attributes) when quantizing
    function(attrs, x) -> np.ndarray                  table ops: the float64 function of
                                                      one value, from which the
                                                      quantizer builds the table
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional


@dataclass(frozen=True)
class Traits:
    """Facts about an op that passes and targets ask for, instead of lists of names."""

    elementwise: bool = False  # output[i] depends on input[i] only (per operand, broadcast)
    channelwise: bool = False  # a per-channel map: channel c of the output reads channel c only
    keeps_type: bool = False  # the integer output has the input's type (no rounding: pools, moves)
    table: bool = False  # integer form: a compile-time lookup table built from ``function``
    weights: bool = False  # reads constant weight operands (Dense, Conv, ...)
    window: bool = False  # sliding-window geometry (kernel_shape / strides / pads / dilations)
    join: bool = False  # combines two or more activations (Add, Mul, Concat)
    moves_data: bool = False  # only rearranges values (Reshape, Transpose, Resize nearest)
    float_only: bool = False  # no integer semantics: a pass must remove or lower it


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

    def __post_init__(self):
        if self.attrs is None:
            object.__setattr__(self, "attrs", {})
        if self.traits.table and self.function is None:
            raise TypeError(f"op {self.name}: a table op needs its float function")

    def has(self, **traits: bool) -> bool:
        """True when every named trait has the given value (``has(table=True)``)."""
        names = {f.name for f in fields(Traits)}
        unknown = set(traits) - names
        if unknown:
            raise TypeError(f"unknown op traits {sorted(unknown)}; traits are {sorted(names)}")
        return all(getattr(self.traits, k) == v for k, v in traits.items())
