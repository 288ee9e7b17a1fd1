"""Verilog window engines (codegen/verilog_window.py, hls_templates/verilog/line.v.j2) on the
general window geometry: Conv with stride, dilation, asymmetric pads and any groups; MaxPool
and AveragePool (count_include_pad 0/1) with any kernel, stride, pads, dilation and ceil
mode; GlobalMaxPool / GlobalAveragePool; 1-D (C, L) and 2-D (C, H, W). Each chain of
engines is one Verilator build, compared with the golden model in every integer, inputs
including the input type's extremes (all-minimum frames: padding must never win a max)."""

import dataclasses

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import verilog_exact
from nnforge.codegen.lower import BackendError
from nnforge.codegen.program import window
from nnforge.codegen.verilog_cnn import lower_cnn, write_cnn
from nnforge.codegen.verilog_window import _counts
from nnforge.ir.ops.window import window_counts


def _model(nodes, shape, out_shape, inits, rng):
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
                          [numpy_helper.from_array(rng.normal(0, s, shp).astype(np.float32), k)
                           for k, (shp, s) in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _chain_2d_a(rng):
    """Conv(stride 2, asymmetric pads) -> MaxPool(pads, ceil) -> AveragePool(pads, count 0)
    -> Conv(dilation 2, groups 2) -> GlobalMaxPool."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 0, 2, 1]),
             helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2, 3], strides=[1, 2], pads=[1, 1, 0, 1],
                              ceil_mode=1),
             helper.make_node("AveragePool", ["p1"], ["a1"], kernel_shape=[2, 2], pads=[1, 0, 0, 1],
                              count_include_pad=0),
             helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], dilations=[2, 2],
                              pads=[2, 2, 2, 2], group=2),
             helper.make_node("GlobalMaxPool", ["c2"], ["y"])]
    inits = {"w1": ((4, 2, 3, 3), .5), "b1": ((4,), .1), "w2": ((6, 2, 3, 3), .3), "b2": ((6,), .1)}
    return _model(nodes, (2, 9, 8), (6, 1, 1), inits, rng), (2, 9, 8), \
        ["Conv", "MaxPool", "AveragePool", "Conv", "GlobalMaxPool"]


def _chain_2d_b(rng):
    """AveragePool(count_include_pad 1, ceil, asymmetric pads) on the input -> depthwise Conv
    with channel multiplier 2 (stride 1x2, dilation 2x1) -> MaxPool(dilation, pads) ->
    grouped 1x2 Conv (groups 3, 2 channels per group) -> GlobalAveragePool."""
    nodes = [helper.make_node("AveragePool", ["x"], ["a1"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
                              count_include_pad=1, ceil_mode=1),
             helper.make_node("Conv", ["a1", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[1, 2],
                              dilations=[2, 1], pads=[2, 1, 1, 0], group=3),
             helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2, 2], dilations=[2, 1], pads=[0, 1, 1, 0]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[1, 2], group=3),
             helper.make_node("GlobalAveragePool", ["c2"], ["y"])]
    inits = {"w1": ((6, 1, 3, 3), .5), "b1": ((6,), .1), "w2": ((3, 2, 1, 2), .5), "b2": ((3,), .1)}
    return _model(nodes, (3, 8, 7), (3, 1, 1), inits, rng), (3, 8, 7), \
        ["AveragePool", "Conv", "MaxPool", "Conv", "GlobalAveragePool"]


def _chain_1d_a(rng):
    """1-D: MaxPool(pads, ceil) on the input -> Conv(stride 2, asymmetric pads) ->
    AveragePool(count 0, asymmetric pads) -> Conv(dilation 3, groups 2) ->
    AveragePool(count 1, ceil) -> GlobalMaxPool."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p1"], kernel_shape=[3], strides=[2], pads=[2, 1], ceil_mode=1),
             helper.make_node("Conv", ["p1", "w1", "b1"], ["c1"], kernel_shape=[3], strides=[2], pads=[0, 2]),
             helper.make_node("AveragePool", ["c1"], ["a1"], kernel_shape=[3], pads=[1, 2], count_include_pad=0),
             helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], kernel_shape=[3], dilations=[3], pads=[3, 3],
                              group=2),
             helper.make_node("AveragePool", ["c2"], ["a2"], kernel_shape=[2], strides=[2], pads=[1, 0],
                              count_include_pad=1, ceil_mode=1),
             helper.make_node("GlobalMaxPool", ["a2"], ["y"])]
    inits = {"w1": ((4, 2, 3), .5), "b1": ((4,), .1), "w2": ((4, 2, 3), .5), "b2": ((4,), .1)}
    return _model(nodes, (2, 23), (4, 1), inits, rng), (2, 23), \
        ["MaxPool", "Conv", "AveragePool", "Conv", "AveragePool", "GlobalMaxPool"]


