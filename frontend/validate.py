"""Checks of an ONNX model before nnforge computes anything from it: versions, graph
structure, declared tensor sizes and external data. Every problem is one line that names
the node or tensor (through :func:`nnforge.ir.text.name`)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import limits
from .errors import ModelImportError, node_label, one_line, q


def _onnx():
    import onnx

    return onnx


# ---- versions -----------------------------------------------------------------------------
DEFAULT_DOMAINS = ("", "ai.onnx")


def check_versions(model) -> None:
    """Refuse a model written for a newer ONNX than the installed onnx knows: its ops may
    mean something the installed schemas, shape inference and reference evaluator do not."""
    onnx = _onnx()
    known_opset, known_ir = onnx.defs.onnx_opset_version(), onnx.IR_VERSION
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS and imp.version > known_opset:
            raise ModelImportError(
                f"the model uses ONNX opset {imp.version}; the installed onnx {onnx.__version__} knows opsets up "
                f"to {known_opset}: upgrade onnx (pip install -U onnx) or export the model with opset "
                f"{known_opset} or older")
    if model.ir_version > known_ir:
        raise ModelImportError(
            f"the model has ONNX IR version {model.ir_version}; the installed onnx {onnx.__version__} knows IR "
            f"versions up to {known_ir}: upgrade onnx (pip install -U onnx) or save the model with an older IR version")


# ---- structure ----------------------------------------------------------------------------
def structure_problem(model) -> str | None:
    """What is wrong with the graph's wiring, as one line, or None: no outputs, no inputs,
    duplicate tensor names, a tensor nothing provides, a cycle, an output that is an input."""
    g = model.graph
    if not g.output:
        return "the model's graph has no outputs"
    inits = [t.name for t in g.initializer] + [t.values.name for t in g.sparse_initializer]
    seen: set[str] = set()
    for t in inits:
        if t in seen:
            return f"tensor {q(t)} is given twice as an initializer"
        seen.add(t)
    inputs = [i.name for i in g.input if i.name not in seen]
    if not inputs:
        return "the model has no inputs (every value is a constant); nnforge compiles a network computed from an input"
    producer: dict[str, object] = {}
    for n in g.node:
        for o in n.output:
            if not o:
                continue
            if o in producer:
                return f"tensor {q(o)} is written by {node_label(producer[o])} and by {node_label(n)}"
            if o in seen or o in inputs:
                return f"{node_label(n)} writes tensor {q(o)}, which is already a model input or initializer"
            producer[o] = n
    given = seen | set(inputs)
    for n in g.node:
        for i in n.input:
            if i and i not in producer and i not in given:
                return f"{node_label(n)} reads tensor {q(i)}, which no node, model input or initializer provides"
    cycle = _cycle(g.node, producer)
    if cycle:
        return f"the nodes {', '.join(node_label(n) for n in cycle[:4])} form a cycle"
    for o in g.output:
        if o.name in inputs:
            return f"model output {q(o.name)} is also a model input"
        if o.name not in producer and o.name not in given:
            return f"model output {q(o.name)} is not computed by any node"
    return None


def _cycle(nodes, producer: dict) -> list:
    """Nodes left over by a topological sort (those on or behind a cycle), in model order."""
    index = {id(n): k for k, n in enumerate(nodes)}
    deps = [{index[id(producer[i])] for i in n.input if i in producer} for n in nodes]
    users: dict[int, list[int]] = {}
    for k, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(k)
    waiting = [len(d) for d in deps]
    ready = [k for k, w in enumerate(waiting) if w == 0]
    done = 0
    while ready:
        k = ready.pop()
        done += 1
        for u in users.get(k, ()):
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    return [] if done == len(nodes) else [n for k, n in enumerate(nodes) if waiting[k] > 0]


def check_model(model) -> None:
    """onnx.checker, with a failure as one line (our own diagnosis of the wiring when it
    finds one: it names the node and tensor more plainly), then the wiring checks the
    checker lets through."""
    onnx = _onnx()
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError, and protobuf's own errors
        problem = structure_problem(model) or one_line(e)
        raise ModelImportError(f"the model fails onnx.checker: {problem}") from e
    problem = structure_problem(model)
    if problem:
        raise ModelImportError(problem)


# ---- declared tensor sizes ----------------------------------------------------------------
def _constant_tensors(model):
    """(label, TensorProto or SparseTensorProto dims holder) of every constant the model declares."""
    g = model.graph
    for t in g.initializer:
        yield f"initializer {q(t.name)}", t
    for t in g.sparse_initializer:
        yield f"sparse initializer {q(t.values.name)}", t
    for n in _all_nodes(g):
        for a in n.attribute:
            if a.HasField("t"):
                yield f"the tensor attribute {q(a.name)} of {node_label(n)}", a.t
            if a.HasField("sparse_tensor"):
                yield f"the sparse tensor attribute {q(a.name)} of {node_label(n)}", a.sparse_tensor
            for t in a.tensors:
                yield f"a tensor attribute {q(a.name)} of {node_label(n)}", t


def _all_nodes(g, depth: int = 0):
    """Nodes of ``g`` and of its subgraphs (bounded depth)."""
    for n in g.node:
        yield n
        if depth < 8:
            for a in n.attribute:
                if a.HasField("g"):
                    yield from _all_nodes(a.g, depth + 1)
                for sub in a.graphs:
                    yield from _all_nodes(sub, depth + 1)


def check_tensor_sizes(model, max_elements: int) -> None:
    """Every constant the model declares (initializers, Constant values, tensor
    attributes) and every graph input / output / value_info shape within ``max_elements``."""
    for label, t in _constant_tensors(model):
        problem = limits.over(label, t.dims, max_elements)
        if problem:
            raise ModelImportError(problem)
    check_value_shapes(model, max_elements)


def check_value_shapes(model, max_elements: int, producer: dict | None = None) -> None:
    """Every static shape the graph declares or inference found (inputs, outputs,
    value_info) within ``max_elements``; ``producer`` names the node writing a tensor."""
    g = model.graph
    producer = producer if producer is not None else {o: n for n in g.node for o in n.output if o}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value for d in tt.shape.dim if d.HasField("dim_value")]
        n = producer.get(vi.name)
        label = f"tensor {q(vi.name)}" + (f" (output of {node_label(n)})" if n is not None else "")
        problem = limits.over(label, dims, max_elements)
        if problem:
            raise ModelImportError(problem)


# ---- external data ------------------------------------------------------------------------
def _data_bytes(t) -> int | None:
    """Bytes a tensor's data takes (None for strings and unknown types)."""
    onnx = _onnx()
    n = limits.count(t.dims)
    if t.data_type in _packed_types():
        return (n * _packed_types()[t.data_type] + 7) // 8
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except Exception:
        return None
    return None if t.data_type == onnx.TensorProto.STRING else n * itemsize


