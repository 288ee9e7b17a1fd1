"""Per ONNX op: the imported graph's float interpreter against onnxruntime.

Small models are built with onnx.helper (and onnx.parser text) on random shapes and
values, for every opset from 11 to the newest onnx knows. Opsets newer than the
installed onnxruntime accepts are checked against onnx's reference evaluator instead
(see `reference`).
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnforge.frontend import ModelImportError, import_onnx
from nnforge.ir import run_float

NEWEST = onnx.defs.onnx_opset_version()
OPSETS = list(range(11, NEWEST + 1))
BATCH = 5
RTOL = 1e-5


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def ir_version_for(opset: int) -> int:
    return max(8, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def make_model(nodes, inputs, outputs, inits=(), opset=13, name="g") -> onnx.ModelProto:
    """inputs: (name, per-sample shape) pairs, with a symbolic batch axis in front;
    outputs: names (typed by onnx shape inference) or (name, per-sample shape) pairs."""
    vi_in = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *map(int, s)]) for n, s in inputs]
    vi_out = [helper.make_empty_tensor_value_info(n) if isinstance(n, str)
              else helper.make_tensor_value_info(n[0], TensorProto.FLOAT, ["N", *n[1]]) for n in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits]
    graph = helper.make_graph(nodes, name, vi_in, vi_out, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version_for(opset)
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)  # fills in the output types
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    return model


@lru_cache(maxsize=None)
def ort_accepts(opset: int) -> bool:
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", (2,))], ["y"], opset=opset)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime raises its own exception types
        return False
    return True


def reference(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if ort_accepts(opset):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feeds)


def check(model, *xs, ops=None, reshape_ref=False):
    """Import ``model``, run it and onnxruntime on ``xs``; compare every output."""
    g = import_onnx(model)
    g.verify()
    if ops is not None:
        assert [n.op for n in g.topo()] == ops
    feeds = {i.name: x for i, x in zip(model.graph.input, xs)}
    want = reference(model, feeds)
    got = run_float(g, *xs)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        if reshape_ref:
            assert b.size == a.size
            b = b.reshape(a.shape)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * max(1.0, float(np.abs(b).max())))
    return g


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_oracle_covers_the_range():
    """At least opsets 11..21 run on onnxruntime itself (the probe must not fail silently)."""
    assert all(ort_accepts(o) for o in range(11, 22))


# ---- Gemm ----------------------------------------------------------------------------------


GEMM_CASES = [
    # transB, alpha, beta, bias shape (None: no C)
    (0, 1.0, 1.0, "n"),
    (1, 1.0, 1.0, "n"),
    (1, 0.37, -1.6, "n"),
    (0, -2.0, 0.5, "1n"),
    (1, 1.5, 2.0, "scalar"),
    (0, 1.0, 1.0, None),
    (1, 0.25, 3.0, None),
]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("trans_b, alpha, beta, bias", GEMM_CASES)
def test_gemm(opset, trans_b, alpha, beta, bias):
    rng = rng_for("gemm", opset, trans_b, alpha, beta, bias)
    k, n = (int(d) for d in rng.integers(1, 12, size=2))
    w = randn(rng, n, k) if trans_b else randn(rng, k, n)
    inits = [("W", w)]
    ins = ["x", "W"]
    if bias is not None:
        c = {"n": randn(rng, n), "1n": randn(rng, 1, n), "scalar": randn(rng, 1)}[bias]
        inits.append(("C", c))
        ins.append("C")
    node = helper.make_node("Gemm", ins, ["y"], name="fc", transB=trans_b, alpha=alpha, beta=beta)
    model = make_model([node], [("x", (k,))], ["y"], inits, opset)
    g = check(model, randn(rng, BATCH, k), ops=["Gemm"])
    assert g.shape("y") == (n,)


@pytest.mark.parametrize("opset", [11, 13, NEWEST])
def test_gemm_relu_chain(opset):
    rng = rng_for("gemm-chain", opset)
    nodes = [
        helper.make_node("Gemm", ["x", "W0", "b0"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W1", "b1"], ["y"]),
    ]
    inits = [("W0", randn(rng, 7, 9)), ("b0", randn(rng, 7)), ("W1", randn(rng, 7, 3)), ("b1", randn(rng, 3))]
    check(make_model(nodes, [("x", (9,))], ["y"], inits, opset), randn(rng, BATCH, 9), ops=["Gemm", "Relu", "Gemm"])


# ---- MatMul ----------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("rank", [1, 2])
def test_matmul_constant_right_operand(opset, rank):
    rng = rng_for("matmul", opset, rank)
    k, n, m = (int(d) for d in rng.integers(1, 10, size=3))
    per_sample = (k,) if rank == 1 else (m, k)
    model = make_model([helper.make_node("MatMul", ["x", "B"], ["y"])], [("x", per_sample)], ["y"],
                       [("B", randn(rng, k, n))], opset)
    g = check(model, randn(rng, BATCH, *per_sample), ops=["MatMul"])
    assert g.shape("y") == per_sample[:-1] + (n,)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_then_add(opset, bias_first):
    rng = rng_for("matmul-add", opset, bias_first)
    k, n = (int(d) for d in rng.integers(1, 10, size=2))
    add_ins = ["c", "t"] if bias_first else ["t", "c"]
    nodes = [helper.make_node("MatMul", ["x", "B"], ["t"]), helper.make_node("Add", add_ins, ["y"])]
    model = make_model(nodes, [("x", (k,))], ["y"], [("B", randn(rng, k, n)), ("c", randn(rng, n))], opset)
    check(model, randn(rng, BATCH, k), ops=["MatMul", "Add"])


def test_matmul_add_from_parser_text():
    rng = rng_for("parser")
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        mlp (float[N, 6] x) => (float[N, 4] y) {
            h = MatMul(x, W)
            z = Add(h, b)
            y = Relu(z)
        }
    """)
    model.graph.initializer.extend([numpy_helper.from_array(randn(rng, 6, 4), "W"),
                                    numpy_helper.from_array(randn(rng, 4), "b")])
    check(model, randn(rng, BATCH, 6), ops=["MatMul", "Add", "Relu"])


