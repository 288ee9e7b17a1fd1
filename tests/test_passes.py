"""Each pass on small graphs: structure after, ``g.verify()``, and the float function kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from nnforge.frontend import import_onnx
from nnforge.ir import FixedType, Graph, Node, dequantize, quantize_float, run_float, run_int
from nnforge.ir.fixed import signed_width_for
from nnforge.passes import (
    fold_affine_into_linear, fold_pad_into_conv,
    FLOAT_PIPELINE, QuantConfig, QuantizeError, calibrate_minmax, drop_output_softmax, fold_batchnorm,
    fuse_dense_relu, gemm_to_dense, matmul_add_to_dense, quantize, run_float_pipeline,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_mlp"


def parse(text: str, seed: int = 0, opset: int = 13, **weights) -> Graph:
    """Import a graph written in onnx.parser text; ``weights`` name -> shape become
    random initializers."""
    rng = np.random.default_rng(seed)
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n' + text)
    for name, value in weights.items():
        if isinstance(value, tuple):
            arr = rng.standard_normal(value).astype(np.float32)
        else:
            arr = np.asarray(value, np.float32)
        model.graph.initializer.append(numpy_helper.from_array(arr, name))
    return import_onnx(model)


def sample(g: Graph, n: int = 16, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *g.shape(g.inputs[0]))).astype(np.float32)


def ops(g: Graph) -> list[str]:
    return [n.op for n in g.topo()]


def assert_same_function(before: Graph, after: Graph, x: np.ndarray) -> None:
    for a, b in zip(run_float(before, x), run_float(after, x), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(a).max())))


def apply(pass_fn, g: Graph, expect_change: bool = True) -> Graph:
    """Run a pass on a copy; check the flag, verify(), and that a second run is a no-op."""
    h = g.copy()
    assert pass_fn(h) is expect_change
    h.verify()
    again = h.copy()
    assert pass_fn(again) is False
    assert ops(again) == ops(h)
    return h


def dense_nodes(g: Graph) -> list[Node]:
    return [n for n in g.topo() if n.op == "Dense"]


# ---- gemm_to_dense ---------------------------------------------------------------------------


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (0.5, -2.0), (-1.25, 0.0)])
@pytest.mark.parametrize("with_c", [True, False])
def test_gemm_to_dense(trans_b, alpha, beta, with_c):
    b_shape = (5, 7) if trans_b else (7, 5)
    c_in, c_decl = (", C", ", float[5] C") if with_c else ("", "")
    g = parse(f"""
        g (float[N, 7] x) => (float[N, 5] y) <float[{b_shape[0]}, {b_shape[1]}] B{c_decl}> {{
            y = Gemm<transB={trans_b}, alpha={alpha}, beta={beta}>(x, B{c_in})
        }}""", B=b_shape, **({"C": (5,)} if with_c else {}))
    assert ops(g) == ["Gemm"]
    gemm = g.topo()[0]
    h = apply(gemm_to_dense, g)
    (d,) = dense_nodes(h)
    assert ops(h) == ["Dense"] and d.outputs == ("y",) and not d.attr("relu")
    x_in, w, b = d.inputs
    assert x_in == "x"
    bmat = g.consts[gemm.inputs[1]]
    want_w = alpha * (bmat if trans_b else bmat.T)
    np.testing.assert_allclose(h.consts[w], want_w, rtol=1e-6)
    want_b = beta * g.consts[gemm.inputs[2]] if with_c else np.zeros(5)
    np.testing.assert_allclose(h.consts[b], want_b, rtol=1e-6)
    assert h.consts[w].dtype == np.float32 and h.consts[w].shape == (5, 7)
    # the Gemm's own constants are gone
    assert set(h.consts) == {w, b}
    assert_same_function(g, h, sample(g))


def test_gemm_to_dense_on_a_hand_built_graph_with_scalar_c():
    """Gemm's C broadcasts to (N,) (see ir/ops/gemm.py), also when built without the frontend."""
    rng = np.random.default_rng(4)
    g = Graph("hand")
    g.add_input("x", (3,))
    g.add_const("B", rng.standard_normal((3, 4)).astype(np.float32))
    g.add_const("C", np.array([0.75], np.float32))
    g.add_node(Node("gemm", "Gemm", ["x", "B", "C"], ["y"], {"alpha": 2.0, "beta": 3.0}))
    g.outputs = ["y"]
    g.verify()
    h = apply(gemm_to_dense, g)
    assert_same_function(g, h, rng.standard_normal((6, 3)).astype(np.float32))