def _packed_types() -> dict[int, int]:
    """Sub-byte element types -> bits per element."""
    onnx = _onnx()
    names = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}
    return {getattr(onnx.TensorProto, k): v for k, v in names.items() if hasattr(onnx.TensorProto, k)}


def load_external_data(model, path: Path) -> None:
    """Read every external tensor's bytes into the model: only regular files inside the
    model's folder, exactly the bytes its shape needs (never more than the file holds)."""
    from onnx import external_data_helper

    base = path.resolve().parent
    for _, tensor in _constant_tensors(model):
        if hasattr(tensor, "data_location") and external_data_helper.uses_external_data(tensor):
            _load_one(tensor, path, base)


def embed_external_data(model) -> None:
    """Mark every tensor whose external data :func:`load_external_data` read in as holding
    its data itself, so that the model serializes as one self-contained file."""
    from onnx import TensorProto, external_data_helper

    for _, tensor in _constant_tensors(model):
        if hasattr(tensor, "data_location") and external_data_helper.uses_external_data(tensor):
            tensor.data_location = TensorProto.DEFAULT
            del tensor.external_data[:]


def _load_one(tensor, path: Path, base: Path) -> None:
    info = {e.key: e.value for e in tensor.external_data}
    loc = info.get("location", "")
    what = f"{path}: tensor {q(tensor.name)}"
    target = (base / loc).resolve()
    if not loc or os.path.isabs(loc) or not target.is_relative_to(base):
        raise ModelImportError(f"{what} stores its data at {q(loc)}, outside the model's folder; refusing to read it")
    try:
        st = os.stat(target)
    except OSError:
        raise ModelImportError(f"{what}: external data file {q(loc)} is missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelImportError(f"{what}: external data file {q(loc)} is not a regular file; refusing to read it")
    need = _data_bytes(tensor)
    if need is None:
        raise ModelImportError(f"{what}: external data of type {tensor.data_type} is not supported")
    try:
        offset = int(info.get("offset", 0) or 0)
        length = int(info.get("length", need) or need)
    except ValueError:
        raise ModelImportError(f"{what}: external data offset / length are not integers") from None
    if offset < 0 or length != need:
        raise ModelImportError(f"{what}: external data says {length} bytes at offset {offset}, but its shape needs "
                               f"{need} bytes")
    if offset + need > st.st_size:
        raise ModelImportError(f"{what}: external data file {q(loc)} holds {st.st_size} bytes, too few for {need} "
                               f"bytes at offset {offset}")
    _set_entry(tensor, "length", str(need))
    _set_entry(tensor, "offset", str(offset))
    from onnx import external_data_helper

    try:  # now exactly `need` bytes from a regular file that holds them
        external_data_helper.load_external_data_for_tensor(tensor, str(base))
    except Exception as e:
        raise ModelImportError(f"{what}: cannot read external data file {q(loc)} ({one_line(e)})") from None
    if len(tensor.raw_data) != need:
        raise ModelImportError(f"{what}: external data file {q(loc)} ended early")


def _set_entry(tensor, key: str, value: str) -> None:
    for e in tensor.external_data:
        if e.key == key:
            e.value = value
            return
    entry = tensor.external_data.add()
    entry.key, entry.value = key, value
