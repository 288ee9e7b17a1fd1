"""Frontends: model files in, :class:`nnforge.ir.Graph` out."""

from .load import self_contained_bytes
from .onnx_import import SUPPORTED_OPS, ImportError_ as ModelImportError, UnsupportedOpError, import_onnx

__all__ = ["SUPPORTED_OPS", "ModelImportError", "UnsupportedOpError", "import_onnx", "self_contained_bytes"]
