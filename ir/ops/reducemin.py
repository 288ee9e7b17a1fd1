"""ReduceMin over axes of a sample: see :mod:`.reduce` for the attributes; the integer
minimum of the input's integers keeps the input type."""

from .base import OpDef, Traits
from .reduce import ATTRS, extreme_ref, float_ref_of, shape

DEF = OpDef(name="ReduceMin", shape=shape, float_ref=float_ref_of("ReduceMin"), int_ref=extreme_ref, quant="keep",
            attrs=ATTRS, traits=Traits(keeps_type=True), arith="max", doc="minimum over axes of a sample")
