"""Map engines of the Verilog backend (codegen/verilog_map.py): Relu, LeakyRelu, Clip, the
table ops, BatchNormalization and Add / Mul with a constant operand, one element per
cycle with no frame memory, in the channels-last streams of the engine graph (a reorder
engine puts the top output in the IR's order; every layout of a single engine is in
test_verilog_layouts.py). Chains of them run in Verilator/cocotb against the golden
integer model, exactly, on inputs that include the input type's extremes, with and
without back-pressure."""

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import verilog_exact
from nnforge.codegen.lower import BackendError
from nnforge.codegen.registry import UnsupportedOp
from nnforge.codegen.verilog_cnn import LOWERINGS, MAP_OPS, elementwise_or_join, write_cnn
from nnforge.codegen.verilog_map import _pattern, map_engine
from nnforge.ir.ops import ops_with
from nnforge.ir import FixedType
from nnforge.ir.fixed import requantize, saturate
from nnforge.sim import verilog as sim_verilog


def _onnx(nodes, in_shape, out, out_shape, inits):
    g = helper.make_graph(nodes, "map", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", *out_shape])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])  # 14: HardSwish
    m.ir_version = 8
    return m


def _bn(rng, c, x, y):
    inits = {f"{y}_s": rng.uniform(.5, 2, c), f"{y}_b": rng.normal(0, .3, c), f"{y}_m": rng.normal(0, .3, c),
             f"{y}_v": rng.uniform(.5, 2, c)}
    return helper.make_node("BatchNormalization", [x, *inits], [y]), inits


def _chain_signed(rng):
    """x -> BN -> LeakyRelu -> Add(per-channel k) -> Mul(per-position k, constant first)
    -> Clip -> Relu -> Sigmoid on a (3, 4, 5) input."""
    c, h, w = 3, 4, 5
    bn, inits = _bn(rng, c, "x", "bn")
    inits.update(kadd=rng.normal(0, .5, (c, 1, 1)), kmul=rng.normal(0, 1, (1, h, w)),
                 lo=np.array(-0.6), hi=np.array(0.9))
    nodes = [bn, helper.make_node("LeakyRelu", ["bn"], ["lr"], alpha=0.1),
             helper.make_node("Add", ["lr", "kadd"], ["a"]),
             helper.make_node("Mul", ["kmul", "a"], ["m"]),
             helper.make_node("Clip", ["m", "lo", "hi"], ["cl"]),
             helper.make_node("Relu", ["cl"], ["r"]),
             helper.make_node("Sigmoid", ["r"], ["y"])]
    return _onnx(nodes, (c, h, w), "y", (c, h, w), inits), (c, h, w)


def _chain_conv(rng):
    """Conv -> Tanh -> Mul(scalar) -> MaxPool -> Add(whole-tensor k) -> HardSigmoid ->
    HardSwish: map engines between line engines."""
    c = 3
    inits = {"w": rng.normal(0, .5, (c, 2, 3, 3)), "b": rng.normal(0, .1, c), "ks": np.array(0.75),
             "kf": rng.normal(0, .5, (c, 3, 3))}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["cv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Tanh", ["cv"], ["t"]),
             helper.make_node("Mul", ["t", "ks"], ["m"]),
             helper.make_node("MaxPool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Add", ["p", "kf"], ["a"]),
             helper.make_node("HardSigmoid", ["a"], ["hs"], alpha=0.25, beta=0.5),
             helper.make_node("HardSwish", ["hs"], ["y"])]
    return _onnx(nodes, (2, 6, 6), "y", (c, 3, 3), inits), (2, 6, 6)


