"""Loading an ONNX model and making it ready to import: read the file within the limits,
check versions, wiring and sizes, upgrade an old opset, fix the batch axis to 1 and infer
shapes (without onnx's data propagation: see :mod:`.onnx_import`)."""

from __future__ import annotations

import os
from pathlib import Path

from . import limits
from .errors import ImportError_, UnsupportedOpError, node_label, one_line, q as qn
from .exact import is_exact_input
from .translate import DEFAULT_DOMAINS
from .validate import (check_model, check_tensor_sizes, check_value_shapes, check_versions, embed_external_data,
                       load_external_data)

MIN_OPSET = 11

FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def onnx_module():
    """The onnx package, imported on first use (keeps ``import nnforge`` light)."""
    import onnx

    return onnx


def load_model_proto(path: str | os.PathLike, max_elements: int | None = None):
    """Load an ONNX file: one line for anything that is not a model; every declared tensor
    within ``max_elements``; external tensor data only from regular files inside the
    model's folder, and only the bytes the tensor's shape needs."""
    onnx = onnx_module()
    max_elements = limits.check_max_elements(max_elements)
    path = Path(path)
    if not path.is_file():
        raise ImportError_(f"{path}: no such model file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImportError_(f"{path}: cannot read the model file ({e.strerror})") from None
    if not data:
        raise ImportError_(f"{path}: the file is empty, not an ONNX model")
    try:
        model = onnx.ModelProto.FromString(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ImportError_(f"{path}: not a readable ONNX model ({one_line(e)})") from None
    del data
    if not model.HasField("graph"):
        raise ImportError_(f"{path}: not an ONNX model (it holds no graph)")
    check_tensor_sizes(model, max_elements)
    load_external_data(model, path)
    return model


def self_contained_bytes(model, path: str | os.PathLike) -> bytes:
    """``model``, loaded from ``path`` by :func:`load_model_proto` (checked, its external
    tensor data read in), serialized as one file that holds all its data: what a process
    elsewhere needs to import the same model. The tensors that had external data are
    marked as holding it themselves."""
    embed_external_data(model)
    try:
        return model.SerializeToString()
    except Exception as e:  # protobuf refuses a message of 2 GiB or more (EncodeError and friends)
        raise ImportError_(f"{path}: the model cannot be sent as one ONNX file, which holds at most 2 GiB with its "
                           f"data ({one_line(e)})") from None


def default_opset(model) -> int:
    """The version of the default ONNX domain the model imports (0 when none)."""
    return next((imp.version for imp in model.opset_import if imp.domain in DEFAULT_DOMAINS), 0)


def prepare_model(model, max_elements: int, float_interpreter: bool = False):
    """``model`` checked, upgraded to at least opset :data:`MIN_OPSET`, with a batch axis
    of 1 and its shapes inferred (every inferred shape within ``max_elements``);
    ``float_interpreter``: see :func:`fix_batch`."""
    onnx = onnx_module()
    check_versions(model)
    refuse_unfoldable(model.graph.node)
    check_tensor_sizes(model, max_elements)
    check_model(model)
    model = fix_batch(upgrade(model), float_interpreter)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:
        raise ImportError_(f"ONNX shape inference failed: {one_line(e)}") from None
    check_value_shapes(model, max_elements)
    return model


def upgrade(model):
    """A model older than opset MIN_OPSET is upgraded with onnx's version converter."""
    onnx = onnx_module()
    from onnx import version_converter

    opset = default_opset(model)
    if opset >= MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as e:
        raise ImportError_(
            f"the model uses opset {opset}; nnforge needs opset {MIN_OPSET} or newer and onnx's "
            f"version converter could not upgrade it ({one_line(e)})"
        ) from e
    return upgraded


def fix_batch(model, float_interpreter: bool = False):
    """Give every graph input a batch axis of 1 so shapes become static. Inputs must be
    float tensors with a batch axis and at least one data axis; with
    ``float_interpreter`` (the graph only runs on the float interpreter) also of a type
    float32 holds exactly (:mod:`.exact`), and with the batch axis alone (each sample a
    scalar)."""
    onnx = onnx_module()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        if tt.elem_type not in FLOAT_TYPES and not (float_interpreter and is_exact_input(tt.elem_type)):
            raise ImportError_(f"model input {qn(inp.name)} is not a float tensor")
        dims = tt.shape.dim
        if len(dims) < (1 if float_interpreter else 2):
            raise ImportError_(
                f"model input {qn(inp.name)} needs a batch axis first and at least one data axis"
            )
        d0 = dims[0]
        if d0.HasField("dim_value") and d0.dim_value not in (0, 1):
            raise ImportError_(
                f"model input {qn(inp.name)} has a fixed batch size of {d0.dim_value}; export it "
                f"with batch 1 or a symbolic batch axis"
            )
        d0.Clear()
        d0.dim_value = 1
        for i, d in enumerate(dims[1:], 1):
            if not d.HasField("dim_value"):
                raise ImportError_(f"model input {qn(inp.name)}: axis {i} has no fixed size")
    # intermediate shapes were inferred for the old batch axis; recompute them
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    return model


def refuse_unfoldable(nodes) -> None:
    """Control flow and random number generators are neither compiled nor folded (a loop's
    trip count or a generator's output size are whatever the model says)."""
    for n in nodes:
        if n.domain not in DEFAULT_DOMAINS:
            continue
        if n.op_type in limits.CONTROL_FLOW:
            raise UnsupportedOpError(f"{node_label(n)}: control flow ({', '.join(limits.CONTROL_FLOW)}) is not "
                                     f"supported, and not folded even when its inputs are constants")
        if n.op_type in limits.RANDOM:
            raise UnsupportedOpError(f"{node_label(n)} draws random numbers; nnforge neither compiles nor folds "
                                     f"nondeterministic ops")
