"""The frontend's errors, and how a model's names and onnx's messages appear in them.

Every module of the frontend (the importer, the checks, the translators) raises these;
they import nothing else of the frontend."""

from __future__ import annotations

from ..ir.text import name as model_name, printable

MESSAGE_LIMIT = 400  # characters kept of a message from onnx


class ModelImportError(Exception):
    """The model cannot be imported; the message says why and what would work."""


ImportError_ = ModelImportError


class UnsupportedOpError(ModelImportError):
    """The model uses an op nnforge does not compile (and cannot fold)."""


def q(s) -> str:
    """A model's name for a message: quoted, printable, cut."""
    return f"'{model_name(s)}'"


def node_label(node) -> str:
    return f"node {q(node.name or '(unnamed)')} ({model_name(node.op_type)})"


def one_line(e: BaseException) -> str:
    """An error from onnx (checker, shape inference, protobuf) as one printable line: its
    lines joined, the C++ context markers dropped, cut to a few hundred characters."""
    text = str(e) or type(e).__name__
    parts = [ln.strip() for ln in text.splitlines() if ln.strip()]
    joined = " ".join(p.removeprefix("==> Context:").strip() for p in parts)
    return printable(joined, MESSAGE_LIMIT)
