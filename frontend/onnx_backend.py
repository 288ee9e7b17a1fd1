"""nnforge's float interpreter as an ``onnx.backend`` backend, so the ONNX project's own
backend test suite (node cases, pytorch-converted / pytorch-operator models) can run it.

nnforge treats a model input's first axis as the batch axis. The conformance cases give
inputs with a fixed first axis (``(3, 4, 5)`` for an elementwise op, ``(N, C, H, W)``
for a convolution): :func:`prepare` makes that axis symbolic, so it is the batch. A case
whose first axis is *not* a batch (a Softmax over axis 0, a Reshape that moves it, an
input without it) is refused by the importer with the reason, which the conformance
report lists.

nnforge compiles models whose weights are fixed. Where a case passes weights, biases or
shapes as graph inputs, the backend binds them as constants with the values given at
run time (and imports the model then): every input after the first, except numeric
inputs of exactly the first input's shape (those stay batched data, as in an Add of two
activations).

Integer and narrow float inputs are accepted where float32 computes the case exactly
(:mod:`.exact`); a run in which integer arithmetic would wrap around is refused.

An output is returned in the shape the model declares when that shape is static and
differs from nnforge's only by where the batch axis is folded in (Flatten with
axis > 1 gives ``(N * d1, rest)`` in ONNX; nnforge keeps ``(N, d1, rest)``: the same
values in the same order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from ..ir import Graph, run_float
from .exact import check_ranges
from .onnx_import import import_onnx


def with_symbolic_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs have a symbolic first axis."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name not in inits and len(dims) >= 1:
            dims[0].Clear()
            dims[0].dim_param = "N"
    return model


def bind_inputs(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` in which the named graph inputs are constants (initializers)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    if model.ir_version >= 4:  # before IR 4 every initializer must also be a graph input
        keep = [i for i in model.graph.input if i.name not in values]
        del model.graph.input[:]
        model.graph.input.extend(keep)
    for name, v in values.items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(v), name))
    return model


def _data_inputs(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def _is_batched_like(x: np.ndarray, first: np.ndarray) -> bool:
    return x.dtype.kind in "fiuV" and x.ndim >= 2 and x.shape == first.shape


def _import(model: onnx.ModelProto) -> Graph:
    return import_onnx(with_symbolic_batch(model), float_interpreter=True)


class NnforgeRep(BackendRep):
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.names = _data_inputs(model)
        self.graph: Graph | None = None if len(self.names) > 1 else _import(model)
        self.out_dtypes = [onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)
                           for o in model.graph.output]
        self.out_shapes = []
        for o in model.graph.output:
            dims = o.type.tensor_type.shape.dim
            static = len(dims) > 0 and all(d.HasField("dim_value") for d in dims)
            self.out_shapes.append(tuple(d.dim_value for d in dims) if static else None)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            inputs = [inputs[name] for name in self.names]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = [np.asarray(x) for x in inputs]
        graph = self.graph
        data = [0] + [i for i in range(1, len(inputs)) if _is_batched_like(inputs[i], inputs[0])]
        if graph is None:  # bind the weights given now, then import
            consts = {self.names[i]: inputs[i] for i in range(len(inputs)) if i not in data}
            graph = _import(bind_inputs(self.model, consts))
        env = run_float(graph, *[inputs[i] for i in data], keep=True)
        check_ranges(graph, env)
        outs = [env[t] for t in graph.outputs]
        results = []
        for y, dt, shape in zip(outs, self.out_dtypes, self.out_shapes, strict=True):
            y = np.asarray(y).astype(dt)
            if shape is not None and y.shape != shape and y.size == int(np.prod(shape)):
                y = y.reshape(shape)
            results.append(y)
        return tuple(results)


class NnforgeBackend(Backend):
    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs: Any) -> bool:
        return device == "CPU"

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> NnforgeRep:
        super().prepare(model, device, **kwargs)
        return NnforgeRep(model)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device, **kwargs).run(inputs)


prepare = NnforgeBackend.prepare
run_model = NnforgeBackend.run_model
supports_device = NnforgeBackend.supports_device