# ---- Add -----------------------------------------------------------------------------------


ADD_CONST_SHAPES = [
    ((6,), (6,)),
    ((6,), (1, 6)),
    ((6,), (1,)),
    ((3, 4), (4,)),
    ((3, 4), (3, 1)),
    ((3, 4), (1, 3, 4)),
    ((2, 3, 4), (1, 1, 4)),
]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("x_shape, c_shape", ADD_CONST_SHAPES)
@pytest.mark.parametrize("const_first", [False, True])
def test_add_constant(opset, x_shape, c_shape, const_first):
    rng = rng_for("add-const", opset, x_shape, c_shape, const_first)
    ins = ["c", "x"] if const_first else ["x", "c"]
    model = make_model([helper.make_node("Add", ins, ["y"])], [("x", x_shape)], ["y"],
                       [("c", randn(rng, *c_shape))], opset)
    g = check(model, randn(rng, BATCH, *x_shape), ops=["Add"])
    assert g.shape("y") == x_shape


@pytest.mark.parametrize("opset", OPSETS)
def test_add_two_activations(opset):
    rng = rng_for("add-act", opset)
    shape = tuple(int(d) for d in rng.integers(1, 6, size=2))
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"])], [("a", shape), ("b", shape)], ["y"], opset=opset)
    check(model, randn(rng, BATCH, *shape), randn(rng, BATCH, *shape), ops=["Add"])
    # one input feeding both sides through different paths
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])]
    check(make_model(nodes, [("x", shape)], ["y"], opset=opset), randn(rng, BATCH, *shape), ops=["Relu", "Add"])


@pytest.mark.parametrize("opset", [11, NEWEST])
def test_add_two_activations_broadcast_over_sample_axes(opset):
    rng = rng_for("add-bcast", opset)
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"])], [("a", (3, 4)), ("b", (1, 4))], ["y"], opset=opset)
    check(model, randn(rng, BATCH, 3, 4), randn(rng, BATCH, 1, 4), ops=["Add"])


