"""The first-order energy estimate (energy.py): operation counts against hand computations
on hand-built Dense, Conv and Add graphs; fewer bits, pruning and float16 move the figures
the way they must; report.json's ``energy`` section and report.txt's lines."""

import json
import math
from collections import Counter

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT
from nnforge.energy import (COMPUTE_CLASSES, MEMORY_COUNTS, TABLE_PJ, add, energy_estimate, energy_lines,
                            multiply)
from nnforge.ir import FixedType, Graph, Node
from nnforge.ir.ops import OPS, op_def
from nnforge.ir.ops.base import ARITH_RULES

SRAM_BIT = TABLE_PJ["sram_read_32"] / 32  # pJ per bit read or written
DRAM_EXTRA_BIT = (TABLE_PJ["dram_read_32"] - TABLE_PJ["sram_read_32"]) / 32


def pj(counts: dict) -> float:
    return sum(counts.get(k, 0) * TABLE_PJ[k] for k in COMPUTE_CLASSES) + \
        (counts.get("sram_read_bits", 0) + counts.get("sram_write_bits", 0)) * SRAM_BIT


def full_counts(**nonzero) -> dict:
    return {k: nonzero.get(k, 0) for k in COMPUTE_CLASSES + MEMORY_COUNTS}


def dense_graph(w: np.ndarray, rq_mult=None) -> Graph:
    """x (4,) u8.4 -> Dense (W s8.6, b s20.10, acc 20 bits) -> y s8.2."""
    q = Graph("dense")
    q.add_input("x", (w.shape[1],))
    q.add_const("W", w)
    q.add_const("b", np.arange(w.shape[0]))
    attrs = {"acc_width": 20}
    if rq_mult is not None:
        attrs.update(rq_mult=rq_mult, rq_shift=10)
    q.add_node(Node("fc", "Dense", ["x", "W", "b"], ["y"], attrs))
    q.outputs.append("y")
    for t, ty in {"x": FixedType(8, 4, False), "W": FixedType(8, 6), "b": FixedType(20, 10), "y": FixedType(8, 2)}.items():
        q.set_qtype(t, ty)
    return q


W = np.array([[1, 0, -3, 4], [0, 0, 2, 1], [5, -6, 7, 0]])


def test_dense_counts_by_hand():
    e = energy_estimate(dense_graph(W))
    macs, outs, nnz = W.size, W.shape[0], int(np.count_nonzero(W))
    # per MAC: an 8 x 8-bit multiply, an add at the 20-bit accumulator, 8 + 8 bits read;
    # per output: the 20-bit bias read, the 8-bit write, the rounding add (shift 4 + 6 - 2 > 0)
    want = full_counts(int_mul_8=macs, int_add_32=macs + outs, sram_read_bits=16 * macs + 20 * outs,
                       sram_write_bits=8 * outs)
    assert e["counts"] == want
    assert e["total_pj"] == pytest.approx(pj(want), abs=1e-3)
    assert e["compute_pj"] + e["memory_pj"] == pytest.approx(e["total_pj"], abs=2e-3)
    per_mac = TABLE_PJ["int_mul_8"] + TABLE_PJ["int_add_32"] + 16 * SRAM_BIT
    assert e["sparse_pj"] == pytest.approx(e["total_pj"] - (macs - nnz) * per_mac, abs=1e-3)
    # float32: every MAC a float32 multiply and add reading 2 x 32 bits, 32-bit bias and output
    f32 = macs * (TABLE_PJ["fp_mul_32"] + TABLE_PJ["fp_add_32"] + 64 * SRAM_BIT) + outs * 64 * SRAM_BIT
    assert e["float32_pj"] == pytest.approx(f32, abs=1e-3)
    assert e["dram_weights_pj"] == pytest.approx(macs * 8 * DRAM_EXTRA_BIT, abs=1e-3)
    assert [(ly["name"], ly["op"], ly["macs"], ly["nonzero_macs"]) for ly in e["layers"]] == [("fc", "Dense", macs, nnz)]


def test_dense_real_multiplier_requantization():
    """Multipliers other than powers of two: one multiply of the 20-bit accumulator per output,
    then the rounding add at accumulator + multiplier width (20 + 4 bits: the 32-bit class)."""
    c = energy_estimate(dense_graph(W, rq_mult=(3, 5, 7)))["counts"]
    assert c["int_mul_32"] == W.shape[0] and c["int_add_32"] == W.size + W.shape[0]
    c = energy_estimate(dense_graph(W, rq_mult=(4, 8, 1)))["counts"]  # powers of two: shifts
    assert c["int_mul_32"] == 0


