"""Min of two operands (elementwise minimum, broadcast per sample): see :mod:`.minmax`
for the integer rule."""

from .base import OpDef, Traits
from .minmax import ATTRS, float_ref_of, int_ref, shape

DEF = OpDef(name="Min", shape=shape, float_ref=float_ref_of("Min"), int_ref=int_ref, quant="sum", attrs=ATTRS,
            traits=Traits(elementwise=True, join=True), arith="pick", doc="elementwise minimum of two operands")