def _fork_join(rng):
    """Conv -> fork into LeakyRelu and the skip -> Add of the two (a join)."""
    c = 3
    inits = {"w": rng.normal(0, .5, (c, 2, 3, 3)), "b": rng.normal(0, .1, c)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["cv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["cv"], ["lr"], alpha=0.2),
             helper.make_node("Add", ["lr", "cv"], ["y"])]
    return _onnx(nodes, (2, 4, 4), "y", (c, 4, 4), inits), (2, 4, 4)


def _chain_1d(rng):
    """A (C, L) input: Relu (signed in, unsigned out) -> BN -> HardSwish -> Flatten ->
    Add(per-element k) -> Mul(per-element k) -> Tanh."""
    c, n = 4, 6
    bn, inits = _bn(rng, c, "r", "bn")
    inits.update(ka=rng.normal(0, .3, c * n), km=rng.normal(0, 1.5, c * n))
    nodes = [helper.make_node("Relu", ["x"], ["r"]), bn,
             helper.make_node("HardSwish", ["bn"], ["hw"]),
             helper.make_node("Flatten", ["hw"], ["f"]),
             helper.make_node("Add", ["ka", "f"], ["a"]),
             helper.make_node("Mul", ["a", "km"], ["m"]),
             helper.make_node("Tanh", ["m"], ["y"])]
    return _onnx(nodes, (c, n), "y", (c * n,), inits), (c, n)


def _compile(build, seed, bits):
    rng = np.random.default_rng(seed)
    model, shape = build(rng)
    return nnforge.compile(model, calibration=rng.normal(0, 1, (64, *shape)).astype(np.float32), bits=bits), rng


def _inputs(design, rng, n):
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (n, *design.input_shape))
    x[0], x[1], x[2] = t.lo, t.hi, 0
    x[3:5] = rng.choice([t.lo, t.hi], x[3:5].shape)  # corners mixed in one sample
    return x


# ----------------------------------------------------------------------------- fast checks

def test_add_mul_stay_with_the_join_dispatch():
    assert not {"Add", "Mul"} & MAP_OPS
    assert LOWERINGS["Add"] is elementwise_or_join and LOWERINGS["Mul"] is elementwise_or_join
    assert all(LOWERINGS[op] is map_engine for op in MAP_OPS)
    # every table op is a map engine, with no list of them kept here
    assert ops_with(table=True) and ops_with(table=True) <= MAP_OPS
    with pytest.raises(UnsupportedOp, match="cannot implement op Softmax"):
        LOWERINGS["Softmax"]


@pytest.mark.parametrize("build,bits,ops", [
    (_chain_signed, 6, ["BatchNormalization", "LeakyRelu", "Add", "Mul", "Clip", "Relu", "Sigmoid", "Reorder"]),
    (_chain_1d, 5, ["Relu", "BatchNormalization", "HardSwish", "Reorder", "Add", "Mul", "Tanh"])])
def test_engine_numbers(build, bits, ops, tmp_path):
    """Map engines stream (no memory, one element per cycle, 3 cycles in to out) in the
    channels-last order; the one reorder (to the IR's order, before Flatten or at the top
    output) buffers a frame and sets the design's rate."""
    design, _ = _compile(build, 3, bits)
    info = write_cnn(design.qgraph, tmp_path / "v")
    layers = info["layers"]
    assert [ly["op"] for ly in layers] == ops
    n = info["n_in"]
    for ly in layers:
        assert ly["n_in"] == ly["n_out"] == n
        if ly["op"] == "Reorder":
            assert ly["frame_memory_words"] == n and ly["layout"] == list(range(len(ly["layout"])))
            continue
        assert ly["frame_memory_words"] == 0
        assert ly["ii_cycles"] == n + 3 and ly["latency_cycles"] == 3
        # a ROM operand is a multiplier; LeakyRelu's slope is a constant product
        assert ly["multipliers"] == int(ly["op"] in ("BatchNormalization", "Mul"))
    assert info["totals"]["ii_cycles"] == max(ly["ii_cycles"] for ly in layers) > n + 3
    text = {ly["op"]: (tmp_path / "v" / ly["file"]).read_text() for ly in layers}
    if build is _chain_signed:  # channels-last: per-channel constants a ROM of C words read every
        # element, per-position ones a ROM of H*W words read every C elements
        assert "word (i / 1) % 3" in text["BatchNormalization"] and "word (i / 1) % 3" in text["Add"]
        assert "word (i / 3) % 20" in text["Mul"]
    else:  # after the reorder (IR order), a whole-tensor constant: a ROM of every element
        assert "word (i / 1) % 4" in text["BatchNormalization"] and "word (i / 1) % 24" in text["Add"]


def test_pattern():
    shape = (3, 2, 4)
    per_c = np.repeat(np.array([5, -1, 7]), 8)
    assert _pattern([per_c], shape)[:2] == (8, 3)
    per_w = np.tile(np.array([1, 2, 3, 4]), 6)
    assert _pattern([per_w], shape)[:2] == (1, 4)
    per_h = np.tile(np.repeat(np.array([1, 2]), 4), 3)
    r, d, roms = _pattern([per_h], shape)
    assert (r, d) == (4, 2) and list(roms[0]) == [1, 2]
    assert _pattern([np.full(24, 3)], shape)[:2] == (24, 1)
    full = np.arange(24)
    r, d, roms = _pattern([full], shape)
    assert (r, d) == (1, 24)
    assert _pattern([per_c, per_h], shape)[:2] == (4, 6)  # both: per (c, h)
    assert _pattern([per_c, per_w], shape)[:2] == (1, 24)  # (c, w) are not neighbours: every element
    i = np.arange(24)  # what the hardware's counters read: rom[(i // R) % D]
    for a in (per_c, per_w, per_h, full):
        r, d, (rom,) = _pattern([a], shape)
        assert np.array_equal(rom[(i // r) % d], a)


@pytest.mark.parametrize("width,signed,shift", [(6, True, 0), (6, True, 2), (5, False, -1), (8, True, 3)])
def test_relu_clip_are_clamps(width, signed, shift):
    """The identities the engine implements Relu and Clip with (module docstring)."""
    x_t = FixedType(width, 4, signed)
    o_t = FixedType(width, 4 - shift, True)
    x = np.arange(x_t.lo, x_t.hi + 1)
    relu = requantize(np.maximum(x, 0), x_t.frac, o_t)
    assert np.array_equal(relu, np.clip(requantize(x, x_t.frac, FixedType(62, o_t.frac)), max(o_t.lo, 0), o_t.hi))
    u_t = FixedType(width - 1, 0, False)
    for lo_q, hi_q in itertools.product((x_t.lo, -3, 0, 2, x_t.hi), repeat=2):
        gold = saturate(np.minimum(np.maximum(x, lo_q), hi_q), u_t)
        lo, hi = (int(np.clip(v, u_t.lo, u_t.hi)) for v in (min(lo_q, hi_q), hi_q))
        assert np.array_equal(gold, np.clip(x, lo, hi))


def test_broadcast_activation_refused(tmp_path):
    """Add of a (C, 1, 1) activation and a (C, H, W) constant broadcasts the activation:
    refused, naming the node, before any file is written."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Add", ["g", "k"], ["y"])]
    model = _onnx(nodes, (2, 3, 3), "y", (2, 3, 3), {"k": rng.normal(0, 1, (2, 3, 3))})
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (16, 2, 3, 3)).astype(np.float32), bits=8)
    with pytest.raises(BackendError, match=r"node 'Add_1' \(op Add\)"):
        design.write(tmp_path / "o", targets=["verilog"])
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- simulation

@pytest.mark.slow
def test_chain_signed_exact(tmp_path):
    design, rng = _compile(_chain_signed, 1, 6)
    info, res = verilog_exact(design, tmp_path, _inputs(design, rng, 40))
    assert len(info["layers"]) == 8  # the map engines and the reorder to the IR's order
    gap = res.extra["output_gaps"][-1]  # the analytic frame time (the reorder's) is the measured one
    assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap


@pytest.mark.slow
def test_chain_conv_backpressure_exact(tmp_path):
    design, rng = _compile(_chain_conv, 2, 8)
    info, _ = verilog_exact(design, tmp_path, _inputs(design, rng, 24), backpressure=0.3)
    assert [ly["op"] for ly in info["layers"]] == ["Conv", "Tanh", "Mul", "MaxPool", "Add", "HardSigmoid",
                                                   "HardSwish", "Reorder"]


@pytest.mark.slow
def test_fork_join_backpressure_exact(tmp_path):
    design, rng = _compile(_fork_join, 6, 8)
    info, _ = verilog_exact(design, tmp_path, _inputs(design, rng, 16), backpressure=0.3)
    assert [ly["op"] for ly in info["layers"]] == ["Conv", "LeakyRelu", "Add", "Reorder"] and len(info["forks"]) == 1


@pytest.mark.slow
def test_chain_1d_exact(tmp_path):
    design, rng = _compile(_chain_1d, 4, 5)
    verilog_exact(design, tmp_path, _inputs(design, rng, 40))


@pytest.mark.slow
def test_chain_synthesizes(tmp_path):
    """Yosys takes every map engine; its multipliers are the ones the report counts."""
    design, _ = _compile(_chain_signed, 1, 6)
    info = write_cnn(design.qgraph, tmp_path / "v")
    stats = sim_verilog.synth_check(tmp_path / "v")
    assert stats["multipliers"] == info["totals"]["multipliers"] == 2
