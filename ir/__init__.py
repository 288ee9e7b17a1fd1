"""The graph IR, the fixed-point contract and the interpreters. Imports nothing of ours."""

from .fixed import FixedType, dequantize, quantize_float, requantize, round_shift, saturate
from .graph import Graph, GraphError, Node, TensorInfo
from .interp import run_float, run_int

__all__ = [
    "FixedType", "Graph", "GraphError", "Node", "TensorInfo", "dequantize", "quantize_float",
    "requantize", "round_shift", "run_float", "run_int", "saturate",
]