def test_gemm_to_dense_leaves_other_graphs_alone():
    g = parse("g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }")
    h = apply(gemm_to_dense, g, expect_change=False)
    assert ops(h) == ["Relu"]


# ---- matmul_add_to_dense ---------------------------------------------------------------------


@pytest.mark.parametrize("order", ["h, c", "c, h"])
@pytest.mark.parametrize("c_shape", [(6,), (1,)])
def test_matmul_add_becomes_one_dense(order, c_shape):
    g = parse(f"""
        g (float[N, 4] x) => (float[N, 6] y) <float[4, 6] B, float{list(c_shape)} c> {{
            h = MatMul(x, B)
            y = Add({order})
        }}""", B=(4, 6), c=c_shape)
    h = apply(matmul_add_to_dense, g)
    (d,) = dense_nodes(h)
    assert ops(h) == ["Dense"] and d.outputs == ("y",)
    c = g.consts[[t for t in g.topo()[-1].inputs if g.is_const(t)][0]]
    np.testing.assert_allclose(h.consts[d.inputs[2]], np.broadcast_to(c.reshape(-1), (6,)))
    np.testing.assert_array_equal(h.consts[d.inputs[1]], g.consts[g.topo()[0].inputs[1]].T)
    assert_same_function(g, h, sample(g))


def test_lone_matmul_becomes_dense_with_zero_bias():
    g = parse("""
        g (float[N, 4] x) => (float[N, 3] y) <float[4, 3] B> {
            h = MatMul(x, B)
            y = Relu(h)
        }""", B=(4, 3))
    h = apply(matmul_add_to_dense, g)
    assert ops(h) == ["Dense", "Relu"]
    (d,) = dense_nodes(h)
    np.testing.assert_array_equal(h.consts[d.inputs[2]], np.zeros(3))
    assert_same_function(g, h, sample(g))


def test_matmul_with_two_readers_keeps_its_add():
    g = parse("""
        g (float[N, 4] x) => (float[N, 3] y) <float[4, 3] B, float[3] c> {
            h = MatMul(x, B)
            a = Add(h, c)
            r = Relu(h)
            y = Add(a, r)
        }""", B=(4, 3), c=(3,))
    h = apply(matmul_add_to_dense, g)
    assert sorted(ops(h)) == ["Add", "Add", "Dense", "Relu"]
    (d,) = dense_nodes(h)
    np.testing.assert_array_equal(h.consts[d.inputs[2]], np.zeros(3))
    assert_same_function(g, h, sample(g))


def test_matmul_that_is_a_graph_output_keeps_its_add():
    g = parse("""
        g (float[N, 4] x) => (float[N, 3] h, float[N, 3] y) <float[4, 3] B, float[3] c> {
            h = MatMul(x, B)
            y = Add(h, c)
        }""", B=(4, 3), c=(3,))
    h = apply(matmul_add_to_dense, g)
    assert ops(h) == ["Dense", "Add"] and h.outputs == ["h", "y"]
    assert_same_function(g, h, sample(g))


def test_matmul_plus_activation_is_not_a_bias():
    g = parse("""
        g (float[N, 3] x) => (float[N, 3] y) <float[3, 3] B> {
            h = MatMul(x, B)
            y = Add(h, x)
        }""", B=(3, 3))
    h = apply(matmul_add_to_dense, g)
    assert ops(h) == ["Dense", "Add"]
    assert_same_function(g, h, sample(g))


