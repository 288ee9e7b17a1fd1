"""ONNX -> Graph. The only package of nnforge that imports onnx.

The model is checked with ``onnx.checker``, its batch axis is fixed to 1 and shapes are
inferred, without onnx's data propagation (it computes the values of constant tensors,
however large, before any budget is checked): shapes that only those values determine
come from folding and from the IR graph, checked against the limits before anything is
allocated (:mod:`.load`). Every node whose inputs are all known constants (including
``Shape`` of a statically shaped tensor) is folded with onnx's own reference evaluator
(:mod:`.fold`); the remaining nodes are lowered to IR ops with per-sample shapes by the
translators registered in :mod:`.translate`, listed in :data:`TRANSLATOR_MODULES`.

The importer (:class:`Importer`) keeps the walk over the nodes and the bookkeeping of
tensors (known constants, aliases, shapes with the batch axis, quantization parameters);
translators reach it only through its public methods and attributes.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from . import exact, limits, ops_act, ops_arith, ops_math, ops_nn, ops_reduce, ops_shape
from . import quant_dynamic, quant_qdq, quant_qonnx, quant_qoperator
from .errors import ImportError_, ModelImportError, UnsupportedOpError, node_label, one_line, q as qn
from .fold import FoldBudget, fold_node
from .load import MIN_OPSET, default_opset, load_model_proto, onnx_module, prepare_model, self_contained_bytes
from .translate import DEFAULT_DOMAINS, DOMAIN_TRANSLATORS, TRANSLATORS, translator_for

__all__ = ["MIN_OPSET", "SUPPORTED_OPS", "ImportError_", "Importer", "ModelImportError", "UnsupportedOpError",
           "import_onnx", "load_model_proto"]

# the modules whose translators the importer uses (importing one registers them)
TRANSLATOR_MODULES = (ops_act, ops_arith, ops_math, ops_nn, ops_reduce, ops_shape,
                      quant_dynamic, quant_qdq, quant_qonnx, quant_qoperator)

# ONNX ops of the default domain that become IR ops; anything else must be
# constant-foldable (Constant always is)
SUPPORTED_OPS = tuple(sorted({*TRANSLATORS, "Constant"}))


def import_onnx(model_or_path, max_elements: int | None = None, float_interpreter: bool = False) -> Graph:
    """Import an ONNX model (a path or a ModelProto) into a :class:`Graph`; no tensor may
    hold more than ``max_elements`` elements (:mod:`.limits`). ``float_interpreter``: the
    graph only runs on the float interpreter (the ONNX backend does that): also accept
    integer and narrow float inputs it holds exactly (:mod:`.exact`) and inputs whose
    samples are scalars (only a batch axis)."""
    onnx = onnx_module()
    max_elements = limits.check_max_elements(max_elements)
    if isinstance(model_or_path, onnx.ModelProto):
        model = model_or_path
    else:
        model = load_model_proto(model_or_path, max_elements)
    return Importer(model, max_elements, float_interpreter).run()


def import_self_contained(path, max_elements: int | None = None) -> tuple[Graph, bytes]:
    """The ONNX file ``path`` imported (:func:`import_onnx`), and its bytes as one file that
    holds all its data (:func:`.load.self_contained_bytes`), from one load of the file."""
    model = load_model_proto(path, limits.check_max_elements(max_elements))
    data = self_contained_bytes(model, path)
    return import_onnx(model, max_elements), data


class Importer:
    """One import: the model prepared for it, the IR graph being built, and what is known
    about each ONNX tensor."""

    def __init__(self, model, max_elements: int = limits.DEFAULT_MAX_ELEMENTS, float_interpreter: bool = False) -> None:
        from onnx import numpy_helper

        self.max_elements = max_elements
        self.float_interpreter = float_interpreter
        # the opset the model was written in (Resize-10 and Upsample mean asymmetric / floor
        # even after the version converter has made them Resize-11 without those attributes)
        self.source_opset = default_opset(model)
        self.model = prepare_model(model, max_elements, float_interpreter)
        self.opsets = {("" if imp.domain == "ai.onnx" else imp.domain): imp.version
                       for imp in self.model.opset_import}
        self.opset = self.opsets.get("", 0)
        graph = self.model.graph
        self.g = Graph(clean_name(graph.name) or "model")
        self.values: dict[str, np.ndarray] = {}  # known constants
        self.alias: dict[str, str] = {}  # tensor -> tensor it is identical to
        self.full_shapes: dict[str, tuple[int, ...]] = {}  # with the batch axis
        # constants made by DequantizeLinear: the integers' scale, zero point, axis, width
        self.dequantized: dict[str, dict] = {}
        self.quantized: dict[str, tuple] = {}  # QuantizeLinear output -> (scale, zero, lo, hi)
        # DynamicQuantizeLinear outputs: the run-time scale and zero point, stand-ins for 1 and 0
        self.dynamic_params: set[str] = set()
        self.folding = FoldBudget(max_elements)
        # ONNX element type of every tensor; those of integer / narrow float types (:mod:`.exact`)
        self.elem_types: dict[str, int] = {t.name: t.data_type for t in graph.initializer}
        self.exact_types: dict[str, int] = {}
        for init in graph.initializer:
            try:
                self.values[init.name] = numpy_helper.to_array(init)
            except Exception as e:
                raise ImportError_(f"initializer {qn(init.name)} does not hold the data its shape and type "
                                   f"declare ({one_line(e)})") from None
        self.elem_types.update((vi.name, vi.type.tensor_type.elem_type) for vi in graph.input)
        for vi in list(graph.value_info) + list(graph.output):
            tt = vi.type.tensor_type
            self.elem_types[vi.name] = tt.elem_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                self.full_shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)

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
            if inp.type.tensor_type.elem_type not in exact.FLOAT_COMPUTED:
                self.exact_types[inp.name] = inp.type.tensor_type.elem_type
        self.refuse_unsupported()
        for onode in onnx_graph.node:
            if fold_node(self, onode):
                continue
            translator = translator_for(onode)
            if translator is None:  # foldable by its inputs, yet not folded (a Shape of an unknown shape)
                raise UnsupportedOpError(f"{node_label(onode)} has no translator and could not be folded")
            exact.check(self, onode)
            translator(self, onode)
            exact.propagate(self, onode)
            self.check_emitted(onode)
        for out in onnx_graph.output:
            t = self.resolve(out.name)
            if t not in self.g.tensors or self.g.is_const(t):
                raise ImportError_(f"model output {qn(out.name)} does not depend on the input")
            if self.float_interpreter and out.name in self.quantized:
                raise ImportError_(f"model output {qn(out.name)} holds quantized integers; nnforge imports "
                                   f"quantization as fake quantization, so the float interpreter gives their "
                                   f"dequantized values")
            self.g.outputs.append(t)
        self.g.prune()
        self.g.meta["opset"] = self.opset
        self.g.verify()
        return self.g

    def refuse_unsupported(self) -> None:
        """Before anything is lowered: every node has a translator or will be folded."""
        nodes = list(self.model.graph.node)
        unsupported = [
            n for n, foldable in zip(nodes, self.foldable())
            if n.domain in DEFAULT_DOMAINS and n.op_type not in TRANSLATORS and not foldable
        ] + [n for n in nodes if n.domain not in DEFAULT_DOMAINS and (n.domain, n.op_type) not in DOMAIN_TRANSLATORS]
        if unsupported:
            first = unsupported[0]
            others = "" if len(unsupported) == 1 else f" (and {len(unsupported) - 1} more unsupported nodes)"
            raise UnsupportedOpError(
                f"node {qn(first.name or '(unnamed)')} has op type {qn(first.op_type)}"
                f"{' in domain ' + qn(first.domain) if first.domain else ''}, which nnforge does not "
                f"support{others}. Supported ops: {', '.join(SUPPORTED_OPS)} (and any op whose "
                f"inputs are all constants, which is folded)."
            )

    def foldable(self) -> list[bool]:
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

    def check_emitted(self, onode) -> None:
        """The outputs of a lowered node within ``max_elements``, from their shapes in the IR
        graph (before anything is computed): onnx shape inference, which does not propagate
        values, does not know them after a Reshape or Resize to a computed shape."""
        for out in onode.output:
            full = self.full_shape(out) if out else None
            problem = full is not None and limits.over(f"tensor {qn(out)} (output of {node_label(onode)})", full,
                                                       self.max_elements)
            if problem:
                raise ImportError_(problem)

    # ---- tensors --------------------------------------------------------------------
    def resolve(self, t: str) -> str:
        """The IR tensor ONNX tensor ``t`` is (following aliases)."""
        while t in self.alias:
            t = self.alias[t]
        return t

    def full_shape(self, t: str) -> tuple[int, ...] | None:
        """The shape of tensor ``t`` with the batch axis: as onnx shape inference found it,
        else (shape inference runs without data propagation, so it does not know the shapes
        after a Reshape to a computed shape) as the IR graph computes it."""
        if t in self.full_shapes:
            return self.full_shapes[t]
        return (1, *self.g.shape(self.resolve(t))) if self.is_activation(t) else None

    def const(self, t: str) -> np.ndarray | None:
        """The value of ``t`` when it is a known constant, else None."""
        return self.values.get(t)

    def is_activation(self, t: str) -> bool:
        """Whether ``t`` is computed from the model input."""
        return self.resolve(t) in self.g.tensors and not self.g.is_const(self.resolve(t))

    def is_read(self, tensor: str) -> bool:
        """Whether any node or graph output reads ``tensor``."""
        graph = self.model.graph
        return any(tensor in n.input for n in graph.node) or any(o.name == tensor for o in graph.output)

    def add_const(self, base: str, value: np.ndarray) -> str:
        """A float32 constant of the IR graph under a fresh name from ``base``."""
        return self.g.add_const(self.g.fresh_name(base), np.asarray(value, dtype=np.float32))

    def weight_const(self, base: str, source: str, value: np.ndarray, out_axis: int) -> str:
        """Add weights; if the model dequantized them from integers whose scale is per tensor
        or per output channel (``out_axis`` of the source array) with zero point 0, record
        the scale per output channel in ``meta['weight_scales']`` (the quantizer keeps it)."""
        name = self.add_const(base, value)
        dq = self.dequantized.get(source)
        if dq is not None and not np.any(dq["zero"]) and dq["bits"]:
            sc = dq["scale"].reshape(-1)
            axis = dq["axis"] % max(self.values[source].ndim, 1)
            if sc.size == 1 or axis == out_axis:
                self.g.meta.setdefault("weight_scales", {})[name] = {"scale": sc.tolist(), "bits": dq["bits"]}
        return name

    # ---- what translators use -------------------------------------------------------
    def attrs(self, onode) -> dict:
        """The node's attributes as Python values."""
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in onode.attribute}

    def activation_input(self, onode, i: int = 0) -> str:
        """The IR tensor of input ``i``, which must be computed from the model input."""
        t = onode.input[i]
        if not self.is_activation(t):
            raise ImportError_(f"node {qn(onode.name)} ({onode.op_type}): input {i} must be computed from the model input")
        return self.resolve(t)

    def emit(self, onode, op: str, inputs: list[str], attrs: dict | None = None) -> None:
        """The IR node ``op`` on ``inputs`` writing ``onode``'s first output."""
        out = onode.output[0]
        name = self.g.fresh_name(onode.name or f"{onode.op_type}_{len(self.g)}")
        self.g.add_node(Node(name, op, inputs, [out], attrs or {}))

    def check_inferred(self, onode, also_ok: tuple | None = None) -> None:
        """The IR shape of a node's output must agree with onnx shape inference (or with
        ``also_ok``, a shape onnx is known to infer differently from onnxruntime)."""
        out = onode.output[0]
        want = self.full_shapes.get(out)
        have = self.g.shape(self.resolve(out))
        if want is not None and tuple(want[1:]) == also_ok:
            self.full_shapes[out] = (want[0], *have)  # what the graph really computes
        elif want is not None and tuple(want[1:]) != tuple(have):
            raise ImportError_(
                f"node {qn(onode.name)} ({onode.op_type}): nnforge computes per-sample shape {have}, "
                f"onnx shape inference says {tuple(want[1:])}"
            )


def clean_name(s: str) -> str:
    return "".join(ch for ch in s if ch.isalnum() or ch in "_-")[:64]
