"""Per-output-channel requantization in the Verilog backend: every linear layer (the Dense
chain engine and the Conv / Dense window engines, folded or not) computes
``sat(round_half_up((acc * rq_mult[n]) >> rq_shift))`` exactly as the golden model, for
per-channel power-of-two weights (exponents, shifted in) and for arbitrary multipliers
(a multiplier ROM), with shifts <= 0, relu layers and narrowed output bounds; designs
without multipliers keep their Verilog text. Simulations are small (a few test images
plus extreme inputs) and need Verilator (marked ``slow``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnforge
from nnforge.codegen import verilog
from nnforge.codegen.lower import lower
from nnforge.codegen.verilog_cnn import write_cnn
from nnforge.design import Design
from nnforge.ir import FixedType
from nnforge.ir.ops.dense import requant_params
from nnforge.sim import verilog as sim_verilog
from nnforge.sim.progress import QUIET

from conftest import extremes, verilog_exact

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_DESIGNS: dict = {}


def _per_channel(example: str) -> Design:
    """The example compiled with per-channel 4-bit weights (power-of-two multipliers)."""
    if example not in _DESIGNS:
        ex = EXAMPLES / example
        _DESIGNS[example] = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"],
                                            weight_bits=4, act_bits=8, per_channel=True)
    return _DESIGNS[example]


def _linear(q):
    return [n for n in q.topo() if n.op in ("Dense", "Conv")]


def _with_mults(design: Design, seed: int, lo: int, hi: int, extra_shift: int, narrow=(), last=None) -> Design:
    """A copy of ``design`` whose linear layers rescale by random multipliers in [lo, hi)
    per output channel and shift ``extra_shift`` more; ``narrow``: (tensor, lo, hi) bounds
    set on tensors' types; ``last``: (lo, hi, shift, width, out_lo, out_hi) of the last
    layer instead: multipliers in [lo, hi), that shift (<= 0: the product is not scaled
    down) and a wider signed output type with bounds [out_lo, out_hi] (to keep most of the
    outputs unsaturated). The golden model defines the result."""
    rng = np.random.default_rng(seed)
    q = design.qgraph.copy()
    layers = _linear(q)
    for node in layers:
        mult, shift = requant_params(node, q)
        m_lo, m_hi, shift = (last[0], last[1], last[2]) if last and node is layers[-1] else \
            (lo, hi, int(shift) + extra_shift)
        m = rng.integers(m_lo, m_hi, mult.size)
        q.replace_node(node.name, node.with_(attrs={**node.attrs, "rq_mult": tuple(int(v) for v in m),
                                                    "rq_shift": shift}))
    if last:
        t = q.qtype(q.outputs[0])
        q.set_qtype(q.outputs[0], FixedType(last[3], t.frac, True, bounds=(last[4], last[5])))
    for tensor, b_lo, b_hi in narrow:
        t = q.qtype(tensor)
        q.set_qtype(tensor, FixedType(t.width, t.frac, t.signed, bounds=(b_lo, b_hi)))
    return Design(design.float_graph, q, design.config)


def _without_mults(design: Design) -> Design:
    """``design`` with every multiplier dropped (1) and the shifts kept."""
    q = design.qgraph.copy()
    for node in _linear(q):
        mult, shift = requant_params(node, q)
        q.replace_node(node.name, node.with_(attrs={**node.attrs, "rq_mult": (1,) * mult.size, "rq_shift": shift}))
    return Design(design.float_graph, q, design.config)


def _batch(design: Design, example: str, n: int, seed: int) -> np.ndarray:
    """``n`` test images and one random extreme input (both corners of the input type
    in two more rows)."""
    x = design.quantize_input(np.load(EXAMPLES / example / "test.npz")["x"][:n])
    return np.concatenate([x, extremes(design, 3, seed)])


def _check_meaningful(design: Design, x: np.ndarray) -> None:
    """The multipliers matter on this batch (an engine ignoring them would fail) and the
    outputs are not all saturated."""
    gold = design.predict_int(x)
    assert not np.array_equal(gold, _without_mults(design).predict_int(x))
    t = design.output_type
    assert np.mean((gold > t.lo) & (gold < t.hi)) > 0.3


def _modes(design: Design) -> set[str]:
    out = set()
    for node in _linear(design.qgraph):
        m, _ = requant_params(node, design.qgraph)
        out.add("none" if np.all(m == 1) else
                "pow2" if np.all((m > 0) & ((m & (m - 1)) == 0)) else "mult")
    return out


# ----------------------------------------------------------------------------- fast

def test_unit_multipliers_keep_the_text(tmp_path):
    """Explicit multipliers that are all 1 generate exactly the text of a design without
    them, in the Dense chain engine and in the window engines (folded, and one lane each)."""
    ex = EXAMPLES / "digits_cnn"
    d = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    ones = _with_mults(d, 0, 1, 2, 0)
    assert all(n.attrs.get("rq_mult") for n in _linear(ones.qgraph))
    for mode in ("balanced", "sequential"):
        write_cnn(d.qgraph, tmp_path / f"a_{mode}", parallelism=mode)
        write_cnn(ones.qgraph, tmp_path / f"b_{mode}", parallelism=mode)
    m = nnforge.compile(EXAMPLES / "digits_mlp" / "model.onnx",
                        calibration=np.load(EXAMPLES / "digits_mlp" / "calibration.npz")["x"], bits=8)
    verilog.write(lower(m.qgraph), tmp_path / "a_dense", "balanced")
    verilog.write(lower(_with_mults(m, 0, 1, 2, 0).qgraph), tmp_path / "b_dense", "balanced")
    for kind in ("balanced", "sequential", "dense"):
        a, b = tmp_path / f"a_{kind}", tmp_path / f"b_{kind}"
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        for name in names:
            assert (a / name).read_text() == (b / name).read_text(), (kind, name)


def test_engines_choose_shift_or_multiplier(tmp_path):
    """Per-channel power-of-two weights shift (no extra multiplier); arbitrary multipliers
    add one multiplier per engine (per PE lane in the Dense chain, none when its one group
    makes them constants; per PE lane in the window engines)."""
    d = _per_channel("digits_cnn")
    assert _modes(d) >= {"pow2"}
    pt = write_cnn(d.qgraph, tmp_path / "pc", parallelism="balanced")
    texts = [(tmp_path / "pc" / ly["file"]).read_text() for ly in pt["layers"] if ly["op"] == "Conv"]
    assert all("accx0 <<< m2_0" in t and " * $signed" not in t for t in texts)
    ex = EXAMPLES / "digits_cnn"
    per_tensor = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    per_tensor = write_cnn(per_tensor.qgraph, tmp_path / "pt", parallelism="balanced")
    # shifts cost no multiplier; the 4-bit weights' products are LUT multipliers, as many as
    # the 8-bit design's multiplier blocks
    assert pt["totals"]["multipliers"] == 0
    assert pt["totals"]["lut_multipliers"] == per_tensor["totals"]["multipliers"] > 0
    assert per_tensor["totals"]["lut_multipliers"] == 0
    r = _with_mults(d, 1, 1 << 13, 1 << 15, 14)
    rt = write_cnn(r.qgraph, tmp_path / "r", parallelism="balanced")
    # the wide per-channel products take a multiplier block per PE lane, the 4-bit ones
    # stay LUTs (the same folds as without the multipliers)
    linear = [ly for ly in rt["layers"] if ly["op"] in ("Conv", "Dense")]
    assert len(linear) == len(_linear(r.qgraph)) and all(ly["multipliers"] == ly["pe"] for ly in linear)
    assert [(ly["pe"], ly["simd"]) for ly in rt["layers"]] == [(ly["pe"], ly["simd"]) for ly in pt["layers"]]
    assert rt["totals"]["multipliers"] == sum(ly["pe"] for ly in linear) > len(linear)
    assert rt["totals"]["lut_multipliers"] == pt["totals"]["lut_multipliers"]
    m = _with_mults(_per_channel("digits_mlp"), 2, 1 << 13, 1 << 15, 14)
    hw = lower(m.qgraph)
    par = verilog.write(hw, tmp_path / "mp", "parallel")
    # every product at once: the weights are constants, a product per weight neither 0 nor +-2^k
    nontrivial = [int(np.count_nonzero((a != 0) & ((a & (a - 1)) != 0)))
                  for a in (np.abs(np.asarray(ly.weights, np.int64)) for ly in hw.layers)]
    assert [ly["lut_multipliers"] for ly in par["layers"]] == nontrivial and 0 < sum(nontrivial)
    assert [ly["multipliers"] for ly in par["layers"]] == [0] * len(hw.layers)  # one group: constants
    seq = verilog.write(hw, tmp_path / "ms", "sequential")
    assert [(ly["multipliers"], ly["lut_multipliers"]) for ly in seq["layers"]] == [(1, 1)] * len(hw.layers)
    assert all(ly["channel_mult"] == "mult" for ly in seq["layers"])


# ----------------------------------------------------------------------------- slow: simulation

# the digits MLP (64 -> 32 -> 16 -> 10) with a ROM of multipliers in the first layer and
# one group (constant multipliers) in the others
_MLP_CUSTOM = [(2, 8), (16, 2), (10, 2)]


@pytest.mark.slow
def test_mlp_per_channel_dense_chain(tmp_path):
    """Digits MLP with per-channel 4-bit weights through the Dense chain engine."""
    d = _per_channel("digits_mlp")
    assert _modes(d) >= {"pow2"}
    x = _batch(d, "digits_mlp", 5, 1)
    _check_meaningful(d, x)
    _dense_chain_exact(d, tmp_path, x, "balanced")


@pytest.mark.slow
@pytest.mark.parametrize("mode,last", [("sequential", None), (_MLP_CUSTOM, (0, 16, -2, 20, -300000, 200000)),
                                       ("balanced", (1, 40, 0, 16, -20000, 30000))])
def test_mlp_real_multipliers_dense_chain(tmp_path, mode, last):
    """Random multipliers per channel (wide ones; in the last layer small ones with zeros
    and a shift <= 0), relu layers, and a narrowed output range, in the Dense chain engine."""
    base = _per_channel("digits_mlp")
    d = _with_mults(base, 3, 1 << 13, 1 << 15, 14, narrow=[] if last else [(base.qgraph.outputs[0], -37, 100)],
                    last=last)
    assert any(n.attr("relu") for n in _linear(d.qgraph)) and _modes(d) == {"mult"}
    x = _batch(d, "digits_mlp", 5, 2)
    _check_meaningful(d, x)
    _dense_chain_exact(d, tmp_path, x, mode)


def _dense_chain_exact(d: Design, tmp_path: Path, x: np.ndarray, mode: str) -> None:
    hw = lower(d.qgraph)
    src = tmp_path / "v"
    verilog.write(hw, src, mode)
    sim_verilog.lint(src)
    gold = d.predict_int(x).reshape(len(x), -1)
    res = sim_verilog.run(hw, src, tmp_path / "b", x.reshape(len(x), -1), QUIET, gold)
    assert res.extra["mismatches"] == 0 and np.array_equal(res.y, gold)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["balanced", "sequential"])
def test_cnn_per_channel(tmp_path, mode):
    """Digits CNN with per-channel 4-bit weights: exponent ROMs in the window engines,
    folded (PE lanes) and with one lane."""
    d = _per_channel("digits_cnn")
    x = _batch(d, "digits_cnn", 4, 3)
    _check_meaningful(d, x)
    verilog_exact(d, tmp_path, x, 0.0, mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode,last", [("balanced", None),
                                       ("sequential", None),
                                       ("parallel", (0, 16, 0, 20, -300000, 200000)),
                                       ("sequential", (1, 40, -3, 24, -2000000, 3000000))])
def test_cnn_real_multipliers(tmp_path, mode, last):
    """Random multipliers in every Conv and the Dense (window engines), relu Convs, a
    narrowed hidden relu range and output range; shifts <= 0 in the last layer."""
    base = _per_channel("digits_cnn")
    q = base.qgraph
    convs = [n for n in q.topo() if n.op == "Conv"]
    narrow = [(convs[0].outputs[0], 3, 200)] + ([] if last else [(q.outputs[0], -60, 90)])
    d = _with_mults(base, 4, 1 << 13, 1 << 15, 14, narrow=narrow, last=last)
    assert all(n.attr("relu") for n in convs) and _modes(d) == {"mult"}
    x = _batch(d, "digits_cnn", 4, 5)
    _check_meaningful(d, x)
    verilog_exact(d, tmp_path, x, 0.2 if mode == "sequential" else 0.0, mode)


def _test_value(expr: str, a: int) -> bool:
    """Evaluate one of ``_clamp_tests``' Verilog tests (a constant, or ``({a} < W'shH)``)."""
    if expr in ("1'b0", "1'b1"):
        return expr == "1'b1"
    op, lit = expr.strip("()").split(" ")[1:]
    width, digits = lit.split("'sh")
    c = int(digits, 16)
    c -= (1 << int(width)) if c >> (int(width) - 1) else 0
    return a < c if op == "<" else a > c


@pytest.mark.parametrize("shift", [-3, -1, 0, 1, 2, 5, 9])
@pytest.mark.parametrize("lo,hi", [(-128, 127), (0, 127), (-8, 7), (0, 255), (3, 5), (-1000, 1000)])
def test_clamp_tests_before_rounding_equal_golden(shift, lo, hi):
    """The window engines test the clamp bounds on the unrounded value (so the tests need not
    wait for the rounding adder): for every value of the accumulator's width the tests say
    exactly what sat(round_shift(a)) does, constants where no value can pass or fail."""
    from nnforge.codegen.verilog_window import _clamp_tests
    from nnforge.ir.fixed import round_shift
    qa = 12
    cw = max(qa + 1, qa - shift, abs(lo).bit_length() + 1, abs(hi).bit_length() + 1) + 2
    below, above = _clamp_tests(qa, cw, shift, lo, hi)
    a = np.arange(-(1 << (qa - 1)), 1 << (qa - 1))
    q = round_shift(a, shift)
    for expr, want in ((below, q < lo), (above, q > hi)):
        got = np.array([_test_value(expr.format(a="x"), int(v)) for v in a])
        assert np.array_equal(got, want), (expr, shift, lo, hi)