def test_matmul_add_with_a_broadcasting_constant_is_not_fused():
    """Add(MatMul(x)[n], c[n, 1]) has shape (n, n): c is not a bias, even though it has n
    values. Hand-built (the frontend refuses such a constant), so only the structure is
    checked: the IR's batched Add cannot evaluate a constant of higher rank than the
    activation's sample anyway."""
    rng = np.random.default_rng(3)
    g = Graph("hand")
    g.add_input("x", (4,))
    g.add_const("B", rng.standard_normal((4, 3)).astype(np.float32))
    g.add_const("c", rng.standard_normal((3, 1)).astype(np.float32))
    g.add_node(Node("mm", "MatMul", ["x", "B"], ["h"]))
    g.add_node(Node("add", "Add", ["h", "c"], ["y"]))
    g.outputs = ["y"]
    g.verify()
    assert g.shape("y") == (3, 3)
    h = apply(matmul_add_to_dense, g)
    assert ops(h) == ["Dense", "Add"] and h.shape("y") == (3, 3) and h.shape("h") == (3,)
    np.testing.assert_array_equal(h.consts["c"], g.consts["c"])


def test_batched_matmul_stays():
    g = parse("""
        g (float[N, 2, 4] x) => (float[N, 2, 3] y) <float[4, 3] B> { y = MatMul(x, B) }""", B=(4, 3))
    h = apply(matmul_add_to_dense, g, expect_change=False)
    assert ops(h) == ["MatMul"]


# ---- fuse_dense_relu -------------------------------------------------------------------------


def canonical(g: Graph) -> Graph:
    g = g.copy()
    gemm_to_dense(g)
    matmul_add_to_dense(g)
    g.verify()
    return g


def test_fuse_dense_relu():
    g = canonical(parse("""
        g (float[N, 6] x) => (float[N, 3] y) <float[5, 6] W0, float[5] b0, float[3, 5] W1, float[3] b1> {
            h = Gemm<transB=1>(x, W0, b0)
            r = Relu(h)
            z = Gemm<transB=1>(r, W1, b1)
            y = Relu(z)
        }""", W0=(5, 6), b0=(5,), W1=(3, 5), b1=(3,)))
    assert ops(g) == ["Dense", "Relu", "Dense", "Relu"]
    h = apply(fuse_dense_relu, g)
    assert ops(h) == ["Dense", "Dense"]
    assert all(d.attr("relu") for d in dense_nodes(h))
    assert [d.outputs[0] for d in dense_nodes(h)] == ["r", "y"] and h.outputs == ["y"]
    x = sample(g)
    assert_same_function(g, h, x)
    assert np.all(run_float(h, x)[0] >= 0)


def test_no_fusion_when_the_dense_output_has_another_reader():
    g = canonical(parse("""
        g (float[N, 4] x) => (float[N, 4] y) <float[4, 4] W, float[4] b> {
            h = Gemm(x, W, b)
            r = Relu(h)
            y = Add(h, r)
        }""", W=(4, 4), b=(4,)))
    h = apply(fuse_dense_relu, g, expect_change=False)
    assert sorted(ops(h)) == ["Add", "Dense", "Relu"]
    assert not dense_nodes(h)[0].attr("relu")


def test_no_fusion_when_the_dense_output_is_a_graph_output():
    g = canonical(parse("""
        g (float[N, 4] x) => (float[N, 4] h, float[N, 4] y) <float[4, 4] W, float[4] b> {
            h = Gemm(x, W, b)
            y = Relu(h)
        }""", W=(4, 4), b=(4,)))
    h = apply(fuse_dense_relu, g, expect_change=False)
    assert ops(h) == ["Dense", "Relu"] and h.outputs == ["h", "y"]
    assert_same_function(g, h, sample(g))


