"""Per-output-channel requantization (Dense / Conv ``rq_mult`` and ``rq_shift``) in the C and
HLS C++ backends: every output integer of gcc-built C and g++-built HLS C-simulation equals
the golden model's, for per-channel power-of-two weight scales (digits examples at 4-bit
weights) and for arbitrary (real-scale) integer multipliers, with positive, zero and
negative shifts and fused Relu."""

import re

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT, extremes, negate_first_row
from nnforge.design import Design
from nnforge.ir.ops.dense import requant_params
from nnforge.sim.native import run_c, run_hls
from nnforge.sim.progress import QUIET

EXAMPLES = ROOT / "examples"
LINEAR = ("Dense", "Conv")


def _example(name, **kw):
    cal = np.load(EXAMPLES / name / "calibration.npz")["x"]
    test = np.load(EXAMPLES / name / "test.npz")
    return nnforge.compile(EXAMPLES / name / "model.onnx", calibration=cal, **kw), test["x"]


def _linear_nodes(q):
    return [n for n in q.topo() if n.op in LINEAR]


def _rescaled(design, choose, seed):
    """A Design over a copy of ``design.qgraph`` whose Dense / Conv nodes get the
    ``(rq_mult, rq_shift)`` that ``choose(rng, node, mult, shift)`` returns (None: unchanged)."""
    q = design.qgraph.copy()
    rng = np.random.default_rng(seed)
    for node in _linear_nodes(q):
        mult, shift = requant_params(node, q)
        new = choose(rng, node, mult, shift)
        if new is None:
            continue
        m, s = new
        q.replace_node(node.name, node.with_(attrs={**node.attrs, "rq_mult": tuple(int(v) for v in m),
                                                     "rq_shift": int(s)}))
    q.verify()
    return Design(design.float_graph, q, design.config)


def _real_mults(rng, node, mult, shift):
    """Real-scale multipliers as a QDQ import makes them: 14-15 bits, shift raised by 14."""
    return rng.integers(2 ** 13, 2 ** 15, size=mult.size), shift + 14


def _samples(design, x_float, n_extreme, seed):
    x = design.quantize_input(x_float)
    return np.concatenate([x, extremes(design, n_extreme, seed)]).astype(np.int64)


def _mult_tables(design):
    """Names of the Dense / Conv steps whose multipliers are not all 1."""
    return [n for n in _linear_nodes(design.qgraph) if np.any(requant_params(n, design.qgraph)[0] != 1)]


def assert_c_hls_exact(design, tmp_path, x_int):
    """Write C and HLS C++, build both natively, and require every output integer of every
    sample to equal the golden model's. Returns (output folder, golden outputs)."""
    n = len(x_int)
    gold = design.predict_int(x_int).reshape(n, -1)
    out = design.write(tmp_path / "out", targets=["c", "hls"])
    flat = x_int.reshape(n, -1)
    for name, run, src in (("c", run_c, "nnforge_model.c"), ("hls", run_hls, "nnforge_hls.cpp")):
        text = (out / name / src).read_text()
        tables = re.findall(r"const \w+ (\w+)_mult\[(\d+)\] = \{", text)
        nodes = _mult_tables(design)
        # one multiplier table per layer whose multipliers are not all 1, none otherwise
        assert len(tables) == len(nodes), (name, tables)
        for _, size in tables:
            assert int(size) in {int(requant_params(nd, design.qgraph)[0].size) for nd in nodes}
        # ... and each used in its layer's requantization: nnf_requant(acc * mult[n], shift, lo, hi)
        assert len(re.findall(r"nnf_requant\([^;]*_mult\[[nm]\]\)?, -?\d+, ", text)) == len(nodes)
        y = run(design.lowered(name), out / name, out / "build" / name, flat, QUIET).y
        assert y.shape == gold.shape
        bad = np.flatnonzero((y != gold).any(1))
        assert bad.size == 0, f"{name}: {bad.size} sample(s) differ, first {bad[0]}: {y[bad[0]]} vs {gold[bad[0]]}"
    return out, gold


# ---- per-channel power-of-two weight scales: the digits examples at 4-bit weights ------

@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp", "digits_resnet"])
def test_per_channel_examples(name, tmp_path):
    design, x_test = _example(name, weight_bits=4, act_bits=8, per_channel=True)
    assert design.config.per_channel
    nodes = _mult_tables(design)
    assert nodes, "per-channel weights should give some layer non-unit multipliers"
    for nd in nodes:  # powers of two
        m = requant_params(nd, design.qgraph)[0]
        assert np.all(m > 0) and np.all((m & (m - 1)) == 0)
    x_int = _samples(design, x_test[:50], 30, seed=7)
    assert_c_hls_exact(design, tmp_path, x_int)


# ---- arbitrary integer multipliers (real scales) -----------------------------------------

@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp", "digits_resnet"])
def test_real_multipliers_examples(name, tmp_path):
    base, x_test = _example(name, bits=8)
    design = _rescaled(base, _real_mults, seed=len(name))
    q = design.qgraph
    assert len(_mult_tables(design)) == len(_linear_nodes(q))
    assert any(n.attrs.get("relu") for n in _linear_nodes(q))
    x_int = _samples(design, x_test[:50], 30, seed=11)
    _, gold = assert_c_hls_exact(design, tmp_path, x_int)
    # the rescale matters: the same graph with the old single shift gives other outputs
    assert not np.array_equal(gold, base.predict_int(x_int).reshape(len(x_int), -1))


