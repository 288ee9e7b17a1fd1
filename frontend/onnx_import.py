"""ONNX -> Graph. The only module of nnforge that imports onnx.

The model is checked with ``onnx.checker``, its batch axis is fixed to 1 and shapes are
inferred, without onnx's data propagation (it computes the values of constant tensors,
however large, before any budget is checked): shapes that only those values determine
come from folding and from the IR graph, checked against the limits before anything is
allocated. Every node whose inputs are all known constants (including ``Shape`` of a
statically shaped tensor) is folded with onnx's own reference evaluator; the remaining
nodes are lowered to IR ops with per-sample shapes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..ir import Graph, Node
from . import limits
from . import ops_math  # noqa: F401  (registers its translators)
from .translate import TRANSLATORS
from .validate import (ModelImportError, check_model, check_tensor_sizes, check_value_shapes, check_versions,
                       load_external_data, node_label, one_line, q as qn)

MIN_OPSET = 11

# ONNX op type -> what it becomes. Anything else must be constant-foldable.
SUPPORTED_OPS = (
    "Add", "Cast", "Constant", "Dropout", "Flatten", "Gemm", "Identity", "MatMul", "Relu",
    "Reshape", "Softmax", "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
    "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    "Conv", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "ReduceMean", "Mul", "Sum", "Concat", "Transpose", "Squeeze", "Unsqueeze", "LRN",
    "LeakyRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Resize", "Upsample", "Pad",
)

_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn", "qonnx")


def _is_qonnx(onode) -> bool:
    """A QONNX quantization node (Brevitas / QKeras exports through qonnx)."""
    return onode.domain in QONNX_DOMAINS and onode.op_type in ("Quant", "BipolarQuant")


def _int_bits(dtype) -> int:
    """Width of an integer dtype (0 for anything else)."""
    dtype = np.dtype(dtype)
    return dtype.itemsize * 8 if np.issubdtype(dtype, np.integer) else 0


ImportError_ = ModelImportError


class UnsupportedOpError(ImportError_):
    pass


def _onnx():
    import onnx  # local: keeps `import nnforge` light

    return onnx


def load_model_proto(path: str | os.PathLike, max_elements: int | None = None):
    """Load an ONNX file: one line for anything that is not a model; every declared tensor
    within ``max_elements``; external tensor data only from regular files inside the
    model's folder, and only the bytes the tensor's shape needs."""
    onnx = _onnx()
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


def import_onnx(model_or_path, max_elements: int | None = None) -> Graph:
    """Import an ONNX model (a path or a ModelProto) into a :class:`Graph`; no tensor may
    hold more than ``max_elements`` elements (:mod:`.limits`)."""
    onnx = _onnx()
    max_elements = limits.check_max_elements(max_elements)
    if isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
    else:
        model = load_model_proto(model_or_path, max_elements)
    return _Importer(model, max_elements).run()


class _FoldBudget:
    """What constant folding may still produce and spend (:mod:`.limits`): every result
    within ``max_elements``, all results within ``FOLD_TOTAL_FACTOR`` times that, each
    node's work within ``FOLD_WORK`` and the whole within ``FOLD_SECONDS``."""

    def __init__(self, max_elements: int) -> None:
        self.max_elements = max_elements
        self.total_limit = limits.FOLD_TOTAL_FACTOR * max_elements
        self.total = 0
        self.t0 = time.monotonic()

    def check_time(self, onode) -> None:
        spent = time.monotonic() - self.t0
        if spent > limits.FOLD_SECONDS:
            raise ImportError_(f"constant folding stopped at {node_label(onode)}: it has taken {spent:.1f} s, over "
                               f"the limit of {limits.FOLD_SECONDS:.0f} s")

    def before(self, onode, feeds: dict, shapes) -> None:
        """Refuse to compute ``onode`` when its outputs' ``shapes`` (from shape inference;
        a string: the error it raised) are too large, unknown for an op whose result size
        depends on its input values, or would take too much work."""
        if isinstance(shapes, str):
            if onode.op_type in limits.GROWING:
                raise ImportError_(f"constant folding of {node_label(onode)} refused: onnx shape inference fails "
                                   f"on its inputs ({shapes})")
            return
        known = 0
        for out, shape in zip(onode.output, shapes):
            if shape is None:
                if onode.op_type in limits.GROWING:
                    raise ImportError_(f"constant folding of {node_label(onode)} refused: the size of its output "
                                       f"{qn(out)} cannot be known before computing it")
                continue
            self._check(onode, out, shape)
            known += limits.count(shape)
        self._check_total(onode, known)
        in_shapes = [np.shape(v) if isinstance(v, np.ndarray) else (len(v),) for v in feeds.values()]
        work = limits.fold_work(onode.op_type, in_shapes, known)
        if work > limits.FOLD_WORK:
            raise ImportError_(f"constant folding of {node_label(onode)} refused: it would take about {work} "
                               f"multiply-adds or element steps, over the limit of {limits.FOLD_WORK} per node")

    def produced(self, onode, outs: list) -> None:
        """Count what folding ``onode`` produced (checked again now that it is known)."""
        n = 0
        for out, v in zip(onode.output, outs):
            shape = np.shape(v) if isinstance(v, np.ndarray) else (sum(np.size(x) for x in v),)
            self._check(onode, out, shape)
            n += limits.count(shape)
        self._check_total(onode, n)
        self.total += n

    def _check(self, onode, out: str, shape) -> None:
        problem = limits.over(f"tensor {qn(out)} (output of {node_label(onode)}, constant-folded)", shape,
                              self.max_elements)
        if problem:
            raise ImportError_(problem)

    def _check_total(self, onode, n: int) -> None:
        if self.total + n > self.total_limit:
            raise ImportError_(
                f"constant folding of {node_label(onode)} refused: the folded constants would hold "
                f"{self.total + n} elements, over the limit of {self.total_limit} ({limits.FOLD_TOTAL_FACTOR} x "
                f"the per-tensor limit; raise it with {limits.OPTION})")


