"""Frontends: model files in, :class:`nnforge.ir.Graph` out."""

from .onnx_import import (SUPPORTED_OPS, ImportError_ as ModelImportError, UnsupportedOpError, import_onnx,
                          import_self_contained)

__all__ = ["SUPPORTED_OPS", "ModelImportError", "UnsupportedOpError", "import_onnx", "import_self_contained"]
