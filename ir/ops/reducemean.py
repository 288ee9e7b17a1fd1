"""ReduceMean over axes of a sample: see :mod:`.reduce` for the attributes, the exact sum
and its one rounding into the calibrated output type."""

from .base import OpDef
from .reduce import ATTRS, float_ref_of, quantize_sum, shape, sum_ref

DEF = OpDef(name="ReduceMean", shape=shape, float_ref=float_ref_of("ReduceMean"), int_ref=sum_ref, quant="calibrated",
            quantize=quantize_sum, attrs=ATTRS, arith="mean", doc="mean over axes of a sample")