def conv_graph() -> tuple[Graph, np.ndarray]:
    """x (2, 4, 4) u4.2 -> Conv 3x3 pad 1 (W s4.1, b s12.3, acc 12) -> u4.1 -> MaxPool 2x2 -> Reshape."""
    w = np.random.default_rng(0).integers(-8, 8, size=(3, 2, 3, 3))
    w[0, 0] = 0
    q = Graph("conv")
    q.add_input("x", (2, 4, 4))
    q.add_const("W", w)
    q.add_const("b", np.zeros(3, np.int64))
    q.add_node(Node("conv", "Conv", ["x", "W", "b"], ["h"],
                    {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "groups": 1, "relu": True,
                     "acc_width": 12}))
    q.add_node(Node("pool", "MaxPool", ["h"], ["p"], {"kernel_shape": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0),
                                                      "dilations": (1, 1)}))
    q.add_node(Node("flat", "Reshape", ["p"], ["y"], {"shape": (12,)}))
    q.outputs.append("y")
    act = FixedType(4, 1, False)
    for t, ty in {"x": FixedType(4, 2, False), "W": FixedType(4, 1), "b": FixedType(12, 3), "h": act, "p": act,
                  "y": act}.items():
        q.set_qtype(t, ty)
    return q, w


def test_conv_and_pool_counts_by_hand():
    q, w = conv_graph()
    e = energy_estimate(q)
    outs, taps = 3 * 4 * 4, 2 * 3 * 3
    macs, nnz = outs * taps, int(np.count_nonzero(w)) * 16
    pooled = 3 * 2 * 2
    want = full_counts(
        int_mul_8=macs,  # 4 x 4 bits: the 8-bit class
        int_add_16=macs + outs,  # the 12-bit accumulator, and the rounding add (shift 2 + 1 - 1)
        int_add_8=pooled * 3,  # three 4-bit compares per 2x2 window
        sram_read_bits=macs * 8 + outs * 12 + pooled * 4 * 4,
        sram_write_bits=outs * 4 + pooled * 4)
    assert e["counts"] == want
    assert e["total_pj"] == pytest.approx(pj(want), abs=1e-3)
    # the Reshape costs nothing and is not listed; every listed layer adds up to the total
    assert [(ly["name"], ly["macs"], ly["nonzero_macs"]) for ly in e["layers"]] == [("conv", macs, nnz), ("pool", 0, 0)]
    assert sum(ly["total_pj"] for ly in e["layers"]) == pytest.approx(e["total_pj"], abs=1e-2)
    per_mac = TABLE_PJ["int_mul_8"] + TABLE_PJ["int_add_16"] + 8 * SRAM_BIT
    assert e["sparse_pj"] == pytest.approx(e["total_pj"] - (macs - nnz) * per_mac, abs=1e-3)


def test_add_with_real_multipliers_by_hand():
    """a, b (4,) s8 -> Add with rq_mult (3, 5): per output two 8-bit multiplies, the aligned
    operands 8 + 4 bits, their sum 13 bits: one add and one rounding add of the 16-bit class."""
    q = Graph("add")
    q.add_input("a", (4,))
    q.add_input("b", (4,))
    q.add_node(Node("sum", "Add", ["a", "b"], ["y"], {"rq_mult": (3, 5), "rq_shift": 4}))
    q.outputs.append("y")
    for t in ("a", "b", "y"):
        q.set_qtype(t, FixedType(8, 0))
    assert energy_estimate(q)["counts"] == full_counts(int_mul_8=8, int_add_16=8, sram_read_bits=4 * 16,
                                                       sram_write_bits=4 * 8)


def test_width_classes():
    c = Counter()
    add(c, False, 4)
    add(c, False, 9)
    add(c, False, 40)  # wider than 32 bits: two 32-bit adds
    multiply(c, False, 33)  # four 32-bit multiplies
    multiply(c, True, 16)
    add(c, True, 16)  # float adds are float32 (the contract's arithmetic)
    assert c == Counter(int_add_8=1, int_add_16=1, int_add_32=2, int_mul_32=4, fp_mul_16=1, fp_add_32=1)


def test_table_and_derived_figures():
    assert TABLE_PJ["int_add_16"] == pytest.approx(math.sqrt(0.03 * 0.1), abs=1e-4)
    assert TABLE_PJ["int_mul_16"] == pytest.approx(math.sqrt(0.2 * 3.1), abs=1e-4)
    for kind in ("int_add", "int_mul"):
        assert TABLE_PJ[f"{kind}_8"] < TABLE_PJ[f"{kind}_16"] < TABLE_PJ[f"{kind}_32"]
    doc = (ROOT / "docs" / "energy.md").read_text()
    assert all(f"{TABLE_PJ[k]:g}" in doc for k in TABLE_PJ)  # the document states the code's table


def test_every_quantizable_op_has_an_arithmetic_rule():
    for name in OPS:
        d = op_def(name)
        assert (d.arith in ARITH_RULES) != d.traits.float_only, name


