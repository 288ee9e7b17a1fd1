"""Real-scale Add (``rq_mult = (m_a, m_b)``, ``rq_shift``: ``y = sat(round_half_up((a * m_a +
b * m_b) >> rq_shift))``, as ``ir/ops/add.py``) in the C, HLS C++ and Verilog backends: the
residual example compiled with ``scale="real"`` (symmetric and asymmetric, narrowed output
bounds) and hand-edited Adds with shifts > 0, = 0 and < 0 give every output integer of
golden; the multipliers appear in every generated source and a corrupted one is caught.
(The power-of-two Add keeps its text: tests/test_join_ops.py and the example tests.)"""

import re

import numpy as np
import pytest

import nnforge
from conftest import ROOT, extremes, verilog_exact
from nnforge.design import Design
from nnforge.ir.interp import run_int
from nnforge.ir.ops.add import add_params
from nnforge.sim.native import run_c, run_hls
from nnforge.sim.progress import QUIET

EX = ROOT / "examples" / "digits_resnet"


@pytest.fixture(scope="module")
def data():
    test = np.load(EX / "test.npz")
    return np.load(EX / "calibration.npz")["x"], test["x"], test["y"]


@pytest.fixture(scope="module")
def designs(data):
    cal = data[0]
    return {"real": nnforge.compile(EX / "model.onnx", calibration=cal, scale="real"),
            "asymmetric": nnforge.compile(EX / "model.onnx", calibration=cal, scale="real", asymmetric=True)}


def _adds(q):
    return [n for n in q.topo() if n.op == "Add"]


def _samples(design, x, n_img, n_ext, seed):
    return np.concatenate([design.quantize_input(x[:n_img]), extremes(design, n_ext, seed)]).astype(np.int64)


def _c_line(ma, mb):
    """The accumulation each real-scale Add step has in C and HLS C++."""
    return re.compile(rf"acc = \(int64_t\)\w+\[i\] \* \(int64_t\){ma} \+ \(int64_t\)\w+\[i\] \* \(int64_t\){mb};")


def _assert_c_hls_exact(design, tmp_path, x_int):
    """Write C and HLS C++, check that every Add's multipliers are in both, build natively and
    require every output integer of every sample to equal golden's. Returns the output folder."""
    n = len(x_int)
    gold = design.predict_int(x_int).reshape(n, -1)
    out = design.write(tmp_path / "out", targets=["c", "hls"])
    q = design.qgraph
    for name, run, src in (("c", run_c, "nnforge_model.c"), ("hls", run_hls, "nnforge_hls.cpp")):
        text = (out / name / src).read_text()
        for node in _adds(q):
            ma, mb, shift = add_params(node, q)
            assert len(_c_line(ma, mb).findall(text)) == 1, (name, node.name, ma, mb)
        y = run(design.lowered(name), out / name, out / "build" / name, x_int.reshape(n, -1), QUIET).y
        bad = np.flatnonzero((y.reshape(n, -1) != gold).any(1))
        assert bad.size == 0, f"{name}: {bad.size} sample(s) differ, first {bad[0]}: {y[bad[0]]} vs {gold[bad[0]]}"
    return out


def _assert_verilog_exact(design, tmp_path, x_int):
    """Verilator on ``x_int`` equals golden, and each Add's module multiplies by its two
    constants (signed literals of the working width)."""
    verilog_exact(design, tmp_path, x_int)
    q = design.qgraph
    texts = {p.name: p.read_text() for p in (tmp_path / "v").glob("*.v")}
    for node in _adds(q):
        ma, mb, shift = add_params(node, q)
        hits = [f for f, t in texts.items()
                if re.search(rf"\* \d+'sh0*{ma:x}\) \+ \(.* \* \d+'sh0*{mb:x}\)", t)
                and f"y = sat(round_half_up((a * {ma} + b * {mb}) >> {shift}))" in t]
        assert len(hits) == 1, (node.name, ma, mb, hits)


def _add_outputs(design, x_int):
    """Golden values of every Add's output on ``x_int``: {node name: (values, out type)}."""
    env = run_int(design.qgraph, x_int, keep=True)
    return {n.name: (env[n.outputs[0]], design.qgraph.qtype(n.outputs[0])) for n in _adds(design.qgraph)}


def _assert_exercised(design, x_int, every_bound: bool):
    """Every Add sees many values inside its output bounds, and some input saturates some
    Add (``every_bound``: every Add)."""
    reached = []
    for name, (v, t) in _add_outputs(design, x_int).items():
        inside = v[(v > t.lo) & (v < t.hi)]
        assert len(np.unique(inside)) >= 20, f"{name}: (nearly) every output saturated"
        reached.append(bool(((v == t.lo) | (v == t.hi)).any()))
    assert all(reached) if every_bound else any(reached), f"Adds reaching a bound: {reached}"