def test_add_of_activations_with_different_ranks_is_refused():
    """ONNX would broadcast (N, 4) against (N, 3, 4) over the batch axis."""
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"], name="mix")], [("a", (4,)), ("b", (3, 4))], ["y"])
    with pytest.raises(ModelImportError, match="mix"):
        import_onnx(model)


def test_add_constant_broadcasting_over_the_batch_is_refused():
    model = make_model([helper.make_node("Add", ["x", "c"], ["y"], name="bad_add")], [("x", (4,))], ["y"],
                       [("c", np.ones((3, 4), np.float32))])
    with pytest.raises(ModelImportError, match="bad_add.*batch"):
        import_onnx(model)


# ---- Relu, Identity, Dropout, Cast ------------------------------------------------------------


@pytest.mark.parametrize("opset", OPSETS)
def test_relu(opset):
    rng = rng_for("relu", opset)
    shape = tuple(int(d) for d in rng.integers(1, 5, size=rng.integers(1, 4)))
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", shape)], ["y"], opset=opset)
    x = randn(rng, BATCH, *shape)
    x.reshape(-1)[0] = 0.0
    check(model, x, ops=["Relu"])


@pytest.mark.parametrize("opset", OPSETS)
def test_identity_is_an_alias(opset):
    rng = rng_for("identity", opset)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Add", ["i", "c"], ["y"])]
    model = make_model(nodes, [("x", (5,))], ["y"], [("c", randn(rng, 5))], opset)
    check(model, randn(rng, BATCH, 5), ops=["Relu", "Add"])


def dropout_node(opset, ins, **kw):
    if opset < 12:
        return helper.make_node("Dropout", ins[:1], ["d"], ratio=0.5, **kw)
    return helper.make_node("Dropout", ins, ["d"], **kw)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("with_inputs", [False, True])
def test_dropout_in_inference_is_identity(opset, with_inputs):
    rng = rng_for("dropout", opset, with_inputs)
    inits = [("W", randn(rng, 6, 3))]
    ins = ["h"]
    if with_inputs and opset >= 12:
        inits += [("ratio", np.array(0.3, np.float32)), ("training", np.array(False))]
        ins += ["ratio", "training"]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), dropout_node(opset, ins),
             helper.make_node("Relu", ["d"], ["y"])]
    check(make_model(nodes, [("x", (6,))], ["y"], inits, opset), randn(rng, BATCH, 6), ops=["MatMul", "Relu"])


def test_dropout_in_training_mode_is_refused():
    nodes = [helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="drop")]
    model = make_model(nodes, [("x", (4,))], ["y"],
                       [("ratio", np.array(0.3, np.float32)), ("training", np.array(True))], 13)
    with pytest.raises(ModelImportError, match="drop.*training"):
        import_onnx(model)


@pytest.mark.parametrize("opset", OPSETS)
def test_cast_float_to_float(opset):
    rng = rng_for("cast", opset)
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT), helper.make_node("Relu", ["c"], ["y"])]
    check(make_model(nodes, [("x", (2, 3))], ["y"], opset=opset), randn(rng, BATCH, 2, 3), ops=["Relu"])


def test_cast_to_an_integer_type_is_refused():
    nodes = [helper.make_node("Cast", ["x"], ["c"], name="to_int", to=TensorProto.INT32),
             helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)]
    with pytest.raises(ModelImportError, match="to_int"):
        import_onnx(make_model(nodes, [("x", (3,))], ["y"]))


# ---- Flatten, Reshape --------------------------------------------------------------------


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
def test_flatten_axis_1(opset, shape):
    rng = rng_for("flatten1", opset, shape)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=1), helper.make_node("Gemm", ["f", "W"], ["y"], transB=1)]
    n_in = int(np.prod(shape))
    model = make_model(nodes, [("x", shape)], ["y"], [("W", randn(rng, 3, n_in))], opset)
    g = check(model, randn(rng, BATCH, *shape), ops=["Reshape", "Gemm"])
    assert g.shape("f") == (n_in,)


@pytest.mark.parametrize("opset", [11, 13, NEWEST])
def test_flatten_default_axis_on_4d(opset):
    rng = rng_for("flatten-default", opset)
    model = make_model([helper.make_node("Flatten", ["x"], ["y"])], [("x", (1, 4, 4))], ["y"], opset=opset)
    g = check(model, randn(rng, BATCH, 1, 4, 4), ops=["Reshape"])
    assert g.shape("y") == (16,)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("shape, axis", [((3, 4), 2), ((2, 3, 4), 2), ((2, 3, 4), 3), ((2, 3, 4), -1), ((2, 3, 4), 4),
                                         ((1, 3, 4), 2)])
def test_flatten_axis_above_1(opset, shape, axis):
    """ONNX merges the batch axis into the first output axis: (N * prod(shape[:axis-1]), rest).
    Per sample that is the same data, which nnforge keeps as a (prod(shape[:axis-1]), rest)
    sample; a leading 1 is dropped so the sample stays a plain vector."""
    rng = rng_for("flatten", opset, shape, axis)
    model = make_model([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], [("x", shape)], ["y"], opset=opset)
    x = randn(rng, BATCH, *shape)
    g = check(model, x, ops=["Reshape"], reshape_ref=True)
    a = axis + len(shape) + 1 if axis < 0 else axis
    lead, rest = int(np.prod(shape[:a - 1])), int(np.prod(shape[a - 1:]))
    assert g.shape("y") == ((rest,) if lead == 1 else (lead, rest))
    assert reference(model, {"x": x})[0].shape == (BATCH * lead, rest)


def test_flatten_axis_0_is_refused():
    model = make_model([helper.make_node("Flatten", ["x"], ["y"], name="flat0", axis=0)], [("x", (3, 4))], ["y"])
    with pytest.raises(ModelImportError, match="flat0.*batch"):
        import_onnx(model)


RESHAPES = [
    ((2, 3, 4), [0, -1], (24,)),
    ((2, 3, 4), [-1, 24], (24,)),
    ((24,), [0, 2, -1], (2, 12)),
    ((24,), [-1, 4, 6], (4, 6)),
    ((2, 3, 4), [0, 0, -1], (2, 12)),
    ((2, 3, 4), [0, -1, 4], (6, 4)),
    ((2, 3, 4), [0, 4, 0, 2], (4, 3, 2)),
]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("shape, target, per_sample", RESHAPES)
def test_reshape(opset, shape, target, per_sample):
    rng = rng_for("reshape", opset, shape, tuple(target))
    model = make_model([helper.make_node("Reshape", ["x", "s"], ["y"])], [("x", shape)], ["y"],
                       [("s", np.array(target, np.int64))], opset)
    g = check(model, randn(rng, BATCH, *shape), ops=["Reshape"])
    assert g.shape("y") == per_sample


@pytest.mark.parametrize("opset", [14, NEWEST])
def test_reshape_allowzero_without_zeros(opset):
    rng = rng_for("reshape-allowzero", opset)
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], allowzero=1)]
    model = make_model(nodes, [("x", (3, 4))], ["y"], [("s", np.array([-1, 12], np.int64))], opset)
    check(model, randn(rng, BATCH, 3, 4), ops=["Reshape"])


@pytest.mark.parametrize("target", [[-1, 4], [2, -1], [-1, 2]])
def test_reshape_mixing_the_batch_axis_is_refused(target):
    model = make_model([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")], [("x", (2, 4))], ["y"],
                       [("s", np.array(target, np.int64))])
    with pytest.raises(ModelImportError, match="'rs'.*batch"):
        import_onnx(model)


# ---- Softmax -------------------------------------------------------------------------------


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("shape, axis", [((10,), None), ((10,), 1), ((10,), -1),
                                         ((3, 5), None), ((3, 5), -1), ((3, 5), 2)])
def test_softmax_last_axis(opset, shape, axis):
    rng = rng_for("softmax", opset, shape, axis)
    kw = {} if axis is None else {"axis": axis}
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], name="sm", **kw)], [("x", shape)], ["y"], opset=opset)
    # before opset 13 the default axis 1 flattens both sample axes into one softmax
    flattened = axis is None and opset < 13 and len(shape) > 1
    check(model, randn(rng, BATCH, *shape, scale=3.0),
          ops=["Reshape", "Softmax", "Reshape"] if flattened else ["Softmax"])


@pytest.mark.parametrize("opset", [o for o in OPSETS if o >= 13])
def test_softmax_inner_axis_opset13(opset):
    rng = rng_for("softmax-inner", opset)
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [("x", (3, 5))], ["y"], opset=opset)
    g = check(model, randn(rng, BATCH, 3, 5, scale=3.0), ops=["Softmax"])
    assert g.node(g.topo()[0].name).attr("axis") == 0


@pytest.mark.parametrize("opset", [11, 12])
def test_softmax_over_several_axes_before_opset13(opset):
    """Opset < 13 flattens the axes from `axis` on into one softmax."""
    rng = rng_for("softmax-several", opset)
    node = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)
    model = make_model([node], [("x", (3, 5))], ["y"], opset=opset)
    check(model, randn(rng, BATCH, 3, 5, scale=3.0), ops=["Reshape", "Softmax", "Reshape"])


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_over_the_batch_is_refused(opset):
    node = helper.make_node("Softmax", ["x"], ["y"], name="smb", axis=0)
    model = make_model([node], [("x", (5,))], ["y"], opset=opset)
    with pytest.raises(ModelImportError, match="smb.*batch"):
        import_onnx(model)


# ---- constant folding ----------------------------------------------------------------------


def view_batch_minus_one(opset: int) -> list:
    """``x.view(x.size(0), -1)`` as old PyTorch exports wrote it."""
    if opset >= 13:
        unsq = helper.make_node("Unsqueeze", ["b", "axes"], ["bu"])
        extra = [helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([0], np.int64)))]
    else:
        unsq = helper.make_node("Unsqueeze", ["b"], ["bu"], axes=[0])
        extra = []
    return [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["i0"], value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "i0"], ["b"], axis=0),
        *extra,
        unsq,
        helper.make_node("Constant", [], ["m1"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["bu", "m1"], ["t"], axis=0),
        helper.make_node("Reshape", ["x", "t"], ["f"]),
    ]


@pytest.mark.parametrize("opset", OPSETS)
def test_constant_folded_view(opset):
    rng = rng_for("fold", opset)
    nodes = view_batch_minus_one(opset) + [helper.make_node("Gemm", ["f", "W", "c"], ["y"], transB=1)]
    inits = [("W", randn(rng, 5, 32)), ("c", randn(rng, 5))]
    model = make_model(nodes, [("x", (2, 4, 4))], [("y", (5,))], inits, opset)
    g = check(model, randn(rng, BATCH, 2, 4, 4), ops=["Reshape", "Gemm"])
    assert g.shape("f") == (32,)
    assert not g.consts.keys() & {"s", "b", "bu", "t", "i0", "m1"}, "folded shape tensors should be pruned"


@pytest.mark.parametrize("opset", [11, 13, NEWEST])
def test_constant_folding_of_weight_arithmetic(opset):
    """Constants computed from other constants (a transposed, scaled weight) are folded."""
    rng = rng_for("fold-w", opset)
    nodes = [
        helper.make_node("Transpose", ["Wt"], ["W"], perm=[1, 0]),
        helper.make_node("Mul", ["W", "two"], ["W2"]),
        helper.make_node("MatMul", ["x", "W2"], ["y"]),
    ]
    inits = [("Wt", randn(rng, 3, 6)), ("two", np.array(2.0, np.float32))]
    check(make_model(nodes, [("x", (6,))], ["y"], inits, opset), randn(rng, BATCH, 6), ops=["MatMul"])


def test_constant_folding_from_parser_text():
    rng = rng_for("fold-parser")
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 2, 4] x) => (float[N, 8] y) {
            s = Shape(x)
            i0 = Constant<value = int64 {0}>()
            b = Gather<axis=0>(s, i0)
            ax = Constant<value = int64[1] {0}>()
            bu = Unsqueeze(b, ax)
            m1 = Constant<value = int64[1] {-1}>()
            t = Concat<axis=0>(bu, m1)
            f = Reshape(x, t)
            y = Relu(f)
        }
    """)
    check(model, randn(rng, BATCH, 2, 4), ops=["Reshape", "Relu"])
