"""ReduceSum over axes of a sample: see :mod:`.reduce` for the attributes, the exact sum
and its one rounding into the calibrated output type."""

from .base import OpDef
from .reduce import ATTRS, float_ref_of, quantize_sum, shape, sum_ref

DEF = OpDef(name="ReduceSum", shape=shape, float_ref=float_ref_of("ReduceSum"), int_ref=sum_ref, quant="calibrated",
            quantize=quantize_sum, attrs=ATTRS, arith="sum", doc="sum over axes of a sample")