class _Importer:
    def __init__(self, model, max_elements: int = limits.DEFAULT_MAX_ELEMENTS) -> None:
        onnx = _onnx()
        self.max_elements = max_elements
        check_versions(model)
        _refuse_unfoldable(model.graph.node)
        check_tensor_sizes(model, max_elements)
        check_model(model)
        # the opset the model was written in (Resize-10 and Upsample mean asymmetric / floor
        # even after the version converter has made them Resize-11 without those attributes)
        self.source_opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 0)
        model = self._upgrade(model)
        self.opsets = {("" if imp.domain == "ai.onnx" else imp.domain): imp.version for imp in model.opset_import}
        self.opset = self.opsets.get("", 0)
        self.model = self._fix_batch(model)
        try:
            self.model = onnx.shape_inference.infer_shapes(self.model, strict_mode=True)
        except Exception as e:
            raise ImportError_(f"ONNX shape inference failed: {one_line(e)}") from None
        check_value_shapes(self.model, max_elements)
        graph = self.model.graph
        self.g = Graph(_clean_name(graph.name) or "model")
        self.values: dict[str, np.ndarray] = {}  # known constants
        self.alias: dict[str, str] = {}  # tensor -> tensor it is identical to
        self.full_shapes: dict[str, tuple[int, ...]] = {}  # with the batch axis
        # constants made by DequantizeLinear: the integers' scale, zero point, axis, width
        self.dequantized: dict[str, dict] = {}
        self.quantized: dict[str, tuple] = {}  # QuantizeLinear output -> (scale, zero, lo, hi)
        # DynamicQuantizeLinear outputs: the run-time scale and zero point, stand-ins for 1 and 0
        self.dynamic_params: set[str] = set()
        self.folding = _FoldBudget(max_elements)
        from onnx import numpy_helper

        for init in graph.initializer:
            try:
                self.values[init.name] = numpy_helper.to_array(init)
            except Exception as e:
                raise ImportError_(f"initializer {qn(init.name)} does not hold the data its shape and type "
                                   f"declare ({one_line(e)})") from None
        for vi in list(graph.value_info) + list(graph.output):
            self._record_shape(vi)

    @staticmethod
    def _upgrade(model):
        """A model older than opset MIN_OPSET is upgraded with onnx's version converter."""
        onnx = _onnx()
        from onnx import version_converter

        opset = next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 0)
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

    @staticmethod
    def _fix_batch(model):
        """Give every graph input a batch axis of 1 so shapes become static."""
        onnx = _onnx()
        model = onnx.ModelProto.FromString(model.SerializeToString())
        inits = {i.name for i in model.graph.initializer}
        for inp in model.graph.input:
            if inp.name in inits:
                continue
            tt = inp.type.tensor_type
            if tt.elem_type not in _FLOAT_TYPES:
                raise ImportError_(f"model input {qn(inp.name)} is not a float tensor")
            dims = tt.shape.dim
            if len(dims) < 2:
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

    def _record_shape(self, vi) -> None:
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            self.full_shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)

    # ---- helpers --------------------------------------------------------------------
    def _name(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def _full_shape(self, t: str) -> tuple[int, ...] | None:
        """The shape of tensor ``t`` with the batch axis: as onnx shape inference found it,
        else (shape inference runs without data propagation, so it does not know the shapes
        after a Reshape to a computed shape) as the IR graph computes it."""
        if t in self.full_shapes:
            return self.full_shapes[t]
        return (1, *self.g.shape(self._name(t))) if self._is_activation(t) else None

    def const(self, t: str) -> np.ndarray | None:
        return self.values.get(t)

    def _is_activation(self, t: str) -> bool:
        return self._name(t) in self.g.tensors and not self.g.is_const(self._name(t))

    def _add_const(self, base: str, value: np.ndarray) -> str:
        return self.g.add_const(self.g.fresh_name(base), np.asarray(value, dtype=np.float32))

    def emit(self, onode, op: str, inputs: list[str], attrs: dict | None = None) -> None:
        out = onode.output[0]
        name = self.g.fresh_name(onode.name or f"{onode.op_type}_{len(self.g)}")
        self.g.add_node(Node(name, op, inputs, [out], attrs or {}))

    def _fold(self, onode) -> bool:
        """Evaluate a node whose inputs are all known; True if it was folded."""
        ins = [i for i in onode.input if i]
        full = self._full_shape(ins[0]) if onode.op_type == "Shape" and ins and ins[0] not in self.values else None
        if full is not None:
            shape = np.array(full, dtype=np.int64)
            start = next((a.i for a in onode.attribute if a.name == "start"), 0)
            end = next((a.i for a in onode.attribute if a.name == "end"), None)
            self.values[onode.output[0]] = shape[start:end]
            return True
        if not all(i in self.values for i in ins):
            return False
        self.folding.check_time(onode)
        if onode.op_type in ("DequantizeLinear", "QuantizeLinear") or _is_qonnx(onode):
            (self._fold_quantize if onode.op_type == "QuantizeLinear" else self._fold_dequantize)(onode)
            self.folding.produced(onode, [self.values[o] for o in onode.output[:1]])
            return True
        from onnx.reference import ReferenceEvaluator

        feeds = {f"i{k}": self.values[i] for k, i in enumerate(onode.input) if i}
        self.folding.before(onode, feeds, self._fold_shapes(onode, feeds))
        try:
            outs = ReferenceEvaluator(self._fold_graph(onode, feeds), opsets=self.opsets).run(None, feeds)
        except Exception as e:
            raise ImportError_(f"constant folding of {node_label(onode)} failed: {one_line(e)}") from None
        outs = [np.asarray(v) if not isinstance(v, list) else v for v in outs]
        self.folding.produced(onode, outs)
        for name, v in zip(onode.output, outs):
            if name:
                self.values[name] = v
        return True

    def _fold_graph(self, onode, feeds: dict, small: dict | None = None):
        """``onode`` alone in a graph reading ``feeds`` (a bare NodeProto would be evaluated
        with the newest opset's semantics; a one-node graph runs the model's own op
        versions). ``small``: feeds given as initializers, so shape inference sees their
        values; the others are typed inputs of their shape."""
        from onnx import helper, numpy_helper

        node = helper.make_node(onode.op_type, [f"i{k}" if i else "" for k, i in enumerate(onode.input)],
                                [f"o{k}" for k in range(len(onode.output))], domain=onode.domain)
        node.attribute.extend(onode.attribute)
        if small is None:
            inputs = [helper.make_empty_tensor_value_info(f) for f in feeds]
            inits = []
        else:
            inputs = [helper.make_tensor_value_info(f, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                      for f, v in feeds.items() if f not in small]
            inits = [numpy_helper.from_array(v, f) for f, v in small.items()]
        return helper.make_graph([node], "fold", inputs, [helper.make_empty_tensor_value_info(o) for o in node.output],
                                 inits)

    def _fold_shapes(self, onode, feeds: dict):
        """The shapes of ``onode``'s outputs (None where unknown) as onnx shape inference
        finds them from the actual inputs, before anything is computed; or the error
        shape inference raised."""
        onnx = _onnx()
        from onnx import helper

        if not all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in feeds.values()):
            return [None] * len(onode.output)
        small = {f: v for f, v in feeds.items() if v.size <= 4096}
        model = helper.make_model(self._fold_graph(onode, feeds, small),
                                  opset_imports=[helper.make_opsetid(d, v) for d, v in self.opsets.items()])
        model.ir_version = self.model.ir_version
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except Exception as e:
            return one_line(e)
        types = {vi.name: vi.type for vi in list(inferred.graph.output) + list(inferred.graph.value_info)}
        shapes = []
        for k in range(len(onode.output)):
            t = types.get(f"o{k}")
            tt = t.tensor_type if t is not None and t.HasField("tensor_type") else None
            dims = tt.shape.dim if tt is not None and tt.HasField("shape") else None
            shapes.append(tuple(d.dim_value for d in dims) if dims is not None and all(d.HasField("dim_value")
                                                                                     for d in dims) else None)
        return shapes

    def _fold_dequantize(self, onode) -> None:
        """A DequantizeLinear of constants (weights, biases): ``(q - zero) * scale`` in float32,
        the scale and zero point per tensor, along ``axis`` (1-D) or broadcast numpy-style
        (rank > 1); the integers' scale and width are remembered. A QONNX Quant /
        BipolarQuant of constants likewise (:meth:`_fold_qonnx`)."""
        if _is_qonnx(onode):
            return self._fold_qonnx(onode)
        ins = list(onode.input)
        q = self.values[ins[0]]
        a = self.attrs(onode)
        if a.get("block_size"):
            raise ImportError_(f"node {qn(onode.name)}: blocked DequantizeLinear is not supported")
        self._dequantized_const(onode.output[0], q, self.values[ins[1]],
                                self.values[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(1, dtype=np.int64),
                                int(a.get("axis", 1)), _int_bits(q.dtype), onode)

    def _fold_quantize(self, onode) -> None:
        """A QuantizeLinear of constants: ``saturate(round_half_even(x / scale) + zero)`` in the
        zero point's integer type, scale and zero point as in :meth:`_fold_dequantize`."""
        ins = list(onode.input) + ["", ""]
        x = np.asarray(self.values[ins[0]])  # divided in its own precision, as onnx does
        a = self.attrs(onode)
        if a.get("block_size"):
            raise ImportError_(f"node {qn(onode.name)}: blocked QuantizeLinear is not supported")
        zero = self.values[ins[2]] if ins[2] else np.zeros(1, dtype={3: np.int8, 5: np.int16, 4: np.uint16}.get(
            a.get("output_dtype", 2), np.uint8))
        dtype = np.dtype(zero.dtype)
        if not _int_bits(dtype):
            raise ImportError_(f"node {qn(onode.name)}: QuantizeLinear to {dtype} is not supported")
        scale, z, _ = _broadcast_qparams(onode, x.shape, self.values[ins[1]], zero, int(a.get("axis", 1)))
        info = np.iinfo(dtype)
        q = np.clip(np.rint(x / scale.astype(x.dtype)).astype(np.float64) + z, info.min, info.max)
        self.values[onode.output[0]] = q.astype(dtype)

    def _dequantized_const(self, name: str, q: np.ndarray, scale, zero, axis: int | None, bits: int,
                           onode=None) -> str:
        """The constant ``(q - zero) * scale`` (float32; scale and zero per tensor, along
        ``axis`` or broadcast: :func:`_broadcast_qparams`) under ``name``, remembering the
        integers' scale, zero point, axis and width (what :meth:`_weight_const` keeps) when
        the scale is per tensor or per channel."""
        s, z, axis = _broadcast_qparams(onode, q.shape, scale, zero, axis)
        self.values[name] = ((q.astype(np.int64) - z).astype(np.float32) * s.astype(np.float32)).astype(np.float32)
        per_channel = axis is not None and all(d == 1 for i, d in enumerate(z.shape) if i != axis)
        self.dequantized[name] = {"scale": s.astype(np.float64).reshape(-1), "zero": z.reshape(-1),
                                  "axis": axis if axis is not None else 0, "bits": bits if per_channel else 0}
        return name

    # ---- the walk -------------------------------------------------------------------
    def run(self) -> Graph:
        onnx_graph = self.model.graph
        inits = {i.name for i in onnx_graph.initializer}
        for inp in onnx_graph.input:
            if inp.name in inits:
                continue
            dims = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
            self.full_shapes[inp.name] = dims
            self.g.add_input(inp.name, dims[1:])

        pending = [n for n in onnx_graph.node]
        unsupported = [
            n for n, foldable in zip(pending, self._foldable())
            if n.op_type not in SUPPORTED_OPS and n.op_type not in TRANSLATORS and n.domain in ("", "ai.onnx") and not foldable
        ] + [n for n in pending if n.domain not in ("", "ai.onnx") and not _is_qonnx(n)
             and not (n.domain == "com.microsoft" and n.op_type in ("QGemm", "QLinearAdd", "QLinearSoftmax"))]
        if unsupported:
            first = unsupported[0]
            others = "" if len(unsupported) == 1 else f" (and {len(unsupported) - 1} more unsupported nodes)"
            raise UnsupportedOpError(
                f"node {qn(first.name or '(unnamed)')} has op type {qn(first.op_type)}"
                f"{' in domain ' + qn(first.domain) if first.domain else ''}, which nnforge does not "
                f"support{others}. Supported ops: {', '.join(sorted(set(SUPPORTED_OPS) | set(TRANSLATORS)))} (and any op whose "
                f"inputs are all constants, which is folded)."
            )
        for onode in pending:
            if self._fold(onode):
                continue
            translator = TRANSLATORS.get(onode.op_type)
            if translator is not None:
                translator(self, onode)
            else:
                getattr(self, f"_op_{onode.op_type}")(onode)
            self._check_emitted(onode)

        for out in onnx_graph.output:
            t = self._name(out.name)
            if t not in self.g.tensors or self.g.is_const(t):
                raise ImportError_(f"model output {qn(out.name)} does not depend on the input")
            self.g.outputs.append(t)
        self.g.prune()
        self.g.meta["opset"] = self.opset
        self.g.verify()
        return self.g

    def _check_emitted(self, onode) -> None:
        """The outputs of a lowered node within ``max_elements``, from their shapes in the IR
        graph (before anything is computed): onnx shape inference, which does not propagate
        values, does not know them after a Reshape or Resize to a computed shape."""
        for out in onode.output:
            full = self._full_shape(out) if out else None
            problem = full is not None and limits.over(f"tensor {qn(out)} (output of {node_label(onode)})", full,
                                                       self.max_elements)
            if problem:
                raise ImportError_(problem)

    def _foldable(self) -> list[bool]:
        """Per node, in one pass: will it be folded (its inputs are all constants, or it is
        the Shape of a tensor)? An unsupported op is acceptable only then."""
        known = set(self.values)
        result = []
        for n in self.model.graph.node:
            foldable = n.op_type == "Shape" or all(i in known for i in n.input if i)
            if foldable:
                known.update(o for o in n.output if o)
            result.append(foldable)
        return result

    # ---- per op ---------------------------------------------------------------------
    def attrs(self, onode) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in onode.attribute}

    def activation_input(self, onode, i: int = 0) -> str:
        t = onode.input[i]
        if not self._is_activation(t):
            raise ImportError_(f"node {qn(onode.name)} ({onode.op_type}): input {i} must be computed from the model input")
        return self._name(t)

    def _op_Identity(self, onode) -> None:
        self.alias[onode.output[0]] = self.activation_input(onode)

    def _op_Dropout(self, onode) -> None:
        if len(onode.input) > 2 and onode.input[2]:
            mode = self.const(onode.input[2])
            if mode is None or bool(mode):
                raise ImportError_(f"node {qn(onode.name)}: Dropout in training mode cannot be compiled")
        self.alias[onode.output[0]] = self.activation_input(onode)
        if len(onode.output) > 1 and onode.output[1] and self._is_read(onode.output[1]):
            raise ImportError_(f"node {qn(onode.name)}: the Dropout mask output is not supported")

    def _is_read(self, tensor: str) -> bool:
        """Whether any node or graph output reads ``tensor``."""
        graph = self.model.graph
        return any(tensor in n.input for n in graph.node) or any(o.name == tensor for o in graph.output)

    def _op_Cast(self, onode) -> None:
        to = self.attrs(onode).get("to")
        if to not in (1, 11):  # FLOAT, DOUBLE: exact for the float32 values nnforge computes
            raise ImportError_(
                f"node {qn(onode.name)}: only Cast to float32 or float64 is supported (other targets change values)"
            )
        self.alias[onode.output[0]] = self.activation_input(onode)

    def _weight_const(self, base: str, source: str, value: np.ndarray, out_axis: int) -> str:
        """Add weights; if the model dequantized them from integers whose scale is per tensor
        or per output channel (``out_axis`` of the source array) with zero point 0, record
        the scale per output channel in ``meta['weight_scales']`` (the quantizer keeps it)."""
        name = self._add_const(base, value)
        dq = self.dequantized.get(source)
        if dq is not None and not np.any(dq["zero"]) and dq["bits"]:
            sc = dq["scale"].reshape(-1)
            axis = dq["axis"] % max(self.values[source].ndim, 1)
            if sc.size == 1 or axis == out_axis:
                self.g.meta.setdefault("weight_scales", {})[name] = {"scale": sc.tolist(), "bits": dq["bits"]}
        return name

    def _qonnx_attrs(self, onode) -> dict:
        """A QONNX Quant / BipolarQuant as the attributes of the IR op Quant, with the scale
        as an array (per tensor or per channel) and the integer width of its values."""
        ins = list(onode.input)
        consts = [self.const(t) for t in ins[1:]]
        if any(c is None for c in consts):
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs constant scale, zero point and width")
        scale = np.asarray(consts[0], dtype=np.float64)
        if not np.all(scale > 0):
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} scale must be > 0")
        if onode.op_type == "BipolarQuant":
            return {"scale": scale, "zero": 0, "qmin": -1, "qmax": 1, "rounding": "sign", "bits": 2}
        zero, bits = np.asarray(consts[1], dtype=np.float64), np.asarray(consts[2], dtype=np.float64)
        if zero.size != 1 or bits.size != 1 or zero.reshape(-1)[0] != round(zero.reshape(-1)[0]) \
                or bits.reshape(-1)[0] != round(bits.reshape(-1)[0]):
            raise ImportError_(f"node {qn(onode.name)}: Quant needs one integer zero point and one integer bit width")
        a = self.attrs(onode)
        signed, narrow, b = int(a.get("signed", 1)), int(a.get("narrow", 0)), int(bits.reshape(-1)[0])
        mode = a.get("rounding_mode", b"ROUND")
        mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
        rounding = {"ROUND": "half_even", "HALF_EVEN": "half_even", "FLOOR": "floor", "CEIL": "ceil"}.get(mode)
        if rounding is None or not 2 <= b <= 16:
            raise ImportError_(f"node {qn(onode.name)}: Quant with rounding_mode {mode} and bit width {b} is not "
                               f"supported (ROUND / HALF_EVEN / FLOOR / CEIL, 2..16 bits)")
        lo = (-(1 << (b - 1)) + narrow) if signed else 0
        hi = ((1 << (b - 1)) - 1) if signed else (1 << b) - 1 - narrow
        return {"scale": scale, "zero": int(zero.reshape(-1)[0]), "qmin": lo, "qmax": hi, "rounding": rounding,
                "bits": b + (0 if signed else 1)}

    def _fold_qonnx(self, onode) -> None:
        from ..ir.ops import quant

        a = self._qonnx_attrs(onode)
        w = np.asarray(self.values[onode.input[0]], dtype=np.float64)
        scale, _, axis = _broadcast_qparams(onode, w.shape, a["scale"], np.zeros(1), None)
        q = quant.integers({**a, "scale": 1.0}, w / scale)
        self.values[onode.output[0]] = ((q - a["zero"]) * scale).astype(np.float32)
        self.dequantized[onode.output[0]] = {"scale": scale.reshape(-1), "zero": np.asarray(a["zero"]),
                                             "axis": axis if axis is not None else 0, "bits": a["bits"] if axis is not
                                             None else 0}

    def _op_Quant(self, onode) -> None:
        """A QONNX Quant / BipolarQuant of an activation: the IR op Quant (per tensor)."""
        x = self.activation_input(onode)
        a = self._qonnx_attrs(onode)
        if a["scale"].size != 1:
            raise ImportError_(f"node {qn(onode.name)}: per-channel quantization of activations is not supported")
        a["scale"] = float(a["scale"].reshape(-1)[0])
        del a["bits"]
        self.emit(onode, "Quant", [x], a)

    _op_BipolarQuant = _op_Quant

    def _qparams(self, onode) -> tuple[float, int, int, int]:
        """Scale, zero point and integer range of a per-tensor QuantizeLinear / DequantizeLinear."""
        ins = list(onode.input) + [""]
        return self._tensor_qparams(onode, ins[1], ins[2], self.attrs(onode))

    def _tensor_qparams(self, onode, scale_t: str, zero_t: str, a: dict) -> tuple[float, int, int, int]:
        """Scale, zero point and integer range given by constants ``scale_t``, ``zero_t`` (an
        absent zero point: 0 of ``a['output_dtype']``, uint8 by default) for ``onode``."""
        scale = self.const(scale_t)
        zero = self.const(zero_t) if zero_t else None
        if scale is None or (zero_t and zero is None):
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs a constant scale and zero point")
        if scale.size != 1 or (zero is not None and zero.size != 1):
            raise ImportError_(f"node {qn(onode.name)}: per-axis quantization of activations is not supported "
                               f"(only of constant weights)")
        dtype = zero.dtype if zero is not None else {3: np.int8, 5: np.int16, 4: np.uint16}.get(
            a.get("output_dtype", 2), np.uint8)
        bits = _int_bits(np.dtype(dtype))
        if not bits:
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} to {np.dtype(dtype)} is not supported")
        signed = np.issubdtype(np.dtype(dtype), np.signedinteger)
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if a.get("saturate", 1) == 0:
            raise ImportError_(f"node {qn(onode.name)}: QuantizeLinear without saturation is not supported")
        return float(scale.reshape(-1)[0]), int(0 if zero is None else zero.reshape(-1)[0]), lo, hi

    def _op_QuantizeLinear(self, onode) -> None:
        """An activation's QuantizeLinear becomes a Quant (fake quantization); the
        DequantizeLinear after it, with the same parameters, is then the identity."""
        x = self.activation_input(onode)
        scale, zero, lo, hi = self._qparams(onode)
        if not scale > 0:
            raise ImportError_(f"node {qn(onode.name)}: QuantizeLinear scale must be > 0, got {scale}")
        self.emit(onode, "Quant", [x], {"scale": scale, "zero": zero, "qmin": lo, "qmax": hi})
        self.quantized[onode.output[0]] = (scale, zero, lo, hi)

    # ---- integer ops of onnxruntime's QOperator format: fake quantization around float ops
    def _requantized(self, onode, x: str, scale_t: str, zero_t: str, what: str) -> str:
        """A Quant of activation ``x`` at (scale, zero point) inputs ``scale_t``, ``zero_t``:
        the integer tensor a QLinear op reads (the identity when ``x`` already has them)."""
        out = self.g.fresh_name(f"{onode.name or onode.op_type}_{what}")
        self._add_quant(onode, self._name(x), out, scale_t, zero_t, what)
        return out

    def _add_quant(self, onode, x: str, out: str, scale_t: str, zero_t: str, what: str) -> tuple:
        """A Quant of ``x`` into ``out`` at the constants ``scale_t``, ``zero_t``; its parameters."""
        scale, zero, lo, hi = params = self._tensor_qparams(onode, scale_t, zero_t, {})
        name = self.g.fresh_name(f"{onode.name or onode.op_type}_{what}_quant")
        self.g.add_node(Node(name, "Quant", [x], [out], {"scale": scale, "zero": zero, "qmin": lo, "qmax": hi}))
        return params

    def _integer_weights(self, onode, w_t: str, scale_t: str, zero_t: str, axis: int) -> str:
        """Constant integer weights and their scale as a dequantized constant (a synthetic
        name in ``self.values`` whose DequantizeLinear annotation the weights keep)."""
        q, scale = self.const(w_t), self.const(scale_t)
        zero = self.const(zero_t) if zero_t else np.zeros(1, dtype=np.int8)
        if q is None or scale is None or zero is None:
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs constant weights, scale and zero point")
        return self._dequantized_const(f"{w_t}__dequantized", q, scale, zero, axis, _int_bits(q.dtype))

    def _quant_output(self, onode, tmp: str, scale_t: str, zero_t: str) -> None:
        """The QLinear op's integer output: a Quant of the float result ``tmp``."""
        self.quantized[onode.output[0]] = self._add_quant(onode, tmp, onode.output[0], scale_t, zero_t, "out")

    def _float_twin(self, onode, op_type: str, inputs: list[str], attrs=None):
        """A NodeProto ``op_type`` on ``inputs`` writing a fresh tensor (the float op inside
        a QLinear op)."""
        from onnx import helper

        tmp = self.g.fresh_name(f"{onode.name or onode.op_type}_float")
        twin = helper.make_node(op_type, inputs, [tmp], name=self.g.fresh_name(onode.name or op_type))
        for a in onode.attribute if attrs is None else attrs:
            twin.attribute.append(a)
        return twin, tmp

    def _integer_bias(self, b_t: str, s_in_t: str, s_w_t: str) -> str:
        """A QLinear op's int32 bias ``B`` at scale ``s_in * s_w[n]`` as a float constant."""
        name = f"{b_t}__float"
        s_in, s_w = float(self.const(s_in_t).reshape(-1)[0]), self.const(s_w_t).astype(np.float64).reshape(-1)
        self.values[name] = (self.const(b_t).astype(np.float64) * s_in * s_w).astype(np.float32)
        return name

    def _op_QLinearConv(self, onode) -> None:
        """``QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B)``: Quant(x) -> Conv with the weights
        ``(w - zw) * sw`` and bias ``B * sx * sw`` -> Quant(sy, zy)."""
        ins = list(onode.input) + [""] * (9 - len(onode.input))
        x = self._requantized(onode, ins[0], ins[1], ins[2], "x")
        w = self._integer_weights(onode, ins[3], ins[4], ins[5], axis=0)
        conv_in = [x, w] + ([self._integer_bias(ins[8], ins[1], ins[4])] if ins[8] else [])
        twin, tmp = self._float_twin(onode, "Conv", conv_in)
        self._op_Conv(twin)
        self._quant_output(onode, tmp, ins[6], ins[7])

    def _op_QLinearMatMul(self, onode) -> None:
        """``QLinearMatMul(a, sa, za, b, sb, zb, sy, zy)`` with constant ``b``: Quant(a) ->
        MatMul by ``(b - zb) * sb`` -> Quant(sy, zy)."""
        ins = list(onode.input)
        a = self._requantized(onode, ins[0], ins[1], ins[2], "a")
        b = self._integer_weights(onode, ins[3], ins[4], ins[5], axis=1)
        twin, tmp = self._float_twin(onode, "MatMul", [a, b], attrs=[])
        self._op_MatMul(twin)
        self._quant_output(onode, tmp, ins[6], ins[7])

    def _op_QGemm(self, onode) -> None:
        """onnxruntime's ``QGemm(a, sa, za, b, sb, zb, C, sy, zy)`` (com.microsoft): Quant(a) ->
        Gemm by ``(b - zb) * sb`` with bias ``C * sa * sb`` -> Quant(sy, zy); without ``sy``
        the output stays float."""
        ins = list(onode.input) + [""] * (9 - len(onode.input))
        a_attrs = self.attrs(onode)
        a = self._requantized(onode, ins[0], ins[1], ins[2], "a")
        trans_b = int(a_attrs.get("transB", 0))
        b = self._integer_weights(onode, ins[3], ins[4], ins[5], axis=0 if trans_b else 1)
        gemm_in = [a, b] + ([self._integer_bias(ins[6], ins[1], ins[4])] if ins[6] else [])
        keep = [x for x in onode.attribute if x.name in ("alpha", "transA", "transB")]
        twin, tmp = self._float_twin(onode, "Gemm", gemm_in, attrs=keep)
        self._op_Gemm(twin)
        if ins[7]:
            self._quant_output(onode, tmp, ins[7], ins[8])
        else:
            self.alias[onode.output[0]] = tmp

    def _op_QLinearAdd(self, onode) -> None:
        """onnxruntime's ``QLinearAdd(a, sa, za, b, sb, zb, sy, zy)`` (com.microsoft):
        Quant(a), Quant(b) -> Add -> Quant(sy, zy)."""
        ins = list(onode.input)
        a = self._requantized(onode, ins[0], ins[1], ins[2], "a")
        b = self._requantized(onode, ins[3], ins[4], ins[5], "b")
        twin, tmp = self._float_twin(onode, "Add", [a, b], attrs=[])
        self._op_Add(twin)
        self._quant_output(onode, tmp, ins[6], ins[7])

    def _op_QLinearSoftmax(self, onode) -> None:
        """onnxruntime's ``QLinearSoftmax(x, sx, zx, sy, zy)`` (com.microsoft): Quant(x) ->
        Softmax -> Quant(sy, zy) (as the last op, the host applies it to the logits)."""
        ins = list(onode.input)
        x = self._requantized(onode, ins[0], ins[1], ins[2], "x")
        twin, tmp = self._float_twin(onode, "Softmax", [x], attrs=[a for a in onode.attribute if a.name == "axis"])
        self._op_Softmax(twin)
        self._quant_output(onode, tmp, ins[3], ins[4])

    # ---- onnxruntime's dynamic quantization (quantize_dynamic): the model's float function
    # DynamicQuantizeLinear(x) -> (xq, s, z); MatMulInteger(xq, Wq, z, zw) -> Cast ->
    # Mul(., s * sw) -> Add(b) computes (x / s) (Wq - zw) * s * sw + b ~ x (Wq - zw) sw + b:
    # imported with xq = x, s = 1, z = 0, so the integer op is x (Wq - zw), the scale product a
    # constant sw, and the Mul / Add fold into the layer (passes/affine.py). The model is then
    # a float model (calibrate it, or --dynamic); with --scale real its weights keep their
    # integers and scales (meta['weight_scales']).
    def _op_DynamicQuantizeLinear(self, onode) -> None:
        x = self.activation_input(onode)
        self.alias[onode.output[0]] = x
        for t in onode.output[1:]:
            if t:
                self.dynamic_params.add(t)

    def _dynamic_operand(self, onode, t: str) -> bool:
        return bool(t) and t in self.dynamic_params

    def _op_Mul(self, onode) -> None:
        a, b = onode.input[0], onode.input[1]
        if self._dynamic_operand(onode, a) or self._dynamic_operand(onode, b):
            other = b if self._dynamic_operand(onode, a) else a
            c = self.const(other)
            if c is None:
                raise ImportError_(f"node {qn(onode.name)}: a dynamic-quantization scale must be multiplied by a "
                                   f"constant (the weights' scale)")
            self.values[onode.output[0]] = np.asarray(c)  # s * sw with s = 1
            return
        self._elementwise(onode, "Mul")

    def _integer_linear(self, onode, op_type: str, w_axis: int) -> None:
        ins = list(onode.input) + [""] * (4 - len(onode.input))
        x = self.activation_input(onode)
        if ins[2] and not self._dynamic_operand(onode, ins[2]):
            z = self.const(ins[2])
            if z is None or np.any(z != 0):
                raise ImportError_(f"node {qn(onode.name)}: {op_type} with an input zero point other than a "
                                   f"DynamicQuantizeLinear's is not supported")
        q = self.const(ins[1])
        if q is None:
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} needs constant integer weights")
        zw = self.const(ins[3]) if ins[3] else np.zeros(1, dtype=q.dtype)
        # the integers minus their zero point, at scale 1 (the Mul after the op scales them)
        src = self._dequantized_const(f"{ins[1]}__integers", q.astype(np.int64) - zw.astype(np.int64).reshape(
            [zw.size if i == w_axis and zw.size > 1 else 1 for i in range(q.ndim)]), np.ones(1), np.zeros(1), w_axis,
            _int_bits(q.dtype) + (0 if np.issubdtype(q.dtype, np.signedinteger) else 1))
        twin, tmp = self._float_twin(onode, op_type, [x, src], attrs=[a for a in onode.attribute])
        getattr(self, f"_op_{op_type}")(twin)
        self.alias[onode.output[0]] = tmp

    def _op_MatMulInteger(self, onode) -> None:
        self._integer_linear(onode, "MatMul", w_axis=1)

    def _op_ConvInteger(self, onode) -> None:
        self._integer_linear(onode, "Conv", w_axis=0)

    def _op_DequantizeLinear(self, onode) -> None:
        src = onode.input[0]
        params = self.quantized.get(src)
        if params is None or self._qparams(onode)[:2] != params[:2]:
            raise ImportError_(
                f"node {qn(onode.name)}: a DequantizeLinear of an activation must follow a QuantizeLinear with the "
                f"same scale and zero point (integer inputs or QLinear* ops are not supported)")
        self.alias[onode.output[0]] = self._name(src)

    def _op_Relu(self, onode) -> None:
        self.emit(onode, "Relu", [self.activation_input(onode)])

    def _op_Softmax(self, onode) -> None:
        x = self.activation_input(onode)
        rank = len(self.g.shape(x)) + 1
        axis = self.attrs(onode).get("axis", -1 if self.opset >= 13 else 1)
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            raise ImportError_(f"node {qn(onode.name)}: Softmax over the batch axis is not supported")
        if self.opset < 13 and axis != rank - 1:
            # before opset 13 Softmax works on the input flattened to 2-D at `axis`:
            # reshape the axes from `axis` on into one, take Softmax there, reshape back
            shape = self.g.shape(x)
            flat = shape[:axis - 1] + (int(np.prod(shape[axis - 1:], dtype=np.int64)),)
            base = onode.name or "Softmax"
            t_flat = self.g.fresh_name(f"{onode.output[0]}_flat")
            t_soft = self.g.fresh_name(f"{onode.output[0]}_soft")
            self.g.add_node(Node(self.g.fresh_name(f"{base}_flatten"), "Reshape", [x], [t_flat], {"shape": flat}))
            self.g.add_node(Node(self.g.fresh_name(base), "Softmax", [t_flat], [t_soft], {"axis": len(flat) - 1}))
            self.g.add_node(Node(self.g.fresh_name(f"{base}_unflatten"), "Reshape", [t_soft], [onode.output[0]],
                                 {"shape": shape}))
            return
        self.emit(onode, "Softmax", [x], {"axis": axis - 1})

    def _op_Flatten(self, onode) -> None:
        x = self.activation_input(onode)
        full = (1,) + self.g.shape(x)
        axis = self.attrs(onode).get("axis", 1)
        axis = axis + len(full) if axis < 0 else axis
        if axis == 0:
            raise ImportError_(f"node {qn(onode.name)}: Flatten with axis 0 would mix the batch axis")
        target = (int(np.prod(full[1:axis], dtype=np.int64)), int(np.prod(full[axis:], dtype=np.int64)))
        self.emit(onode, "Reshape", [x], {"shape": target[1:] if target[0] == 1 else target})

    def _op_Reshape(self, onode) -> None:
        x = self.activation_input(onode)
        shape = self.const(onode.input[1])
        if shape is None:
            raise ImportError_(f"node {qn(onode.name)}: Reshape needs a constant target shape")
        full = (1,) + self.g.shape(x)
        target = [int(s) for s in shape]
        if not self.attrs(onode).get("allowzero", 0):
            target = [full[i] if s == 0 else s for i, s in enumerate(target)]
        out = _reshaped(full, target)
        if out is None:
            raise ImportError_(f"node {qn(onode.name)}: cannot reshape {full} to {target}")
        if not out or out[0] != 1:
            raise ImportError_(f"node {qn(onode.name)}: Reshape to {tuple(target)} does not keep the batch axis first")
        self.emit(onode, "Reshape", [x], {"shape": tuple(out[1:])})

    def _op_Gemm(self, onode) -> None:
        a = self.attrs(onode)
        if a.get("transA", 0):
            raise ImportError_(f"node {qn(onode.name)}: Gemm with transA is not supported")
        x = self.activation_input(onode)
        if len(self.g.shape(x)) != 1:
            raise ImportError_(f"node {qn(onode.name)}: Gemm input must be 2-D (batch, features)")
        w = self.const(onode.input[1])
        if w is None:
            raise ImportError_(f"node {qn(onode.name)}: Gemm needs constant weights (input B)")
        ins = [x, self._weight_const(f"{onode.name}_B", onode.input[1], w, 0 if a.get("transB", 0) else 1)]
        if len(onode.input) > 2 and onode.input[2]:
            c = self.const(onode.input[2])
            if c is None:
                raise ImportError_(f"node {qn(onode.name)}: Gemm needs a constant bias (input C)")
            n = w.shape[0] if a.get("transB", 0) else w.shape[1]
            if c.size not in (1, n):
                raise ImportError_(f"node {qn(onode.name)}: Gemm bias of shape {c.shape} is not per output")
            ins.append(self._add_const(f"{onode.name}_C", np.broadcast_to(c.reshape(-1), (n,))))
        attrs = {"alpha": float(a.get("alpha", 1.0)), "beta": float(a.get("beta", 1.0)), "transB": int(a.get("transB", 0))}
        self.emit(onode, "Gemm", ins, attrs)

    def _op_MatMul(self, onode) -> None:
        x = self.activation_input(onode)
        w = self.const(onode.input[1])
        if w is None or w.ndim != 2:
            raise ImportError_(f"node {qn(onode.name)}: MatMul needs a constant 2-D right operand")
        self.emit(onode, "MatMul", [x, self._weight_const(f"{onode.name}_B", onode.input[1], w, 1)])

    def _op_Add(self, onode) -> None:
        self._elementwise(onode, "Add")

    def _elementwise(self, onode, op: str) -> None:
        """A binary elementwise op of an activation and a constant, or of two activations."""
        ins = []
        for i in range(2):
            t = onode.input[i]
            c = self.const(t)
            if c is None:
                ins.append(self.activation_input(onode, i))
                continue
            other = self._name(onode.input[1 - i])
            rank = len(self.g.shape(other)) if other in self.g.tensors else 0
            while c.ndim > rank and c.shape[0] == 1:
                c = c.reshape(c.shape[1:])  # drop broadcast batch axes
            if c.ndim > rank:
                raise ImportError_(f"node {qn(onode.name)}: {op} constant of shape {c.shape} would broadcast over the batch")
            ins.append(self._add_const(f"{onode.name}_c{i}", c))
        shapes = [self.g.shape(t) for t in ins if not self.g.is_const(t)]
        if len(shapes) == 2 and len(shapes[0]) != len(shapes[1]):
            raise ImportError_(
                f"node {qn(onode.name)}: {op} of activations with per-sample shapes {shapes[0]} and "
                f"{shapes[1]} would broadcast over the batch axis"
            )
        self.emit(onode, op, ins)

    # ---- convolutional ops --------------------------------------------------------------
    def _check_inferred(self, onode, also_ok: tuple | None = None) -> None:
        """The IR shape of a node's output must agree with onnx shape inference (or with
        ``also_ok``, a shape onnx is known to infer differently from onnxruntime)."""
        out = onode.output[0]
        want = self.full_shapes.get(out)
        have = self.g.shape(self._name(out))
        if want is not None and tuple(want[1:]) == also_ok:
            self.full_shapes[out] = (want[0], *have)  # what the graph really computes
        elif want is not None and tuple(want[1:]) != tuple(have):
            raise ImportError_(
                f"node {qn(onode.name)} ({onode.op_type}): nnforge computes per-sample shape {have}, "
                f"onnx shape inference says {tuple(want[1:])}"
            )

    def _spatial_input(self, onode, what: str) -> tuple[str, int]:
        """The activation input of a windowed op and its number of spatial axes (1 or 2)."""
        x = self.activation_input(onode)
        nd = len(self.g.shape(x)) - 1
        if nd not in (1, 2):
            raise ImportError_(
                f"node {qn(onode.name)}: {what} on a {nd}-D input (per-sample shape {self.g.shape(x)}) "
                f"is not supported; nnforge handles 1-D (N, C, L) and 2-D (N, C, H, W) inputs"
            )
        return x, nd

    def _window_attrs(self, onode, a: dict, in_sp, kernel) -> dict:
        """strides, pads, dilations with ``auto_pad`` resolved to explicit pads."""
        nd = len(in_sp)
        strides = tuple(int(s) for s in a.get("strides", (1,) * nd))
        dil = tuple(int(d) for d in a.get("dilations", (1,) * nd))
        pads = tuple(int(p) for p in a.get("pads", (0,) * (2 * nd)))
        if len(strides) != nd or len(dil) != nd or len(pads) != 2 * nd or len(kernel) != nd:
            raise ImportError_(f"node {qn(onode.name)}: window attributes do not fit {nd} spatial axes")
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if auto_pad == "VALID":
            pads = (0,) * (2 * nd)
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for i in range(nd):
                out = -(-in_sp[i] // strides[i])
                total = max(0, (out - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - in_sp[i])
                small, big = total // 2, total - total // 2
                begin.append(small if auto_pad == "SAME_UPPER" else big)
                end.append(big if auto_pad == "SAME_UPPER" else small)
            pads = tuple(begin + end)
        elif auto_pad != "NOTSET":
            raise ImportError_(f"node {qn(onode.name)}: unknown auto_pad {auto_pad!r}")
        return {"strides": strides, "pads": pads, "dilations": dil}

    def _op_Conv(self, onode) -> None:
        x, nd = self._spatial_input(onode, "Conv")
        w = self.const(onode.input[1])
        if w is None:
            raise ImportError_(f"node {qn(onode.name)}: Conv needs constant weights (input W)")
        a = self.attrs(onode)
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != tuple(w.shape[2:]):
            raise ImportError_(f"node {qn(onode.name)}: kernel_shape {a['kernel_shape']} != weights {w.shape}")
        if w.ndim != nd + 2:
            raise ImportError_(f"node {qn(onode.name)}: Conv weights {w.shape} do not fit a {nd}-D input")
        m = w.shape[0]
        b = np.zeros(m, dtype=np.float32)
        if len(onode.input) > 2 and onode.input[2]:
            b = self.const(onode.input[2])
            if b is None:
                raise ImportError_(f"node {qn(onode.name)}: Conv needs a constant bias (input B)")
        attrs = self._window_attrs(onode, a, self.g.shape(x)[1:], w.shape[2:])
        attrs["groups"] = int(a.get("group", 1))
        ins = [x, self._weight_const(f"{onode.name}_W", onode.input[1], w, 0),
               self._add_const(f"{onode.name}_B", np.reshape(b, (m,)))]
        try:
            self.emit(onode, "Conv", ins, attrs)
        except ValueError as e:
            raise ImportError_(f"node {qn(onode.name)}: {e}") from e
        self._check_inferred(onode)

    def _op_BatchNormalization(self, onode) -> None:
        x = self.activation_input(onode)
        a = self.attrs(onode)
        if a.get("training_mode", 0) or any(o for o in onode.output[1:]):
            raise ImportError_(f"node {qn(onode.name)}: BatchNormalization in training mode cannot be compiled")
        params = [self.const(t) for t in onode.input[1:5]]
        if len(params) != 4 or any(p is None for p in params):
            raise ImportError_(f"node {qn(onode.name)}: BatchNormalization needs constant scale, bias, mean and var")
        scale, bias, mean, var = (np.asarray(p, dtype=np.float64).reshape(-1) for p in params)
        mul = scale / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        add = bias - mean * mul
        ins = [x, self._add_const(f"{onode.name}_mul", mul), self._add_const(f"{onode.name}_add", add)]
        try:
            self.emit(onode, "BatchNormalization", ins)
        except ValueError as e:
            raise ImportError_(f"node {qn(onode.name)}: {e}") from e
        self._check_inferred(onode)

    def _pool(self, onode, op: str) -> None:
        x, nd = self._spatial_input(onode, op)
        a = self.attrs(onode)
        kernel = tuple(int(k) for k in a.get("kernel_shape", ()))
        attrs = self._window_attrs(onode, a, self.g.shape(x)[1:], kernel)
        attrs.update(kernel_shape=kernel, ceil_mode=bool(a.get("ceil_mode", 0)))
        if op == "AveragePool":
            attrs["count_include_pad"] = bool(a.get("count_include_pad", 0))
        try:
            self.emit(onode, op, [x], attrs)
        except ValueError as e:
            raise ImportError_(f"node {qn(onode.name)}: {e}") from e
        also_ok = None
        if attrs["ceil_mode"]:
            # onnx shape inference keeps a last ceil-mode window that starts in the end
            # padding; onnxruntime (and the ONNX operator spec) drop it, as the IR does
            from ..ir.ops._window import out_sizes

            in_sp = self.g.shape(x)[1:]
            pads = attrs["pads"]
            keep = [(in_sp[i] + pads[i] + pads[nd + i] - attrs["dilations"][i] * (kernel[i] - 1) - 1
                     + attrs["strides"][i] - 1) // attrs["strides"][i] + 1 for i in range(nd)]
            full = out_sizes(in_sp, kernel, attrs["strides"], pads, attrs["dilations"], True)
            also_ok = (self.g.shape(x)[0], *keep) if tuple(keep) != full else None
        self._check_inferred(onode, also_ok)

    def _op_MaxPool(self, onode) -> None:
        if len(onode.output) > 1 and onode.output[1]:
            raise ImportError_(f"node {qn(onode.name)}: the MaxPool Indices output is not supported")
        if self.attrs(onode).get("storage_order", 0):
            raise ImportError_(f"node {qn(onode.name)}: MaxPool with storage_order=1 (column-major indices) is not supported")
        self._pool(onode, "MaxPool")

    def _op_AveragePool(self, onode) -> None:
        self._pool(onode, "AveragePool")

    def _global_pool(self, onode, op: str) -> None:
        x = self.activation_input(onode)
        if len(self.g.shape(x)) < 2:
            raise ImportError_(f"node {qn(onode.name)}: {op} needs an input with a channel and a spatial axis")
        self.emit(onode, op, [x])
        self._check_inferred(onode)

    def _op_GlobalAveragePool(self, onode) -> None:
        self._global_pool(onode, "GlobalAveragePool")

    def _op_GlobalMaxPool(self, onode) -> None:
        self._global_pool(onode, "GlobalMaxPool")

    def _op_ReduceMean(self, onode) -> None:
        """Only the mean over every spatial axis (what PyTorch exports for a global average
        pool): it becomes GlobalAveragePool, plus a Reshape when ``keepdims`` is 0."""
        x = self.activation_input(onode)
        a = self.attrs(onode)
        rank = len(self.g.shape(x)) + 1
        if self.opset >= 18:
            axes = self.const(onode.input[1]) if len(onode.input) > 1 and onode.input[1] else None
            if len(onode.input) > 1 and onode.input[1] and axes is None:
                raise ImportError_(f"node {qn(onode.name)}: ReduceMean needs constant axes")
        else:
            axes = a.get("axes")
        axes = sorted(int(i) % rank for i in axes) if axes is not None and len(axes) else None
        if rank < 3 or axes != list(range(2, rank)):
            raise ImportError_(
                f"node {qn(onode.name)}: ReduceMean is supported only over all spatial axes "
                f"(a global average pool); here axes={axes} of a rank-{rank} tensor"
            )
        if a.get("keepdims", 1):
            self.emit(onode, "GlobalAveragePool", [x])
        else:
            mid = self.g.fresh_name(f"{onode.output[0]}_keep")
            name = self.g.fresh_name(onode.name or "ReduceMean")
            self.g.add_node(Node(name, "GlobalAveragePool", [x], [mid]))
            self.g.add_node(Node(self.g.fresh_name(f"{name}_squeeze"), "Reshape", [mid], [onode.output[0]],
                                 {"shape": (self.g.shape(x)[0],)}))
        self._check_inferred(onode)

    # ---- joins and layout ---------------------------------------------------------------
    def _op_Sum(self, onode) -> None:
        """Sum of N activations: a chain of Adds (each requantized in the integer model)."""
        xs = [self.activation_input(onode, i) for i in range(len(onode.input))]
        acc = xs[0]
        for i, x in enumerate(xs[1:], 1):
            last = i == len(xs) - 1
            out = onode.output[0] if last else self.g.fresh_name(f"{onode.output[0]}_part{i}")
            name = self.g.fresh_name(f"{onode.name or 'Sum'}_{i}")
            if len(self.g.shape(acc)) != len(self.g.shape(x)):
                raise ImportError_(f"node {qn(onode.name)}: Sum of different ranks would broadcast over the batch axis")
            self.g.add_node(Node(name, "Add", [acc, x], [out]))
            acc = out
        if len(xs) == 1:
            self.alias[onode.output[0]] = xs[0]

    def _per_sample_axis(self, onode, axis: int, rank: int) -> int:
        axis = axis + rank if axis < 0 else axis
        if axis == 0:
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} over the batch axis is not supported")
        return axis - 1

    def _op_Concat(self, onode) -> None:
        xs = [self.activation_input(onode, i) for i in range(len(onode.input))]
        rank = len(self.g.shape(xs[0])) + 1
        axis = self._per_sample_axis(onode, int(self.attrs(onode)["axis"]), rank)
        self.emit(onode, "Concat", xs, {"axis": axis})
        self._check_inferred(onode)

    def _op_Transpose(self, onode) -> None:
        x = self.activation_input(onode)
        rank = len(self.g.shape(x)) + 1
        perm = self.attrs(onode).get("perm") or list(reversed(range(rank)))
        if perm[0] != 0:
            raise ImportError_(f"node {qn(onode.name)}: Transpose with perm {list(perm)} moves the batch axis")
        self.emit(onode, "Transpose", [x], {"perm": tuple(int(p) - 1 for p in perm[1:])})
        self._check_inferred(onode)

    def _reshape_like_onnx(self, onode) -> None:
        """Squeeze / Unsqueeze: the per-sample shape from onnx shape inference, or from the
        input's shape and the axes where inference does not know it."""
        x = self.activation_input(onode)
        want = self.full_shapes.get(onode.output[0]) or self._squeezed(onode, (1, *self.g.shape(x)))
        if want is None or want[0] != 1:
            raise ImportError_(f"node {qn(onode.name)}: {onode.op_type} would change the batch axis")
        self.emit(onode, "Reshape", [x], {"shape": tuple(want[1:])})

    def _squeezed(self, onode, full: tuple) -> tuple | None:
        """The output shape of Squeeze / Unsqueeze ``onode`` on an input of shape ``full``
        (None when its axes are not constant or do not fit)."""
        axes = self.attrs(onode).get("axes")
        if axes is None and len(onode.input) > 1 and onode.input[1]:
            axes = self.const(onode.input[1])
            if axes is None:
                return None
        if onode.op_type == "Squeeze":
            rank = len(full)
            axes = [i for i, d in enumerate(full) if d == 1] if axes is None else [int(a) % rank if -rank <= a < rank
                                                                                  else -1 for a in axes]
            if any(a < 0 or full[a] != 1 for a in axes):
                return None
            return tuple(d for i, d in enumerate(full) if i not in axes)
        if axes is None:
            return None
        rank = len(full) + len(axes)
        axes = {int(a) % rank for a in axes if -rank <= a < rank}
        if len(axes) != rank - len(full):
            return None
        rest = iter(full)
        return tuple(1 if i in axes else next(rest) for i in range(rank))

    _op_Squeeze = _reshape_like_onnx
    _op_Unsqueeze = _reshape_like_onnx

    def _op_LRN(self, onode) -> None:
        x = self.activation_input(onode)
        a = self.attrs(onode)
        attrs = {"size": int(a["size"]), "alpha": float(a.get("alpha", 1e-4)),
                 "beta": float(a.get("beta", 0.75)), "bias": float(a.get("bias", 1.0))}
        self.emit(onode, "LRN", [x], attrs)

    # ---- activations ----------------------------------------------------------------
    def _op_LeakyRelu(self, onode) -> None:
        alpha = float(self.attrs(onode).get("alpha", 0.01))
        self.emit(onode, "LeakyRelu", [self.activation_input(onode)], {"alpha": alpha})

    def _op_Clip(self, onode) -> None:
        """Clip with constant bounds: attributes before opset 11, optional inputs after."""
        x = self.activation_input(onode)
        bounds = []
        for i, key in ((1, "min"), (2, "max")):
            if self.opset < 11:
                v = self.attrs(onode).get(key)
            elif len(onode.input) > i and onode.input[i]:
                c = self.const(onode.input[i])
                if c is None or np.asarray(c).size != 1:
                    raise ImportError_(f"node {qn(onode.name)}: Clip needs a constant scalar {key} (input {i})")
                v = float(np.asarray(c).reshape(()))
            else:
                v = None
            # opset 6 writes "no bound" as +-FLT_MAX
            bounds.append(None if v is None or abs(float(v)) >= 3.4e38 else float(v))
        self.emit(onode, "Clip", [x], {"min": bounds[0], "max": bounds[1]})

    def _op_Sigmoid(self, onode) -> None:
        self.emit(onode, "Sigmoid", [self.activation_input(onode)])

    def _op_Tanh(self, onode) -> None:
        self.emit(onode, "Tanh", [self.activation_input(onode)])

    def _op_HardSigmoid(self, onode) -> None:
        a = self.attrs(onode)
        attrs = {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))}
        self.emit(onode, "HardSigmoid", [self.activation_input(onode)], attrs)

    def _op_HardSwish(self, onode) -> None:
        self.emit(onode, "HardSwish", [self.activation_input(onode)])

    # ---- resize and pad -------------------------------------------------------------
    def _op_Resize(self, onode) -> None:
        """Nearest-neighbour Resize with constant integer factors on spatial axes, with the
        asymmetric / floor coordinate rule (PyTorch's nearest export); anything else is
        refused here."""
        x = self.activation_input(onode)
        a = self.attrs(onode)

        def text(key, default):
            v = a.get(key, default)
            return v.decode() if isinstance(v, bytes) else str(v)

        what = f"node {qn(onode.name)} ({onode.op_type})"
        mode = text("mode", "nearest")
        if mode != "nearest":
            raise ImportError_(f"{what}: only mode 'nearest' is supported, not {qn(mode)}")
        if onode.op_type == "Resize" and self.source_opset >= 11:
            ctm = text("coordinate_transformation_mode", "half_pixel")
            nmode = text("nearest_mode", "round_prefer_floor")
            if ctm != "asymmetric" or nmode != "floor":
                raise ImportError_(
                    f"{what}: only coordinate_transformation_mode 'asymmetric' with nearest_mode 'floor' "
                    f"(what PyTorch exports for nearest upsampling) is supported, not {qn(ctm)} / {qn(nmode)}")
            if a.get("axes") is not None or int(a.get("antialias", 0)):
                raise ImportError_(f"{what}: the axes and antialias attributes are not supported")
        # Resize-11 and newer read X, roi, scales, sizes; Resize-10 / Upsample read X, scales
        scales_in, sizes_in = (2, 3) if onode.op_type == "Resize" and self.opset >= 11 else (1, None)
        full = (1, *self.g.shape(x))
        scales = sizes = None
        if len(onode.input) > scales_in and onode.input[scales_in]:
            scales = self.const(onode.input[scales_in])
            if scales is None:
                raise ImportError_(f"{what}: the scales must be constant")
            scales = np.asarray(scales, dtype=np.float64).reshape(-1)
            if scales.size == 0:
                scales = None
        if scales is None and sizes_in is not None and len(onode.input) > sizes_in and onode.input[sizes_in]:
            sizes = self.const(onode.input[sizes_in])
            if sizes is None:
                raise ImportError_(f"{what}: the sizes must be constant")
            sizes = np.asarray(sizes, dtype=np.int64).reshape(-1)
            if sizes.size != len(full) or np.any(sizes % np.array(full)):
                raise ImportError_(f"{what}: sizes {sizes.tolist()} are not integer multiples of {list(full)}")
            scales = (sizes // np.array(full)).astype(np.float64)
        if scales is None or scales.size != len(full):
            raise ImportError_(f"{what}: needs constant scales or sizes, one per axis of the rank-{len(full)} input")
        if np.any(scales != np.round(scales)) or np.any(scales < 1):
            raise ImportError_(f"{what}: only integer upsampling factors are supported, got {scales.tolist()}")
        if scales[0] != 1 or (len(full) > 2 and scales[1] != 1):
            raise ImportError_(f"{what}: only spatial axes may be resized, got scales {scales.tolist()}")
        self.emit(onode, "Resize", [x], {"scales": tuple(int(s) for s in scales[1:])})
        self._check_inferred(onode)

    _op_Upsample = _op_Resize

    def _op_Pad(self, onode) -> None:
        """Constant-mode Pad with non-negative constant pads (folded into a following Conv
        by a pass when its value is 0 and it pads only spatial axes)."""
        x = self.activation_input(onode)
        a = self.attrs(onode)
        what = f"node {qn(onode.name)} (Pad)"
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode != "constant":
            raise ImportError_(f"{what}: only mode 'constant' is supported, not {qn(mode)}")
        rank = len(self.g.shape(x)) + 1
        if self.opset < 11:
            pads, value = a.get("pads"), float(a.get("value", 0.0))
        else:
            pads = self.const(onode.input[1]) if len(onode.input) > 1 and onode.input[1] else None
            if pads is None:
                raise ImportError_(f"{what}: the pads must be constant")
            value = 0.0
            if len(onode.input) > 2 and onode.input[2]:
                v = self.const(onode.input[2])
                if v is None:
                    raise ImportError_(f"{what}: the constant_value must be constant")
                value = float(np.asarray(v).reshape(-1)[0]) if np.asarray(v).size else 0.0
            if len(onode.input) > 3 and onode.input[3]:
                axes = self.const(onode.input[3])
                if axes is None:
                    raise ImportError_(f"{what}: the axes must be constant")
                full = [0] * (2 * rank)
                axes = [int(i) % rank for i in np.asarray(axes).reshape(-1)]
                pv = np.asarray(pads).reshape(-1)
                for k, ax in enumerate(axes):
                    full[ax], full[rank + ax] = int(pv[k]), int(pv[len(axes) + k])
                pads = full
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        if len(pads) != 2 * rank:
            raise ImportError_(f"{what}: {len(pads)} pads for a rank-{rank} input")
        if min(pads) < 0:
            raise ImportError_(f"{what}: negative pads (cropping) are not supported")
        if pads[0] or pads[rank]:
            raise ImportError_(f"{what}: padding the batch axis is not supported")
        per_sample = tuple(pads[1:rank]) + tuple(pads[rank + 1:])
        self.emit(onode, "Pad", [x], {"pads": per_sample, "value": value})
        self._check_inferred(onode)


def _broadcast_qparams(onode, shape: tuple, scale, zero, axis: int | None):
    """Scale and zero point of a (de)quantization of a tensor of ``shape``, as arrays of
    its rank that broadcast onto it, and the one axis they vary along (0 when per tensor,
    None when they vary along several axes).

    A size-1 parameter is per tensor. A 1-D one lies along ``axis`` (ONNX
    QuantizeLinear / DequantizeLinear; ``axis=None``: the last axis, numpy's rule, as for
    QONNX Quant). One of higher rank broadcasts numpy-style (aligned on the last axes:
    ``(C, 1, 1)`` on an ``(M, C, kh, kw)`` weight is along axis 1)."""
    rank = len(shape)
    out, varying = [], set()
    for what, p in (("scale", scale), ("zero point", zero)):
        p = np.asarray(p)
        if p.size == 1:
            full = p.reshape((1,) * rank)
        elif p.ndim == 1 and axis is not None:
            ax = axis + rank if axis < 0 else axis
            if not 0 <= ax < rank or shape[ax] != p.size:
                raise ImportError_(f"{node_label(onode) if onode is not None else 'a constant'}: a {what} of "
                                   f"{p.size} values does not fit axis {axis} of a tensor of shape {tuple(shape)}")
            full = p.reshape([p.size if i == ax else 1 for i in range(rank)])
        else:
            lead = p.shape[:max(p.ndim - rank, 0)]
            core = p.reshape(p.shape[len(lead):]) if all(d == 1 for d in lead) else None
            if core is None or any(d not in (1, s) for d, s in zip(reversed(core.shape), reversed(shape))):
                raise ImportError_(f"{node_label(onode) if onode is not None else 'a constant'}: a {what} of shape "
                                   f"{p.shape} does not broadcast onto a tensor of shape {tuple(shape)}")
            full = core.reshape((1,) * (rank - core.ndim) + core.shape)
        varying.update(i for i, d in enumerate(full.shape) if d != 1)
        out.append(full)
    axis_out = None if len(varying) > 1 else next(iter(varying), 0)
    return out[0], out[1].astype(np.int64), axis_out


def _reshaped(shape: tuple, target: list) -> tuple | None:
    """``target`` with its one -1 resolved, when it holds as many elements as ``shape``
    (numpy's reshape rule, computed without allocating anything)."""
    n = limits.count(shape)
    free = [i for i, d in enumerate(target) if d == -1]
    if len(free) > 1 or any(d < -1 for d in target):
        return None
    rest = limits.count(d for d in target if d != -1)
    if free:
        if rest == 0 or n % rest:
            return None
        target = [n // rest if d == -1 else d for d in target]
    return tuple(target) if limits.count(target) == n else None


def _refuse_unfoldable(nodes) -> None:
    """Control flow and random number generators are neither compiled nor folded (a loop's
    trip count or a generator's output size are whatever the model says)."""
    for n in nodes:
        if n.domain not in ("", "ai.onnx"):
            continue
        if n.op_type in limits.CONTROL_FLOW:
            raise UnsupportedOpError(f"{node_label(n)}: control flow ({', '.join(limits.CONTROL_FLOW)}) is not "
                                     f"supported, and not folded even when its inputs are constants")
        if n.op_type in limits.RANDOM:
            raise UnsupportedOpError(f"{node_label(n)} draws random numbers; nnforge neither compiles nor folds "
                                     f"nondeterministic ops")


def _clean_name(s: str) -> str:
    return "".join(ch for ch in s if ch.isalnum() or ch in "_-")[:64]