def test_relu_of_something_else_is_not_fused():
    g = parse("""
        g (float[N, 2, 3] x) => (float[N, 6] y) <int64[2] s = {0, -1}> {
            f = Reshape(x, s)
            y = Relu(f)
        }""")
    h = apply(fuse_dense_relu, g, expect_change=False)
    assert ops(h) == ["Reshape", "Relu"]


def test_double_relu_fuses_once():
    g = canonical(parse("""
        g (float[N, 4] x) => (float[N, 4] y) <float[4, 4] W, float[4] b> {
            h = Gemm(x, W, b)
            r = Relu(h)
            y = Relu(r)
        }""", W=(4, 4), b=(4,)))
    h = apply(fuse_dense_relu, g)
    assert ops(h) == ["Dense", "Relu"]
    assert_same_function(g, h, sample(g))


# ---- drop_output_softmax ---------------------------------------------------------------------


def softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_drop_output_softmax():
    g = canonical(parse("""
        g (float[N, 4] x) => (float[N, 3] y) <float[4, 3] W> {
            z = MatMul(x, W)
            y = Softmax(z)
        }""", W=(4, 3)))
    h = apply(drop_output_softmax, g)
    assert ops(h) == ["Dense"]
    (d,) = dense_nodes(h)
    assert h.outputs == [d.outputs[0]]
    assert h.meta["output_softmax"] == {d.outputs[0]: 0}
    x = sample(g)
    np.testing.assert_allclose(softmax(run_float(h, x)[0], 1), run_float(g, x)[0], rtol=1e-5, atol=1e-7)


def test_softmax_in_the_middle_is_refused():
    g = canonical(parse("""
        g (float[N, 4] x) => (float[N, 3] y) <float[4, 4] W, float[4, 3] V> {
            z = MatMul(x, W)
            p = Softmax(z)
            y = MatMul(p, V)
        }""", W=(4, 4), V=(4, 3)))
    with pytest.raises(QuantizeError, match="Softmax.*last op"):
        drop_output_softmax(g.copy())


def test_softmax_that_is_also_read_is_refused():
    g = canonical(parse("""
        g (float[N, 4] x) => (float[N, 4] p, float[N, 4] y) <float[4, 4] W> {
            z = MatMul(x, W)
            p = Softmax(z)
            y = Relu(p)
        }""", W=(4, 4)))
    with pytest.raises(QuantizeError, match="Softmax"):
        drop_output_softmax(g.copy())


def test_float_pipeline_verifies_and_keeps_the_function():
    g = parse("""
        g (float[N, 2, 4] x) => (float[N, 3] y) <float[5, 8] W0, float[5] b0, float[5, 3] W1, float[3] b1,
                                                 int64[2] s = {0, -1}> {
            f = Reshape(x, s)
            h = Gemm<transB=1>(f, W0, b0)
            r = Relu(h)
            d = Dropout(r)
            m = MatMul(d, W1)
            z = Add(m, b1)
            y = Softmax(z)
        }""", W0=(5, 8), b0=(5,), W1=(5, 3), b1=(3,))
    from nnforge.passes.rules import RULES

    assert FLOAT_PIPELINE == (*RULES, gemm_to_dense, matmul_add_to_dense, fold_pad_into_conv, fold_batchnorm,
                                     fold_affine_into_linear, fuse_dense_relu, drop_output_softmax)
    f = run_float_pipeline(g)
    f.verify()
    assert ops(f) == ["Reshape", "Dense", "Dense"] and dense_nodes(f)[0].attr("relu")
    assert ops(g) == ["Reshape", "Gemm", "Relu", "MatMul", "Add", "Softmax"], "the input graph was changed"
    x = sample(g)
    np.testing.assert_allclose(softmax(run_float(f, x)[0], 1), run_float(g, x)[0], rtol=1e-5, atol=1e-6)


# ---- quantize ------------------------------------------------------------------------------