def test_real_multipliers_4bit_per_channel(tmp_path):
    """Per-channel 4-bit weights, then every layer's multipliers replaced by real-scale ones
    keeping each channel's ratio within a factor of two."""
    base, x_test = _example("digits_cnn", weight_bits=4, act_bits=8, per_channel=True)

    def choose(rng, node, mult, shift):
        return mult * rng.integers(2 ** 12, 2 ** 13, size=mult.size), shift + 12

    design = _rescaled(base, choose, seed=3)
    assert_c_hls_exact(design, tmp_path, _samples(design, x_test[:50], 30, seed=5))


def _model(nodes, in_shape, out, inits):
    graph = helper.make_graph(
        nodes, "rq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", "d"])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _small_cnn(relu_last: bool):
    """Conv (+Relu) -> Conv -> Flatten -> Gemm (+Relu when relu_last)."""
    rng = np.random.default_rng(42)
    c, h, w = 2, 5, 5
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["c2"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wd", "bd"], ["d"], name="fc", transB=1)]
    out = "d"
    if relu_last:
        nodes.append(helper.make_node("Relu", ["d"], ["y"], name="relu2"))
        out = "y"
    inits = [("w1", rng.normal(0, 0.5, (3, c, 3, 3))), ("b1", rng.normal(0, 0.3, 3)),
             ("w2", rng.normal(0, 0.5, (4, 3, 2, 2))), ("b2", rng.normal(0, 0.3, 4)),
             ("wd", rng.normal(0, 0.5, (5, 16))), ("bd", rng.normal(0, 0.3, 5))]
    return _model(nodes, (c, h, w), out, inits), (c, h, w)


@pytest.mark.parametrize("relu_last", [False, True])
@pytest.mark.parametrize("shift_kind", ["negative", "zero", "positive"])
def test_real_multipliers_shifts(shift_kind, relu_last, tmp_path):
    """Small multipliers with rq_shift < 0 (exact left shift), = 0 and > 0 (rounding) on
    every Conv and Dense of a small CNN, with a fused Relu on Conv and (or not) on the Dense."""
    model, shape = _small_cnn(relu_last)
    rng = np.random.default_rng(0)
    cal = rng.normal(0, 1, (64, *shape)).astype(np.float32)
    base = nnforge.compile(model, calibration=cal, weight_bits=2, act_bits=8)

    def choose(rng, node, mult, shift):
        if shift_kind == "positive":
            return rng.integers(2 ** 13, 2 ** 15, size=mult.size), shift + 14
        # a few values (1, 2, 3, 5, 7) and shift 0 / -1 or -2: large outputs saturate,
        # small accumulators come through exactly
        m = rng.choice([1, 2, 3, 5, 7], size=mult.size)
        m[0] = 3  # not all 1, so the table is emitted
        return m, 0 if shift_kind == "zero" else -1 - int(node.op == "Dense")

    design = _rescaled(base, choose, seed=1)
    q = design.qgraph
    ops = [(n.op, bool(n.attrs.get("relu")), requant_params(n, q)[1]) for n in _linear_nodes(q)]
    assert [o[0] for o in ops] == ["Conv", "Conv", "Dense"] and ops[0][1] and ops[2][1] == relu_last
    if shift_kind == "negative":
        assert all(s < 0 for _, _, s in ops)
    elif shift_kind == "zero":
        assert all(s == 0 for _, _, s in ops)
    x_int = np.concatenate([design.quantize_input(rng.normal(0, 1, (50, *shape))), extremes(design, 30, 9)])
    _, gold = assert_c_hls_exact(design, tmp_path, x_int)
    t = design.output_type
    inside = gold[(gold > t.lo) & (gold < t.hi)]
    assert len(np.unique(inside)) >= 5, "(nearly) every output saturated: the test would not see the rescale"
    if relu_last:
        assert gold.min() >= 0 and (gold == 0).any()


# ---- the tests can fail ----------------------------------------------------------------

def test_corrupted_multipliers_are_caught(tmp_path):
    """Negating the first row of a multiplier table in the generated C or HLS C++ source
    makes the native build disagree with golden."""
    base, x_test = _example("digits_cnn", bits=8)
    design = _rescaled(base, _real_mults, seed=2)
    x_int = _samples(design, x_test[:20], 10, seed=3)
    out, gold = assert_c_hls_exact(design, tmp_path, x_int)
    table = re.search(r"const \w+ (\w+)_mult\[", (out / "c" / "nnforge_model.c").read_text()).group(1)
    n = len(x_int)
    for sub, run, src in (("c", run_c, "nnforge_model.c"), ("hls", run_hls, "nnforge_hls.cpp")):
        negate_first_row(out / sub / src, f"{table}_mult")
        y = run(design.lowered(sub), out / sub, out / "build" / f"{sub}_bad", x_int.reshape(n, -1), QUIET).y
        assert not np.array_equal(y, gold), sub