def tiny_model():
    """x (1, 6, 6) -> Conv 1->4 3x3 pad 1 -> Relu -> MaxPool 2 -> Flatten -> Gemm 36->5."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32) * 0.1, "b1"),
             numpy_helper.from_array(rng.normal(size=(5, 36)).astype(np.float32) * 0.3, "w2"),
             numpy_helper.from_array(rng.normal(size=(5,)).astype(np.float32) * 0.1, "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


@pytest.fixture(scope="module")
def tiny():
    x = np.random.default_rng(2).normal(size=(32, 1, 6, 6)).astype(np.float32)
    return lambda **kw: nnforge.compile(tiny_model(), calibration=x, **kw)


MACS = 4 * 36 * 9 + 5 * 36


def test_fewer_bits_cost_less(tiny):
    e8, e4 = (energy_estimate(tiny(bits=b).qgraph) for b in (8, 4))
    assert e4["total_pj"] < e8["total_pj"] < e8["float32_pj"]
    assert e4["memory_pj"] < e8["memory_pj"] and e4["dram_weights_pj"] < e8["dram_weights_pj"]
    assert e4["float32_pj"] == e8["float32_pj"]  # the baseline is the same network
    assert sum(ly["macs"] for ly in e8["layers"]) == MACS == e8["counts"]["int_mul_8"]


def test_pruning_lowers_sparse_not_total(tiny):
    dense, pruned = (energy_estimate(tiny(bits=8, **kw).qgraph) for kw in ({}, {"prune": 0.5}))
    assert pruned["counts"]["int_mul_8"] == dense["counts"]["int_mul_8"] == MACS  # every MAC executed
    assert pruned["total_pj"] == pytest.approx(dense["total_pj"], rel=0.02)
    assert pruned["sparse_pj"] < 0.8 * pruned["total_pj"] and pruned["sparse_pj"] < dense["sparse_pj"]
    for ly in pruned["layers"]:  # about half of each layer's weights are 0
        assert ly["nonzero_macs"] <= 0.6 * ly["macs"]


def test_float16_design_counts_float_operations(tiny):
    e = energy_estimate(tiny(float_format="fp16").qgraph)
    c = e["counts"]
    assert c["fp_mul_16"] == MACS and c["fp_add_32"] >= MACS  # 16-bit products, float32 sums
    assert not any(c[k] for k in ("int_mul_8", "int_mul_16", "int_mul_32", "fp_mul_32"))
    assert e["total_pj"] < e["float32_pj"]


def test_report_files(tiny, tmp_path):
    d = tiny(bits=8)
    d.write(tmp_path / "o", targets=["c"])
    info = json.loads((tmp_path / "o" / "report.json").read_text())
    e = info["energy"]
    assert set(e) == {"model", "table_pj", "counts", "compute_pj", "memory_pj", "total_pj", "sparse_pj",
                      "float32_pj", "dram_weights_pj", "layers"}
    assert e["model"].startswith("first-order: operation counts x 45 nm energy per operation (Horowitz, ISSCC 2014);")
    assert list(e["table_pj"]) == list(TABLE_PJ) and e["table_pj"]["dram_read_32"] == 640.0
    assert list(e["counts"]) == list(COMPUTE_CLASSES + MEMORY_COUNTS)
    assert all(isinstance(v, int) for v in e["counts"].values())
    assert all(isinstance(e[k], float) for k in ("compute_pj", "memory_pj", "total_pj", "sparse_pj", "float32_pj",
                                                 "dram_weights_pj"))
    for ly in e["layers"]:
        assert set(ly) == {"name", "op", "macs", "nonzero_macs", "compute_pj", "memory_pj", "total_pj"}
    assert {ly["name"] for ly in e["layers"]} <= {n.name for n in d.qgraph.topo()}
    assert e == json.loads(json.dumps(energy_estimate(d.qgraph)))
    text = (tmp_path / "o" / "report.txt").read_text()
    line = next(x for x in text.splitlines() if x.startswith("Energy per inference: "))
    assert "first-order estimate, 45 nm (Horowitz 2014); see docs/energy.md" in line
    assert f"{e['total_pj'] / 1000:.4g} nJ" in line
    assert text.index("MACs per inference") < text.index("Energy per inference")
    assert "float32 baseline" in text


def test_report_lines_take_any_section():
    assert energy_lines(None) == [] and energy_lines(["x"]) == []
    lines = energy_lines({"total_pj": "many", "sparse_pj": float("nan")})
    assert lines[0].startswith("Energy per inference: 0 nJ")


def test_table_is_the_published_one():
    """The 45 nm figures as published (Horowitz, ISSCC 2014; memory per 32 bits as Han et
    al. 2015 tabulate them), in pJ."""
    published = {"int_add_8": 0.03, "int_add_32": 0.1, "int_mul_8": 0.2, "int_mul_32": 3.1, "fp_add_16": 0.4,
                 "fp_add_32": 0.9, "fp_mul_16": 1.1, "fp_mul_32": 3.7, "sram_read_32": 5.0, "dram_read_32": 640.0}
    assert {k: TABLE_PJ[k] for k in published} == published