def acc_bound(q: Graph, node: Node) -> int:
    """bound = max_n(|b[n]| + sum_k |W[n, k]| * max(|x.lo|, |x.hi|)), in plain Python ints."""
    x_t = q.qtype(node.inputs[0])
    w = q.consts[node.inputs[1]].tolist()
    b = q.consts[node.inputs[2]].tolist()
    mag = max(abs(x_t.lo), abs(x_t.hi))
    return max(abs(int(bn)) + sum(abs(int(v)) for v in row) * mag for row, bn in zip(w, b))


@pytest.fixture(scope="module")
def digits():
    g = import_onnx(EXAMPLE / "model.onnx")
    f = run_float_pipeline(g)
    cal = np.load(EXAMPLE / "calibration.npz")["x"]
    test = np.load(EXAMPLE / "test.npz")
    return g, f, cal, test["x"], test["y"]


@pytest.mark.parametrize("bits", [4, 8, 12, 16])
def test_quantize_types_and_acc_width(digits, bits):
    _, f, cal, _, _ = digits
    cfg = QuantConfig(weight_bits=bits, act_bits=bits)
    q = quantize(f, calibrate_minmax(f, cal), cfg)
    q.verify()
    assert ops(q) == ops(f)
    assert all(f.consts[c].dtype == np.float32 for c in f.consts), "quantize must not touch its input"
    for name, info in q.tensors.items():
        assert isinstance(info.qtype, FixedType), f"{name} has no type"
    for c, v in q.consts.items():
        assert v.dtype == np.int64
        t = q.qtype(c)
        assert v.min() >= t.lo and v.max() <= t.hi
    x_t = q.qtype(q.inputs[0])
    assert x_t.width == bits and not x_t.signed  # pixels are >= 0
    for d in dense_nodes(q):
        x, w, b = d.inputs
        assert q.qtype(w).width == bits and q.qtype(w).signed
        assert q.qtype(b).frac == q.qtype(x).frac + q.qtype(w).frac
        out_t = q.qtype(d.outputs[0])
        assert out_t.width == bits
        assert out_t.signed is not bool(d.attr("relu"))
        bound = acc_bound(q, d)
        assert d.attr("acc_width") == signed_width_for(-bound, bound)
        assert bound > 2 ** (d.attr("acc_width") - 2) - 1, "one bit fewer would still hold the bound"
        assert q.qtype(b).width == d.attr("acc_width")
        # the weights use their full range: max |W| lands in the top bit
        w_abs = np.abs(q.consts[w]).max()
        assert w_abs > q.qtype(w).hi // 2


def dense_accumulators(q: Graph, node: Node, x_int: np.ndarray) -> np.ndarray:
    """Every partial sum of b + sum_k x[k] W[n, k], in order, exact (Python ints via object)."""
    w = q.consts[node.inputs[1]].astype(object)
    b = q.consts[node.inputs[2]].astype(object)
    terms = x_int.astype(object)[:, None, :] * w[None, :, :]
    return np.cumsum(terms, axis=2) + b[None, :, None]


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_golden_accumulators_stay_within_the_bound(digits, bits):
    _, f, cal, _, _ = digits
    q = quantize(f, calibrate_minmax(f, cal), QuantConfig(weight_bits=bits, act_bits=bits))
    t = q.qtype(q.inputs[0])
    rng = np.random.default_rng(bits)
    n_in = q.shape(q.inputs[0])[0]
    x = rng.integers(t.lo, t.hi + 1, size=(200, n_in))
    x[0], x[1] = t.lo, t.hi  # the corners of the input range
    x[2] = np.where(np.arange(n_in) % 2, t.lo, t.hi)
    env = run_int(q, x, keep=True)
    seen_max = {}
    for d in dense_nodes(q):
        x_d = env[d.inputs[0]]
        xt = q.qtype(d.inputs[0])
        assert x_d.min() >= xt.lo and x_d.max() <= xt.hi
        acc = dense_accumulators(q, d, x_d)
        bound = acc_bound(q, d)
        peak = int(np.abs(acc).max())
        assert peak <= bound
        width = d.attr("acc_width")
        assert -(2 ** (width - 1)) <= int(acc.min()) and int(acc.max()) <= 2 ** (width - 1) - 1
        seen_max[d.name] = peak / bound
    # the worst case for the bound is reachable: inputs at full magnitude with the weights' signs
    first = dense_nodes(q)[0]
    w = q.consts[first.inputs[1]]
    n = int(np.argmax(np.abs(q.consts[first.inputs[2]]) + np.abs(w).sum(axis=1) * max(abs(t.lo), t.hi)))
    worst = np.where(w[n] > 0, t.hi, t.lo)[None]
    acc = dense_accumulators(q, first, worst)
    assert int(np.abs(acc).max()) <= acc_bound(q, first)


