"""Passes over the graph IR. Each is a plain function ``(Graph) -> bool`` (changed) or
returns a new graph; :data:`FLOAT_PIPELINE` lists, by reference and in order, what runs
before calibration. Every pass runs a bounded number of times (once here)."""

from __future__ import annotations

from ..ir import Graph
from .calibrate import METHODS, Range, calibrate, calibrate_minmax, choose_range, observe, parse_method
from .batchnorm import fold_batchnorm
from .canonicalize import gemm_to_dense, matmul_add_to_dense
from .affine import fold_affine_into_linear
from .fuse import fuse_dense_relu
from .pad import fold_pad_into_conv
from .quantize import QuantConfig, QuantizeError, drop_output_softmax, quantize
from .rules import RULES

FLOAT_PIPELINE = (*RULES, gemm_to_dense, matmul_add_to_dense, fold_pad_into_conv, fold_batchnorm,
                  fold_affine_into_linear, fuse_dense_relu, drop_output_softmax)


def run_float_pipeline(g: Graph, verify: bool = True) -> Graph:
    g = g.copy()
    for p in FLOAT_PIPELINE:
        p(g)
        if verify:
            g.verify()
    return g


__all__ = [
    "FLOAT_PIPELINE", "METHODS", "QuantConfig", "QuantizeError", "Range", "calibrate", "calibrate_minmax",
    "choose_range", "observe", "parse_method",
    "drop_output_softmax", "fold_affine_into_linear", "fold_batchnorm", "fold_pad_into_conv", "fuse_dense_relu", "gemm_to_dense", "matmul_add_to_dense",
    "quantize", "run_float_pipeline",
]
