"""ReduceMax over axes of a sample: see :mod:`.reduce` for the attributes; the integer
maximum of the input's integers keeps the input type."""

from .base import OpDef, Traits
from .reduce import ATTRS, extreme_ref, float_ref_of, shape

DEF = OpDef(name="ReduceMax", shape=shape, float_ref=float_ref_of("ReduceMax"), int_ref=extreme_ref, quant="keep",
            attrs=ATTRS, traits=Traits(keeps_type=True), arith="max", doc="maximum over axes of a sample")
