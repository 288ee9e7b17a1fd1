"""Row folds of the window engines (codegen/folding.py ``Fold(flat=True)``, line.v.j2): SIMD
lanes over a kernel row's consecutive inputs and PE lanes over output channels in any
number, not only divisors of the channel counts. The options, the cycle formula and the
weight layout are checked directly; chains of engines folded with remainders everywhere
(a shorter last block of output channels, a last step past the kernel row, lanes that
rotate with the output column, pad columns read from the row buffer) are simulated in
Verilator and compared with the golden model on every output integer."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import verilog_exact
from nnforge.codegen import verilog_cnn
from nnforge.codegen.folding import (Fold, Geometry, compute_cycles, meet, option_list as fold_options, options,
                                     row_foldable, valid, within)
from nnforge.codegen.verilog_window import row_weights


def _geometry(**kw):
    g = dict(c=16, h=8, w=8, kh=3, kw=3, pt=1, pl=1, pb=1, pr=1, oh=8, ow=8, m=16, cg=16, mg=16)
    g.update(kw)
    return Geometry(**g)


# ----------------------------------------------------------------------------- fast checks

def test_row_fold_options_and_cycles():
    g = _geometry()
    assert row_foldable(g)
    opts = options(g)
    assert Fold(4, 7, flat=True) in opts and Fold(3, 10, flat=True) in opts
    assert Fold(4, 9, flat=True) not in opts  # 9 lanes take as many steps (6) as 8: never preferred
    assert valid(g, Fold(4, 8, flat=True)) and not valid(g, Fold(4, 49, flat=True))
    assert not valid(g, Fold(17, 1, flat=True)) and not valid(g, Fold(3, 1))  # PE 3 by channel: not a divisor
    # 3 steps of 7 per kernel row of 48 inputs (the last step 6 past the row) -> 3 * 7 = 21
    # taps; 4 blocks of 4 output channels
    assert compute_cycles(g, Fold(4, 7, flat=True)) == 64 * 4 * 21
    # 6 blocks of 3 channels, the last of 1: a block never leaves faster than its outputs
    assert compute_cycles(g, Fold(3, 48, flat=True)) == 64 * (5 * 3 + 3)
    assert compute_cycles(g, Fold(16, 48, flat=True)) == 64 * 16
    # the same lanes by channel where the channels divide: as fast
    assert compute_cycles(g, Fold(4, 8, flat=True)) == compute_cycles(g, Fold(4, 8)) == 64 * 4 * 18
    # grouped and column-dilated convolutions take lanes by channel only
    assert not row_foldable(_geometry(cg=8, mg=8))
    assert not row_foldable(_geometry(dw=2))
    assert row_foldable(_geometry(dw=2, kw=1, pl=0, pr=0))
    assert not any(f.flat for f in options(_geometry(cg=8, mg=8)))


def test_budget_moves_the_narrowest_units_into_luts():
    """A multiplier budget that the picks exceed by a little takes the LUT alternatives of
    the units with the fewest lanes, and only as many as it needs."""
    g1, g2 = _geometry(m=4, c=4, cg=4, mg=4, kh=1, kw=1, pt=0, pl=0, pb=0, pr=0), _geometry()
    units = {"small": fold_options(g1), "big": fold_options(g2)}
    period = 64 * 16 * 18 + 3  # big needs 8 lanes, small 1
    picks = meet(units, period)
    assert picks["small"].cost == 1 and picks["big"].cost == 8
    assert within(picks, 9) is picks
    moved = within(picks, 8)
    assert moved["small"].cost == 0 and moved["small"].fold.lut and moved["big"] is picks["big"]
    assert within(picks, 7) is None  # the big unit has no LUT alternative


def test_row_weights_layout():
    rng = np.random.default_rng(0)
    m, c, kh, kw = 5, 3, 2, 3
    w = rng.integers(-9, 10, (m, c, kh, kw))
    fold = Fold(2, 4, flat=True)
    blocks, steps = 3, 3  # ceil(5 / 2), ceil(9 / 4)
    words = row_weights(w, fold, blocks, steps)
    assert words.shape == (blocks * kh * steps, fold.pe * fold.simd)
    for mo in range(blocks):
        for ky in range(kh):
            for t in range(steps):
                word = words[(mo * kh + ky) * steps + t]
                for p in range(fold.pe):
                    for j in range(fold.simd):
                        o, k = mo * fold.pe + p, t * fold.simd + j
                        want = w[o, k % c, ky, k // c] if o < m and k < kw * c else 0
                        assert word[p * fold.simd + j] == want


# ----------------------------------------------------------------------------- simulations

def _model(rng):
    """Conv 3->5 (3x3, stride 2, asymmetric pads) -> Relu -> Conv 5->7 (3x3, pads 1) -> Conv
    7->6 (1x1) -> GlobalAveragePool -> Dense 6->4, on a 3x9x11 input."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 2, 0, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
             helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w4", "b4"], ["y"], transB=1)]
    inits = {"w1": (5, 3, 3, 3), "b1": (5,), "w2": (7, 5, 3, 3), "b2": (7,), "w3": (6, 7, 1, 1), "b3": (6,),
             "w4": (4, 6), "b4": (4,)}
    g = helper.make_graph(nodes, "rowfold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 11])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                          [numpy_helper.from_array(rng.normal(0, .4, s).astype(np.float32), k) for k, s in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


# per MAC engine in graph order: remainders in PE and SIMD, a rotation (5 channels a column,
# 4 or 7 lanes), a step wider than a channel row, one lane, every lane at once; products of
# 8-bit operands built from LUTs (a budget's fallback)
FOLDS = {
    "mixed": [Fold(2, 4, flat=True, lut=True), Fold(3, 7, flat=True), Fold(4, 3, flat=True), Fold(3, 5, flat=True)],
    "edges": [Fold(5, 1, flat=True), Fold(1, 15, flat=True), Fold(6, 7, flat=True), Fold(1, 6, flat=True, lut=True)],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(FOLDS))
def test_row_folds_exact(case, tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    design = nnforge.compile(_model(rng), calibration=rng.normal(0, 1, (32, 3, 9, 11)).astype(np.float32), bits=8)
    folds = FOLDS[case]

    def forced(engines, goal, estimate=None):
        macs = [e for e in engines if e.kind == "mac"]
        assert len(macs) == len(folds)
        return {e.name: f for e, f in zip(macs, folds)}, {"mode": "forced"}

    monkeypatch.setattr(verilog_cnn, "choose", forced)
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (12, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    info, res = verilog_exact(design, tmp_path, x, backpressure=0.25 if case == "edges" else 0.0)
    macs = [ly for ly in info["layers"] if ly["multipliers"] or ly["lut_multipliers"]]
    assert [(ly["pe"], ly["simd"], ly["row_fold"]) for ly in macs] == [(f.pe, f.simd, True) for f in folds]
    assert [ly["lut_multipliers"] for ly in macs] == [f.multipliers if f.lut else 0 for f in folds]
    if case == "mixed":  # no backpressure: the analytic frame time is the measured one, within 10%
        gap = res.extra["output_gaps"][-1]
        assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap
