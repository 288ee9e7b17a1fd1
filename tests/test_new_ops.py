"""Elementwise ops PyTorch exports: Neg, Abs, Elu, Selu, Celu, Softplus, Softsign, Erf, Gelu,
Mish, Exp, Log, Reciprocal, Sqrt (one table each), Sub / Div, Min / Max with constants and
PRelu. The float reference against onnxruntime per ONNX op; the exporters' GELU / SiLU / Mish
patterns as one node and input normalization folded into the next layer; the integer model
within the quantization bound per table op; and one model with all of them, bit-exact on
every target."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.frontend import ModelImportError, import_onnx
from nnforge.ir import FixedType, dequantize, run_float, run_int
from nnforge.ir.ops import onnx_unary, op_def
from nnforge.ir.tables import build_table
from nnforge.passes import run_float_pipeline

OPSET = 20  # Gelu is an opset-20 op; every other op here is older
SHAPE = (3, 4)
SQRT2 = np.float32(math.sqrt(2.0))


def make(nodes, inputs=(("x", SHAPE),), inits=(), opset=OPSET) -> onnx.ModelProto:
    """A model over ``inputs`` (name, per-sample shape) with a symbolic batch axis, output ``y``."""
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *s]) for n, s in inputs]
    graph = helper.make_graph(nodes, "g", vi, [helper.make_empty_tensor_value_info("y")],
                              [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = max(8, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    m = onnx.shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    return m


def ort_run(m: onnx.ModelProto, *xs: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(m.graph.input, xs)})[0]


def node(op, *inputs, **attrs):
    return helper.make_node(op, list(inputs) or ["x"], ["y"], **attrs)


def samples(seed: int, n: int = 64, shape=SHAPE, scale: float = 2.0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, scale, (n, *shape)).astype(np.float32)
    x[0].flat[:4] = [0.0, -0.0, -1.0, 1.0]  # the points where Log / Reciprocal / Sqrt are not finite
    return x


PER_CHANNEL = np.array([[0.5], [-2.0], [4.0]], np.float32)  # broadcasts over axis 0 of a (3, 4) sample
TWO = (("x", SHAPE), ("z", SHAPE))

# name -> (model, number of activation inputs)
FLOAT_CASES = {
    "neg": (make([node("Neg")]), 1),
    "abs": (make([node("Abs")]), 1),
    "elu": (make([node("Elu")]), 1),
    "elu_alpha": (make([node("Elu", alpha=0.4)]), 1),
    "selu": (make([node("Selu")]), 1),
    "selu_attrs": (make([node("Selu", alpha=1.2, gamma=0.9)]), 1),
    "celu": (make([node("Celu")]), 1),
    "celu_alpha": (make([node("Celu", alpha=2.5)]), 1),
    "softplus": (make([node("Softplus")]), 1),
    "softsign": (make([node("Softsign")]), 1),
    "erf": (make([node("Erf")]), 1),
    "gelu": (make([node("Gelu")]), 1),
    "gelu_tanh": (make([node("Gelu", approximate="tanh")]), 1),
    "mish": (make([node("Mish")]), 1),
    "exp": (make([node("Exp")]), 1),
    "log": (make([node("Log")]), 1),
    "reciprocal": (make([node("Reciprocal")]), 1),
    "sqrt": (make([node("Sqrt")]), 1),
    "sub_const": (make([node("Sub", "x", "c")], inits=[("c", PER_CHANNEL)]), 1),
    "const_sub": (make([node("Sub", "c", "x")], inits=[("c", np.float32(0.25))]), 1),
    "sub_two": (make([node("Sub", "x", "z")], TWO), 2),
    "div_const": (make([node("Div", "x", "c")], inits=[("c", PER_CHANNEL)]), 1),
    "const_div": (make([node("Div", "c", "x")], inits=[("c", np.float32(3.0))]), 1),
    "one_div": (make([node("Div", "c", "x")], inits=[("c", np.float32(1.0))]), 1),
    "div_two": (make([node("Div", "x", "z")], TWO), 2),
    "min_const": (make([node("Min", "x", "c", "d")], inits=[("c", np.float32(0.5)), ("d", [1.5])]), 1),
    "max_const": (make([node("Max", "c", "x")], inits=[("c", np.float32(-0.25))]), 1),
    "prelu_scalar": (make([node("PRelu", "x", "s")], inits=[("s", [0.2])]), 1),
    "prelu_channel": (make([node("PRelu", "x", "s")], inits=[("s", PER_CHANNEL)]), 1),
    "prelu_activation": (make([node("PRelu", "x", "z")], TWO), 2),
}
# every op whose definition names the ONNX op it comes from, with that op's defaults
FLOAT_CASES.update({f"{op.lower()}_default": (make([node(op)]), 1) for op in sorted(onnx_unary())
                    if f"{op.lower()}_default" not in FLOAT_CASES})


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 / 0 is NaN, as in ONNX
@pytest.mark.parametrize("name", list(FLOAT_CASES))
def test_float_matches_onnxruntime(name):
    """Including ONNX's NaN / inf where Log, Reciprocal and Sqrt are not finite."""
    m, n_in = FLOAT_CASES[name]
    xs = [samples(seed) for seed in range(n_in)]
    ref = ort_run(m, *xs)
    got = run_float(import_onnx(m), *xs)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("model, why", [
    (make([node("Div", "x", "c")], inits=[("c", [1.0, 0.0, 2.0, 3.0])]), r"division by a constant that holds 0"),
    (make([node("PRelu", "x", "s")], inits=[("s", [[1.0, 2.0, 3.0]])]), r"slope of per-sample shape \(1, 3\) does not"),
], ids=["div_zero", "prelu_slope_shape"])
def test_refused_with_reason(model, why):
    with pytest.raises(ModelImportError, match=why):
        import_onnx(model)


