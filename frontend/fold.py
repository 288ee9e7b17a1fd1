"""Constant folding: every node whose inputs are all known constants (and ``Shape`` of a
statically shaped tensor) is computed at import time with onnx's own reference
evaluator, under the budget of :mod:`.limits` (:class:`FoldBudget`). QDQ and QONNX
(de)quantizations of constants are folded by their dialects, so the weights remember
their integers' scale."""

from __future__ import annotations

import time

import numpy as np

from . import limits
from .errors import ImportError_, node_label, one_line, q as qn
from .quant_qdq import fold_dequantize, fold_quantize
from .quant_qonnx import fold_qonnx, is_qonnx


class FoldBudget:
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


def fold_node(imp, onode) -> bool:
    """Evaluate a node whose inputs are all known (into ``imp.values``); True if it was
    folded. ``imp.folding`` is the :class:`FoldBudget`."""
    ins = [i for i in onode.input if i]
    full = imp.full_shape(ins[0]) if onode.op_type == "Shape" and ins and ins[0] not in imp.values else None
    if full is not None:
        shape = np.array(full, dtype=np.int64)
        start = next((a.i for a in onode.attribute if a.name == "start"), 0)
        end = next((a.i for a in onode.attribute if a.name == "end"), None)
        imp.values[onode.output[0]] = shape[start:end]
        return True
    if not all(i in imp.values for i in ins):
        return False
    imp.folding.check_time(onode)
    if onode.op_type in ("DequantizeLinear", "QuantizeLinear") or is_qonnx(onode):
        fold = fold_qonnx if is_qonnx(onode) else fold_quantize if onode.op_type == "QuantizeLinear" \
            else fold_dequantize
        fold(imp, onode)
        imp.folding.produced(onode, [imp.values[o] for o in onode.output[:1]])
        return True
    from onnx.reference import ReferenceEvaluator

    feeds = {f"i{k}": imp.values[i] for k, i in enumerate(onode.input) if i}
    imp.folding.before(onode, feeds, fold_shapes(onode, feeds, imp.opsets, imp.model.ir_version))
    try:
        outs = ReferenceEvaluator(fold_graph(onode, feeds), opsets=imp.opsets).run(None, feeds)
    except Exception as e:
        raise ImportError_(f"constant folding of {node_label(onode)} failed: {one_line(e)}") from None
    outs = [np.asarray(v) if not isinstance(v, list) else v for v in outs]
    imp.folding.produced(onode, outs)
    for name, v in zip(onode.output, outs):
        if name:
            imp.values[name] = v
    return True


def fold_graph(onode, feeds: dict, small: dict | None = None):
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


def fold_shapes(onode, feeds: dict, opsets: dict, ir_version: int):
    """The shapes of ``onode``'s outputs (None where unknown) as onnx shape inference
    finds them from the actual inputs, before anything is computed; or the error
    shape inference raised."""
    import onnx
    from onnx import helper

    if not all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in feeds.values()):
        return [None] * len(onode.output)
    small = {f: v for f, v in feeds.items() if v.size <= 4096}
    model = helper.make_model(fold_graph(onode, feeds, small),
                              opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    model.ir_version = ir_version
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