def _chain_1d_b(rng):
    """1-D on an unsigned input (no divider offset): AveragePool(count 1, ceil) ->
    MaxPool(dilation 2, pads) -> depthwise Conv(pads 2) -> GlobalAveragePool -> Dense."""
    nodes = [helper.make_node("AveragePool", ["x"], ["a1"], kernel_shape=[4], strides=[3], pads=[2, 1],
                              count_include_pad=1, ceil_mode=1),
             helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2], dilations=[2], pads=[1, 1]),
             helper.make_node("Conv", ["p1", "w1", "b1"], ["c1"], kernel_shape=[5], pads=[2, 2], group=3),
             helper.make_node("GlobalAveragePool", ["c1"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    inits = {"w1": ((3, 1, 5), .5), "b1": ((3,), .1), "w2": ((2, 3), .5), "b2": ((2,), .1)}
    return _model(nodes, (3, 16), (2,), inits, rng), (3, 16), \
        ["AveragePool", "MaxPool", "Conv", "GlobalAveragePool", "Dense"]


CHAINS = {"2d_a": _chain_2d_a, "2d_b": _chain_2d_b, "1d_a": _chain_1d_a, "1d_b": _chain_1d_b}


def _design(chain, seed, bits, unsigned=False):
    rng = np.random.default_rng(seed)
    model, shape, ops = CHAINS[chain](rng)
    cal = rng.uniform(0, 1, (64, *shape)) if unsigned else rng.normal(0, 1, (64, *shape))
    return nnforge.compile(model, calibration=cal.astype(np.float32), bits=bits), ops, rng


def _inputs(design, rng, n):
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (n, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    x[2] = np.where(rng.random(design.input_shape) < .5, t.lo, t.hi)  # extremes mixed
    return x


# ----------------------------------------------------------------------------- fast checks

@pytest.mark.parametrize("seed", range(6))
def test_counts_match_golden(seed):
    """The per-position tap counts the engine is built for == the golden window_counts."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        nd = int(rng.integers(1, 3))
        sp = tuple(int(v) for v in rng.integers(1, 9, nd))
        k = tuple(int(v) for v in rng.integers(1, 4, nd))
        attrs = {"kernel_shape": k, "strides": tuple(int(v) for v in rng.integers(1, 4, nd)),
                 "dilations": tuple(int(v) for v in rng.integers(1, 3, nd)),
                 "pads": tuple(int(rng.integers(0, k[i % nd])) for i in range(2 * nd))}
        ceil, incl = bool(rng.integers(2)), bool(rng.integers(2))
        try:
            geo = window(attrs, (2, *sp), k, ceil)
        except ValueError:  # the window does not fit
            continue
        p = {**geo, "cnt_h0": -geo["pt"] if incl else 0, "cnt_h1": geo["h"] + (geo["pb"] if incl else 0),
             "cnt_w0": -geo["pl"] if incl else 0, "cnt_w1": geo["w"] + (geo["pr"] if incl else 0)}
        want = window_counts(sp, k, attrs["strides"], attrs["pads"], attrs["dilations"],
                             (geo["oh"], geo["ow"]) if nd == 2 else (geo["ow"],), incl)
        assert np.array_equal(_counts(p).reshape(want.shape), want)


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_chains_accepted(chain, tmp_path):
    """Every engine of every chain is in scope; analytic timing is self-consistent."""
    design, ops, _ = _design(chain, 1, 6, unsigned=chain == "1d_b")
    lower_cnn(design.qgraph)
    info = write_cnn(design.qgraph, tmp_path / "v")
    assert [ly["op"] for ly in info["layers"]] == ops
    for ly in info["layers"]:
        assert ly["compute_cycles"] >= ly["n_out"] // ly["pe"] * ly["taps"]
        # a line engine overlaps loading and computing: the frame takes the longer of them,
        # and the last input row is followed by the output rows that read it
        assert ly["frame_cycles"] >= max(ly["n_in"], ly["compute_cycles"]) + 3
        assert 3 <= ly["in_to_out"] <= ly["compute_cycles"] + ly["n_in"] + 3 + ly["pipeline_stages"]
    text = (tmp_path / "v" / f"{info['layers'][0]['module']}.v").read_text()
    assert "if (en_m & rd_in) x_q0 <= xmem0[rd_xb0];" in text  # a padded tap reads no word


def test_pool_changing_format_refused(tmp_path):
    design, _, _ = _design("2d_a", 1, 6)
    q = design.qgraph.copy()
    pool = next(n for n in q.topo() if n.op == "MaxPool")
    t = q.qtype(pool.outputs[0])
    q.set_qtype(pool.outputs[0], dataclasses.replace(t, frac=t.frac + 1))
    with pytest.raises(BackendError, match=r"\(op MaxPool\): changes the fixed-point format"):
        write_cnn(q, tmp_path / "v")
    assert not (tmp_path / "v").exists()


# ----------------------------------------------------------------------------- simulations

@pytest.mark.slow
def test_chain_2d_a_exact_and_timing(tmp_path):
    design, ops, rng = _design("2d_a", 1, 6)
    info, res = verilog_exact(design, tmp_path, _inputs(design, rng, 20))
    assert [ly["op"] for ly in info["layers"]] == ops
    gap = res.extra["output_gaps"][-1]  # the analytic frame time is close to the measured one
    assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap


@pytest.mark.slow
def test_chain_2d_b_exact_backpressure(tmp_path):
    design, ops, rng = _design("2d_b", 2, 8)
    info, _ = verilog_exact(design, tmp_path, _inputs(design, rng, 16), backpressure=0.3)
    assert [ly["op"] for ly in info["layers"]] == ops


@pytest.mark.slow
def test_chain_1d_a_exact(tmp_path):
    design, ops, rng = _design("1d_a", 3, 5)
    info, res = verilog_exact(design, tmp_path, _inputs(design, rng, 24))
    assert [ly["op"] for ly in info["layers"]] == ops
    gap = res.extra["output_gaps"][-1]
    assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap


@pytest.mark.slow
def test_chain_1d_b_unsigned_exact(tmp_path):
    design, ops, rng = _design("1d_b", 4, 4, unsigned=True)
    assert not design.input_type.signed
    info, _ = verilog_exact(design, tmp_path, _inputs(design, rng, 24))
    assert [ly["op"] for ly in info["layers"]] == ops