def error_bound_violations(f: Graph, q: Graph, x: np.ndarray) -> tuple[int, np.ndarray]:
    """Check |dequantize(golden) - float| <= the error bound propagated layer by layer:

        e_out = |W_q| e_in + |W_q - W| |x| + |b_q - b| + lsb_out / 2 + dist(y_float, out range)

    (rounding adds half an LSB; Relu and saturation are 1-Lipschitz). Returns the number
    of violating values over all layers and the final bound."""
    x_t = q.qtype(q.inputs[0])
    x_int = quantize_float(x, x_t)
    fenv = run_float(f, x, keep=True)
    ienv = run_int(q, x_int, keep=True)
    err = np.abs(dequantize(x_int, x_t) - x.astype(np.float64))
    assert np.all(err <= x_t.scale / 2)
    bad = 0
    for d in q.topo():
        assert d.op == "Dense"
        xin, w, b = d.inputs
        wt, bt, out_t = q.qtype(w), q.qtype(b), q.qtype(d.outputs[0])
        w_real, b_real = dequantize(q.consts[w], wt), dequantize(q.consts[b], bt)
        dw, db = np.abs(w_real - f.consts[w]), np.abs(b_real - f.consts[b])
        xf = fenv[xin].astype(np.float64)
        yf = fenv[d.outputs[0]].astype(np.float64)
        lo, hi = dequantize(np.array([out_t.lo, out_t.hi]), out_t)
        outside = np.maximum(lo - yf, 0) + np.maximum(yf - hi, 0)
        err = err @ np.abs(w_real).T + np.abs(xf) @ dw.T + db + out_t.scale / 2 + outside
        got = dequantize(ienv[d.outputs[0]], out_t)
        slack = 1e-5 * (1 + np.abs(yf))  # float32 rounding in the float reference
        bad += int(np.sum(np.abs(got - yf) > err + slack))
    return bad, err


def test_integer_outputs_are_within_the_quantization_error_bound(digits):
    _, f, cal, x, _ = digits
    q = quantize(f, calibrate_minmax(f, cal), QuantConfig())
    bad, err = error_bound_violations(f, q, x)
    assert bad == 0
    # the bound is below the output type's whole span, and the predictions agree
    out_t = q.qtype(q.outputs[0])
    assert np.all(err < (out_t.hi - out_t.lo) * out_t.scale / 4)
    logits_int = run_int(q, quantize_float(x, q.qtype(q.inputs[0])))[0]
    assert (logits_int.argmax(1) == run_float(f, x)[0].argmax(1)).mean() >= 0.97


