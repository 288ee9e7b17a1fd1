"""Resize with tap tables on the Verilog target (codegen/verilog_interp.py): linear
(half_pixel, align_corners), cubic and nearest with a non-integer scale, up and down, in
one engine graph; Verilator == golden in every integer, saturation included. Resize with
integer scales stays a gather engine."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import verilog_exact
from nnforge.codegen import estimate
from nnforge.codegen.engines import GatherEngine
from nnforge.codegen.lower import BackendError
from nnforge.codegen.render import render
from nnforge.codegen.verilog_interp import InterpEngine, interp_engine, resize_engine
from nnforge.ir.ops.resize import FRAC, int_taps

IN = (2, 5, 6)
# (mode, coordinate rule, output (C, H, W), extra attributes): every branch is 8 high, so
# the branches concatenate on the width
BRANCHES = [("linear", "half_pixel", (2, 8, 9), {}),
            ("cubic", "align_corners", (2, 8, 4), {}),  # width down
            ("nearest", "half_pixel", (2, 8, 7), {"nearest_mode": "round_prefer_ceil"}),
            ("linear", "align_corners", (2, 8, 3), {})]  # width down


def _model():
    nodes, inits = [], []
    for k, (mode, ctm, out, extra) in enumerate(BRANCHES):
        inits.append(numpy_helper.from_array(np.array([1, *out], np.int64), f"sz{k}"))
        nodes.append(helper.make_node("Resize", ["x", "", "", f"sz{k}"], [f"r{k}"], mode=mode,
                                      coordinate_transformation_mode=ctm, **extra))
    width = sum(out[2] for _, _, out, _ in BRANCHES)
    nodes.append(helper.make_node("Concat", [f"r{k}" for k in range(len(BRANCHES))], ["cat"], axis=3))
    # the channel axis resized too (2 -> 3; the outer channels are copies, so a mismatch
    # upstream stays visible)
    inits.append(numpy_helper.from_array(np.array([1, 3, 8, width], np.int64), "szc"))
    nodes.append(helper.make_node("Resize", ["cat", "", "", "szc"], ["y"], mode="linear",
                                  coordinate_transformation_mode="align_corners"))
    g = helper.make_graph(nodes, "resizes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *IN])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _single(mode, ctm, in_shape, out_shape):
    """One Resize (``sizes``) of a (C, H, W) input."""
    g = helper.make_graph([helper.make_node("Resize", ["x", "", "", "sz"], ["y"], mode=mode,
                                            coordinate_transformation_mode=ctm)],
                          "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
                          [numpy_helper.from_array(np.array([1, *out_shape], np.int64), "sz")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(3)
    return nnforge.compile(_model(), calibration=rng.normal(0, 1, (64, *IN)).astype(np.float32), bits=8)


def _inputs(design, n):
    """Integer inputs: random, then the extremes and 2 x 2 blocks of them (a cubic
    overshoot saturates)."""
    t = design.input_type
    rng = np.random.default_rng(5)
    x = rng.integers(t.lo, t.hi + 1, (n, *IN))
    x[0], x[1] = t.lo, t.hi
    h, w = np.indices(IN)[1:]
    x[2] = np.where((h // 2 + w // 2) % 2 == 0, t.lo, t.hi)
    return x


def _overshoots(design, x) -> bool:
    """Whether the cubic branch's rounded sum for sample ``x`` leaves the output type
    before it saturates (from the integer weights, outside the op's code)."""
    node = [n for n in design.qgraph.topo() if n.op == "Resize"][1]
    acc = np.asarray(x, np.int64)
    for axis, table in enumerate(int_taps(node.attr("taps"))):
        if table is not None:
            starts, weights, _ = table
            m = np.zeros((len(starts), acc.shape[axis]), np.int64)
            for o, (st, w) in enumerate(zip(starts, weights)):
                m[o, st:st + len(w)] = w
            acc = np.moveaxis(np.tensordot(acc, m, axes=([axis], [1])), -1, axis)
    v = (acc + (1 << (2 * FRAC - 1))) >> (2 * FRAC)
    t = design.qgraph.qtype(node.outputs[0])
    return bool(v.min() < t.lo or v.max() > t.hi)


@pytest.mark.slow
def test_resize_variants_verilog_exact(design, tmp_path):
    engines = {n.name: resize_engine(design.qgraph, n, n.name) for n in design.qgraph.topo() if n.op == "Resize"}
    assert len(engines) == len(BRANCHES) + 1 and all(isinstance(e, InterpEngine) for e in engines.values())
    assert [e.multipliers for e in engines.values()] == [2, 2, 0, 2, 1]  # nearest: shifts
    assert [e.numbers["taps"] for e in engines.values()] == [4, 16, 1, 4, 2]
    x_int = _inputs(design, 8)
    assert _overshoots(design, x_int[2])  # the blocks exercise the saturation
    xf = (x_int * 2.0 ** -design.input_type.frac).astype(np.float32)
    assert np.array_equal(design.quantize_input(xf), x_int)
    res = design.verify(xf, backends=["golden", "verilog"])
    assert res.backends["verilog"].mismatches == 0
    # under back-pressure: a cubic engine feeds the top output directly (one channel: the
    # stream is in the model's order, no reorder after it), output ready low 30% of the
    # cycles, so the engine stalls with terms of an element in its pipeline
    rng = np.random.default_rng(7)
    small = nnforge.compile(_single("cubic", "half_pixel", (1, 5, 6), (1, 7, 4)),
                            calibration=rng.normal(0, 1, (32, 1, 5, 6)).astype(np.float32), bits=6)
    t = small.input_type
    info, _ = verilog_exact(small, tmp_path, rng.integers(t.lo, t.hi + 1, (6, 1, 5, 6)), backpressure=0.3)
    assert [layer["op"] for layer in info["layers"]] == ["Resize"] and info["layers"][0]["taps"] == 16


def test_resize_engine_data(design):
    q = design.qgraph
    nodes = [n for n in q.topo() if n.op == "Resize"]
    lin = interp_engine(q, nodes[0], "lin")
    assert lin.numbers["taps"] == 4 and lin.timing().compute_cycles == 2 * 8 * 9 * 4
    mems = {m.name: m for m in lin.memories()}
    # a start ROM per resized axis (one word per output index), a weight ROM ({o, t} words)
    assert mems["st1_rom"].words == 8 and mems["wt2_rom"].words == 9 * 2 and mems["xmem"].words == 60
    ops = lin.operators()
    assert len(ops.multipliers) == lin.multipliers == 2 and ops.registers and ops.adders
    cub = interp_engine(q, nodes[1], "cub")
    assert cub.numbers["taps"] == 16 and {m.name: m.words for m in cub.memories()}["wt2_rom"] == 4 * 4
    near = interp_engine(q, nodes[2], "near")  # one tap of weight 2**FRAC: no weight ROM, no multiplier
    assert near.multipliers == 0 and not near.operators().multipliers
    assert sorted(m.name for m in near.memories()) == ["st1_rom", "st2_rom", "xmem"]


def test_resize_engine_data_agrees_with_its_module(design):
    """The engine's data (memories, operators, control) estimates what its rendered module
    holds: multipliers and RAMs exact, flip-flops within 10%, LUT4s within 15%."""
    q = design.qgraph
    for n in (n for n in q.topo() if n.op == "Resize"):
        e = interp_engine(q, n, n.name).placed(name=n.name, op="Resize", module=f"nnf_{n.name}")
        data = estimate.engine_estimate(e)
        text = estimate.place_memories(render("verilog", e.template, E=e.context()))
        scanned = estimate.module_estimate(text, e.multipliers)
        assert all(data[k] == scanned[k] for k in ("multipliers", "dsp", "bram", "lutram")), (n.name, data, scanned)
        assert abs(data["ffs"] - scanned["ffs"]) <= 0.10 * scanned["ffs"], (n.name, data["ffs"], scanned["ffs"])
        assert abs(data["luts"] - scanned["luts"]) <= 0.15 * scanned["luts"], (n.name, data["luts"], scanned["luts"])


def test_resize_integer_scales_stay_gather():
    g = helper.make_graph([helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest",
                                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
                          "up", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *IN])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 10, 12])],
                          [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")])
    rng = np.random.default_rng(0)
    d = nnforge.compile(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
                        calibration=rng.normal(0, 1, (16, *IN)).astype(np.float32), bits=8)
    node = next(n for n in d.qgraph.topo() if n.op == "Resize")
    assert isinstance(resize_engine(d.qgraph, node, "up"), GatherEngine)
    with pytest.raises(BackendError, match="no tap tables"):
        interp_engine(d.qgraph, node, "up")  # no taps: not an interpolation