# ---- the exporters' patterns -----------------------------------------------------------

def gelu_nodes(order: str) -> list:
    """``0.5 * x * (1 + erf(x / sqrt 2))`` as the TorchScript exporter, the dynamo exporter
    and ``x * 0.5 * (...)`` code write it."""
    head = [helper.make_node("Div", ["x", "sq2"], ["t"]), helper.make_node("Erf", ["t"], ["e"]),
            helper.make_node("Add", ["e", "one"], ["a"])]
    tails = {"torchscript": [helper.make_node("Mul", ["x", "a"], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])],
             "dynamo": [helper.make_node("Mul", ["half", "a"], ["h"]), helper.make_node("Mul", ["x", "h"], ["y"])],
             "half_first": [helper.make_node("Mul", ["x", "half"], ["h"]), helper.make_node("Mul", ["h", "a"], ["y"])]}
    return head + tails[order]


GELU_INITS = [("sq2", SQRT2), ("one", np.float32(1.0)), ("half", np.float32(0.5))]

PATTERNS = {
    "gelu_torchscript": (make(gelu_nodes("torchscript"), inits=GELU_INITS), ["Gelu"]),
    "gelu_dynamo": (make(gelu_nodes("dynamo"), inits=GELU_INITS), ["Gelu"]),
    "gelu_half_first": (make(gelu_nodes("half_first"), inits=GELU_INITS), ["Gelu"]),
    "silu": (make([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]),
             ["Silu"]),
    "silu_swapped": (make([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["s", "x"], ["y"])]),
                     ["Silu"]),
    "mish": (make([helper.make_node("Softplus", ["x"], ["p"]), helper.make_node("Tanh", ["p"], ["t"]),
                   helper.make_node("Mul", ["x", "t"], ["y"])]), ["Mish"]),
    # not the formula (x / 2 instead of x / sqrt 2): stays as written
    "gelu_other_constant": (make(gelu_nodes("torchscript"), inits=[("sq2", np.float32(2.0)), *GELU_INITS[1:]]),
                            ["Mul", "Erf", "Add", "Mul", "Mul"]),
    # the Sigmoid is read twice: stays as written
    "silu_shared": (make([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["m"]),
                          helper.make_node("Add", ["m", "s"], ["y"])]), ["Sigmoid", "Mul", "Add"]),
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_pattern_becomes_one_node(name):
    m, ops = PATTERNS[name]
    g = run_float_pipeline(import_onnx(m))
    assert [n.op for n in g.topo()] == ops
    x = samples(3, scale=3.0)
    np.testing.assert_allclose(run_float(g, x)[0], ort_run(m, x), rtol=1e-5, atol=1e-6)


