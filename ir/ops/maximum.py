"""Max of two operands (elementwise maximum, broadcast per sample): see :mod:`.minmax`
for the integer rule."""

from .base import OpDef, Traits
from .minmax import ATTRS, float_ref_of, int_ref, shape

DEF = OpDef(name="Max", shape=shape, float_ref=float_ref_of("Max"), int_ref=int_ref, quant="sum", attrs=ATTRS,
            traits=Traits(elementwise=True, join=True), arith="pick", doc="elementwise maximum of two operands")