@pytest.mark.parametrize("mutation", ["no_bias", "no_rounding_offset", "bias_at_output_scale"])
def test_the_error_bound_catches_wrong_integer_semantics(digits, monkeypatch, mutation):
    """The check above can fail: a Dense integer reference with a plausible mistake breaks it."""
    from nnforge.ir.fixed import saturate
    from nnforge.ir.ops import dense

    def wrong_int_ref(node, g, inputs):
        x, w, b = (np.asarray(a, dtype=np.int64) for a in inputs)
        acc_frac = g.qtype(node.inputs[0]).frac + g.qtype(node.inputs[1]).frac
        out_t = g.qtype(node.outputs[0])
        shift = acc_frac - out_t.frac
        if mutation == "no_bias":
            acc = x @ w.T
        elif mutation == "bias_at_output_scale":
            acc = x @ w.T + (b << 3)
        else:
            acc = x @ w.T + b
        if node.attrs.get("relu") and out_t.signed:
            acc = np.maximum(acc, 0)
        y = acc >> shift if mutation == "no_rounding_offset" else (acc + (1 << (shift - 1))) >> shift
        return [saturate(y, out_t)]

    _, f, cal, x, _ = digits
    q = quantize(f, calibrate_minmax(f, cal), QuantConfig())
    assert error_bound_violations(f, q, x)[0] == 0
    monkeypatch.setattr(dense, "DEF", dataclasses.replace(dense.DEF, int_ref=wrong_int_ref))
    assert error_bound_violations(f, q, x)[0] > 0


def test_quantize_reshape_relu_and_add():
    g = parse("""
        g (float[N, 2, 3] x) => (float[N, 6] y) <int64[2] s = {0, -1}, float[6] c> {
            f = Reshape(x, s)
            r = Relu(f)
            y = Add(r, c)
        }""", c=(6,))
    f = run_float_pipeline(g)
    xs = sample(g, 64)
    ranges = calibrate_minmax(f, xs)
    q = quantize(f, ranges, QuantConfig())
    q.verify()
    nodes = {n.op: n for n in q.topo()}
    assert q.qtype(nodes["Reshape"].outputs[0]) == q.qtype("x")
    t_in, t_r = q.qtype(nodes["Relu"].inputs[0]), q.qtype("r")
    assert (t_r.width, t_r.frac, t_r.signed) == (t_in.width, t_in.frac, False)
    c = nodes["Add"].inputs[1]
    assert q.consts[c].dtype == np.int64 and q.qtype(c).signed
    assert np.abs(dequantize(q.consts[c], q.qtype(c)) - f.consts[c]).max() <= q.qtype(c).scale / 2
    y_int = run_int(q, quantize_float(xs, q.qtype("x")))[0]
    y_t = q.qtype(q.outputs[0])
    assert y_t.signed == (ranges["y"].lo < 0)
    # a few LSBs: input rounding + constant rounding + output rounding
    tol = q.qtype("x").scale + q.qtype(c).scale / 2 + y_t.scale
    assert np.abs(dequantize(y_int, y_t) - run_float(f, xs)[0]).max() <= tol


@pytest.mark.parametrize("text, weights", [
    ("g (float[N, 2, 4] x) => (float[N, 2, 3] y) <float[4, 3] B> { y = MatMul(x, B) }", {"B": (4, 3)}),
    ("g (float[N, 4] x) => (float[N, 4] y) { y = Softmax(x) }", {}),
])
def test_quantize_refuses_ops_without_integer_semantics(text, weights):
    f = parse(text, **weights)  # no pipeline: the op is still there
    with pytest.raises(QuantizeError, match="should have become Dense|has no integer implementation yet"):
        quantize(f, calibrate_minmax(f, sample(f)), QuantConfig())


@pytest.mark.parametrize("kw", [{"weight_bits": 1}, {"act_bits": 17}, {"weight_bits": 0}])
def test_quant_config_validates_widths(kw):
    with pytest.raises(ValueError, match="2..16"):
        QuantConfig(**kw)


def test_calibration_ranges(digits):
    _, f, cal, _, _ = digits
    r = calibrate_minmax(f, cal, batch=7)
    env = run_float(f, cal, keep=True)
    for name, rng in r.items():
        assert rng.lo == pytest.approx(float(env[name].min())) and rng.hi == pytest.approx(float(env[name].max()))
    assert set(r) == set(f.tensors) - set(f.consts)
    with pytest.raises(ValueError, match="no samples"):
        calibrate_minmax(f, cal[:0])


# ---- ops as data: the quantizer follows each op's definition, never its name