@pytest.mark.parametrize("kind", ["real", "asymmetric"])
def test_real_scale_resnet_every_backend(kind, designs, data, tmp_path):
    design = designs[kind]
    q = design.qgraph
    adds = _adds(q)
    assert len(adds) == 2 and all(n.attrs.get("rq_mult") is not None for n in adds)
    for n in adds:  # real multipliers, not the power-of-two alignment
        ma, mb, shift = add_params(n, q)
        assert ma & (ma - 1) and mb & (mb - 1) and shift > 0
    if kind == "asymmetric":  # output bounds narrower than the width's range
        t = q.qtype(adds[0].outputs[0])
        assert (t.lo, t.hi) != (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1)
    _, x, y = data
    x_int = _samples(design, x, 200, 60, seed=3)
    _assert_exercised(design, x_int, every_bound=False)
    _assert_c_hls_exact(design, tmp_path / "c", x_int)
    _assert_verilog_exact(design, tmp_path, _samples(design, x, 4, 4, seed=4))


def _hand_edited(base, choose, seed):
    """A Design over a copy of ``base.qgraph`` whose Adds get ``(rq_mult, rq_shift)`` from
    ``choose(rng, index, node, q)``."""
    q = base.qgraph.copy()
    rng = np.random.default_rng(seed)
    for i, node in enumerate(_adds(q)):
        (ma, mb), s = choose(rng, i, node, q)
        q.replace_node(node.name, node.with_(attrs={**node.attrs, "rq_mult": (int(ma), int(mb)),
                                                     "rq_shift": int(s)}))
    q.verify()
    return Design(base.float_graph, q, base.config)


def _wide_or_left(rng, i, node, q):
    """The first Add: 12-14 bit multipliers and the shift that puts the largest sum at about
    twice the output bound; the second: small multipliers and an exact left shift by 1."""
    if i == 0:
        m = [int(v) for v in rng.integers(2 ** 12, 2 ** 14, size=2)]
        ta, tb, to = (q.qtype(t) for t in (*node.inputs, node.outputs[0]))
        big = max(abs(ta.lo), ta.hi) * m[0] + max(abs(tb.lo), tb.hi) * m[1]
        return m, max(1, (big // to.hi).bit_length() - 1)
    return rng.integers(1, 4, size=2), -1


def _zero_or_left2(rng, i, node, q):
    """Shift 0 with one multiplier 0 (that operand dropped), then shift -2 with multipliers 1."""
    return ((0, int(rng.integers(1, 4))), 0) if i == 0 else ((1, 1), -2)


def test_hand_edited_adds_left_shift(designs, data, tmp_path):
    """rq_shift > 0 with 12-14 bit multipliers, and rq_shift < 0 (an exact left shift), on the
    asymmetric design (narrowed bounds), on C, HLS and Verilog."""
    design = _hand_edited(designs["asymmetric"], _wide_or_left, seed=5)
    shifts = [add_params(n, design.qgraph)[2] for n in _adds(design.qgraph)]
    assert shifts[0] > 0 and shifts[1] < 0
    _, x, _ = data
    x_int = _samples(design, x, 100, 60, seed=6)
    _assert_exercised(design, x_int, every_bound=True)
    _assert_c_hls_exact(design, tmp_path / "c", x_int)
    _assert_verilog_exact(design, tmp_path, _samples(design, x, 3, 5, seed=7))


def test_hand_edited_adds_zero_shift_c_hls(designs, data, tmp_path):
    """rq_shift = 0 with a multiplier 0, and rq_shift = -2 with multipliers 1 (C and HLS)."""
    design = _hand_edited(designs["real"], _zero_or_left2, seed=8)
    assert [add_params(n, design.qgraph)[2] for n in _adds(design.qgraph)] == [0, -2]
    _, x, _ = data
    _assert_c_hls_exact(design, tmp_path, _samples(design, x, 100, 60, seed=9))


def test_corrupted_add_multiplier_is_caught(designs, data, tmp_path):
    """Changing one Add multiplier in the generated C makes the native build disagree with golden."""
    design = designs["real"]
    q = design.qgraph
    _, x, _ = data
    x_int = design.quantize_input(x[:50])
    out = design.write(tmp_path / "out", targets=["c"])
    src = out / "c" / "nnforge_model.c"
    ma, mb, _ = add_params(_adds(q)[1], q)
    text = src.read_text()
    assert text.count(f"(int64_t){ma} +") == 1
    src.write_text(text.replace(f"(int64_t){ma} +", f"(int64_t){ma // 2} +"))
    y = run_c(design.lowered("c"), out / "c", out / "build" / "c", x_int.reshape(len(x_int), -1), QUIET).y
    assert not np.array_equal(y.reshape(len(x_int), -1), design.predict_int(x_int).reshape(len(x_int), -1))