def normalized(layer: str, pads=(0, 0, 0, 0)) -> onnx.ModelProto:
    """``layer((x - m) / s)``, the input normalization PyTorch models write."""
    rng = np.random.default_rng(7)
    if layer == "Gemm":
        inits = [("m", rng.normal(0, 1, (1, 6))), ("s", rng.uniform(0.5, 2, (1, 6))),
                 ("W", rng.normal(0, 1, (5, 6))), ("b", rng.normal(0, 1, 5))]
        last = helper.make_node("Gemm", ["d", "W", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)
        shape = (6,)
    else:
        inits = [("m", rng.normal(0, 1, (1, 3, 1, 1))), ("s", rng.uniform(0.5, 2, (3, 1, 1))),
                 ("W", rng.normal(0, 1, (4, 3, 3, 3))), ("b", rng.normal(0, 1, 4))]
        last = helper.make_node("Conv", ["d", "W", "b"], ["y"], pads=list(pads))
        shape = (3, 6, 6)
    nodes = [helper.make_node("Sub", ["x", "m"], ["c"]), helper.make_node("Div", ["c", "s"], ["d"]), last]
    return make(nodes, (("x", shape),), inits)


@pytest.mark.parametrize("layer, pads, ops", [("Gemm", None, ["Dense"]), ("Conv", (0, 0, 0, 0), ["Conv"]),
                                              ("Conv", (1, 1, 1, 1), ["Add", "Conv"])])
def test_normalization_folds_into_next_layer(layer, pads, ops):
    """``(x - m) / s`` folds into the Dense / Conv after it; before a padded Conv only the
    scale does (the pads hold the zeros of the normalized input)."""
    m = normalized(layer, pads)
    g = run_float_pipeline(import_onnx(m))
    assert [n.op for n in g.topo()] == ops
    x = np.random.default_rng(1).normal(0, 1, (16, *g.shape(g.inputs[0]))).astype(np.float32)
    np.testing.assert_allclose(run_float(g, x)[0], ort_run(m, x), rtol=1e-4, atol=1e-5)


# ---- integer within the quantization bound ------------------------------------------------

def _endpoints(fn):
    return lambda a, b: fn(np.minimum(a, b), np.maximum(a, b))


# table op -> (how the ONNX model writes it, the largest |f'| between a and b, positive inputs only)
TABLES = {
    "Neg": ([node("Neg", "h")], lambda a, b: 1.0, False),
    "Abs": ([node("Abs", "h")], lambda a, b: 1.0, False),
    "Elu": ([node("Elu", "h", alpha=1.5)], lambda a, b: 1.5, False),
    "Selu": ([node("Selu", "h")], lambda a, b: 1.0507009873554805 * 1.6732632423543772, False),
    "Celu": ([node("Celu", "h", alpha=0.7)], lambda a, b: 1.0, False),
    "Softplus": ([node("Softplus", "h")], lambda a, b: 1.0, False),
    "Softsign": ([node("Softsign", "h")], lambda a, b: 1.0, False),
    "Erf": ([node("Erf", "h")], lambda a, b: 2 / math.sqrt(math.pi), False),
    "Gelu": ([node("Gelu", "h")], lambda a, b: 1.13, False),
    "Silu": ([helper.make_node("Sigmoid", ["h"], ["s"]), node("Mul", "h", "s")], lambda a, b: 1.1, False),
    "Mish": ([node("Mish", "h")], lambda a, b: 1.09, False),
    "Exp": ([node("Exp", "h")], _endpoints(lambda lo, hi: np.exp(hi)), False),
    "Log": ([node("Log", "h")], _endpoints(lambda lo, hi: 1 / lo), True),
    "Reciprocal": ([node("Reciprocal", "h")], _endpoints(lambda lo, hi: 1 / lo ** 2), True),
    "Sqrt": ([node("Sqrt", "h")], _endpoints(lambda lo, hi: 0.5 / np.sqrt(lo)), True),
}


def dense_then(nodes, positive: bool, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray]:
    """``op(Gemm(x))`` on 6 values; with ``positive`` the Gemm's outputs lie in about [0.5, 2]."""
    rng = np.random.default_rng(seed)
    if positive:
        w, b, x = rng.uniform(0, 0.25, (6, 6)), np.full(6, 0.5), rng.uniform(0, 1, (256, 6))
    else:
        w, b, x = rng.normal(0, 0.6, (6, 6)), rng.normal(0, 0.3, 6), rng.normal(0, 1, (256, 6))
    gemm = helper.make_node("Gemm", ["x", "W", "b"], ["h"], transB=1)
    return make([gemm, *nodes], (("x", (6,)),), [("W", w), ("b", b)]), x.astype(np.float32)


@pytest.mark.parametrize("op", list(TABLES))
def test_integer_within_quantization_bound(op):
    """Per value, at 8 bits: ``|y - f(h)| <= max|f'| * |h_q - h| + step(y) / 2``, where ``h``
    is the Dense output in float and ``h_q`` in the golden model (the table is ``f`` rounded
    once); values of ``f(h)`` beyond the output type count at its end."""
    nodes, slope, positive = TABLES[op]
    m, x = dense_then(nodes, positive)
    design = nnforge.compile(m, calibration=x, bits=8)
    q = design.qgraph
    (table_node,) = [n for n in q.topo() if n.op == op]
    assert len(table_node.inputs) == 2  # the table is a constant input
    h, y = table_node.inputs[0], table_node.outputs[0]
    fl = run_float(design.float_graph, x, keep=True)
    it = run_int(q, design.quantize_input(x), keep=True)
    h_q, y_q = dequantize(it[h], q.qtype(h)), dequantize(it[y], q.qtype(y))
    t = q.qtype(y)
    want = np.clip(fl[y].astype(np.float64), dequantize(t.lo, t), dequantize(t.hi, t))
    bound = slope(fl[h].astype(np.float64), h_q) * np.abs(h_q - fl[h]) + t.scale / 2
    assert np.all(np.abs(y_q - want) <= bound * (1 + 1e-9) + 1e-12), np.max(np.abs(y_q - want) - bound)
    assert np.ptp(it[y]) > 8  # the table is exercised, not one value



@pytest.mark.parametrize("op, signed, at, want", [
    ("Log", False, [0], "lo"), ("Log", True, [-128, -1, 0], "lo"),
    ("Reciprocal", True, [0], "hi"), ("Sqrt", True, [-128, -1], 0), ("Exp", True, [709, 710, 2047], "hi"),
])
def test_table_saturates_where_not_finite(op, signed, at, want):
    """The tables of Log, Reciprocal, Sqrt (and Exp beyond float64) over a whole input type:
    finite everywhere, the documented value where the function is not."""
    in_t, out_t = FixedType(12, 0) if op == "Exp" else FixedType(8, 4, signed), FixedType(8, 4)
    table = build_table(lambda v: op_def(op).function({}, v), in_t, out_t)
    value = {"lo": out_t.lo, "hi": out_t.hi}.get(want, want)
    assert all(table[i - in_t.lo] == value for i in at)
    assert len(set(table.tolist())) > 4  # not one value


# ---- every target, bit-exact --------------------------------------------------------------

def all_ops_model() -> tuple[onnx.ModelProto, np.ndarray]:
    """One Dense and every new op on its output (Log, Sqrt and Reciprocal of positive
    values), concatenated: one C build, one HLS build, one Verilog simulation."""
    rng = np.random.default_rng(11)
    c = lambda op, ins, out, **a: helper.make_node(op, ins, [out], **a)  # noqa: E731
    nodes = [c("Gemm", ["x", "W", "b"], "h", transB=1),
             c("Neg", ["h"], "o_neg"), c("Abs", ["h"], "o_abs"), c("Elu", ["h"], "o_elu"), c("Selu", ["h"], "o_selu"),
             c("Celu", ["h"], "o_celu"), c("Softplus", ["h"], "o_softplus"), c("Softsign", ["h"], "o_softsign"),
             c("Erf", ["h"], "o_erf"), c("Gelu", ["h"], "o_gelu"), c("Mish", ["h"], "o_mish"),
             c("Sigmoid", ["h"], "sig"), c("Mul", ["h", "sig"], "o_silu"),
             c("Exp", ["h"], "o_exp"), c("Log", ["o_exp"], "o_log"), c("Reciprocal", ["o_exp"], "o_recip"),
             c("Sqrt", ["o_softplus"], "o_sqrt"),
             c("Sub", ["o_elu", "o_selu"], "o_sub"), c("Div", ["h", "three"], "o_div"),
             c("Min", ["h", "half"], "o_min"), c("Max", ["h", "half"], "o_max"),
             c("PRelu", ["h", "slopes"], "o_prelu")]
    # any other op defined from an ONNX op (a new table op is checked on every target here)
    seen = {n.op_type for n in nodes}
    nodes += [c(op, ["h"], f"o_{op.lower()}") for op in sorted(set(onnx_unary()) - seen)]
    outs = [n.output[0] for n in nodes if n.output[0].startswith("o_")]
    nodes.append(c("Concat", outs, "y", axis=1))
    inits = [("W", rng.normal(0, 0.5, (4, 6))), ("b", rng.normal(0, 0.2, 4)), ("three", np.float32(3.0)),
             ("half", np.float32(0.5)), ("slopes", [0.1, -0.2, 0.3, 0.05])]
    return make(nodes, (("x", (6,)),), inits), rng.normal(0, 1, (64, 6)).astype(np.float32)


@pytest.mark.slow
def test_all_new_ops_bit_exact_on_every_target(tmp_path):
    m, x = all_ops_model()
    design = nnforge.compile(m, calibration=x, bits=8)
    ops = {n.op for n in design.qgraph.topo()}
    assert set(TABLES) <= ops and set(onnx_unary().values()) <= ops
    res = design.verify(x[:16], backends=["golden", "c", "hls", "verilog"])
    assert {k: b.mismatches for k, b in res.backends.items()} == {"golden": 0, "c": 0, "hls": 0, "verilog": 0}