def _cube_def(value_range=None):
    """A table op the package does not have: ``x**3 / 8`` (or squashed into (0, 1))."""
    from nnforge.ir.ops import table
    from nnforge.ir.ops.base import OpDef, Traits

    if value_range is None:
        def fn(attrs, x):
            return np.asarray(x, dtype=np.float64) ** 3 / 8
    else:
        def fn(attrs, x):
            return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64) ** 3))
    return OpDef(name="Cube", shape=table.shape, int_ref=table.int_ref, function=fn,
                 float_ref=lambda attrs, inputs: [fn(attrs, inputs[0]).astype(np.float32)],
                 traits=Traits(table=True, elementwise=True, channelwise=True), value_range=value_range)


@pytest.mark.parametrize("value_range", [None, (0.0, 1.0)])
def test_a_new_table_op_quantizes_and_runs_with_no_other_change(monkeypatch, value_range):
    """Registering a table op is all it takes: the generic table rule quantizes it (its
    output type from calibration, or from the range it states) and the golden model runs it."""
    from nnforge.ir import ops

    d = _cube_def(value_range)
    monkeypatch.setitem(ops.OPS, "Cube", SimpleNamespace(DEF=d))
    g = Graph("cube")
    g.add_input("x", (3, 5))
    g.add_node(Node("cube", "Cube", ("x",), ("y",)))
    g.outputs = ["y"]
    g.verify()
    xs = 2 * sample(g, 64)
    q = quantize(g, calibrate_minmax(g, xs), QuantConfig(act_bits=8))
    q.verify()
    out_t = q.qtype("y")
    if value_range is None:  # calibrated: signed, the largest frac that holds the extremes
        assert out_t.signed and out_t.width == 8
    else:
        assert out_t == FixedType(8, 7, False)  # the largest unsigned frac that holds 1.0 (255 / 128)
    xq = quantize_float(xs, q.qtype("x"))
    y = run_int(q, xq)[0]
    # each integer is the table's: the function of the dequantized input, rounded once
    want = quantize_float(d.function({}, dequantize(xq, q.qtype("x"))), out_t)
    np.testing.assert_array_equal(y, want)
    assert len(np.unique(y)) > 20  # not a constant table


def test_every_quantization_rule_an_op_names_is_implemented():
    from nnforge.ir.ops import OPS, op_def
    from nnforge.ir.ops.base import QUANT_RULES
    from nnforge.passes.quantize import TYPE_RULES

    assert set(TYPE_RULES) == set(QUANT_RULES)
    for name in OPS:
        d = op_def(name)
        assert d.name == name
        assert d.has(float_only=True) or d.quant in TYPE_RULES or d.quantize, name
        assert d.has(float_only=True) or d.int_ref is not None, name


def test_op_name_sets_are_derived_from_the_definitions():
    from nnforge.ir import dynamic, floats
    from nnforge.ir.ops import ops_defining, ops_with
    from nnforge.passes import mixed, prequant, prune

    tables = ops_with(table=True)
    assert {"Sigmoid", "Tanh", "HardSigmoid", "HardSwish"} <= tables
    assert tables <= prune.CHANNELWISE  # every table op is a per-channel map
    assert prune.LINEAR == {"Dense", "Conv"}
    assert mixed._WEIGHTED == {"Dense", "Conv", "BatchNormalization", "Mul", "PRelu"}
    assert prequant.KEEP_TYPE == {"MaxPool", "GlobalMaxPool", "Reshape", "Transpose", "Resize", "ReduceMax",
                                  "ReduceMin"}
    assert prequant.MARKED_OPS == {"Dense", "Conv", "GlobalAveragePool", "Add", "Max", "Min"}
    assert floats.FLOAT_OPS == ops_defining("float16_ref") >= {"Dense", "Conv", "Add", "Relu"}
    assert dynamic.DYNAMIC_OPS == ops_defining("dynamic_ref") >= {"Dense", "Conv", "Add", "AveragePool"}
