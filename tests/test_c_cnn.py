"""The C backend on convolutional graphs: every op on random shapes and parameters, a
residual DAG and the bundled CNN examples, each with C (gcc) == golden in every integer."""

import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT, extremes, negate_first_row
from nnforge.codegen.program import lower_program
from nnforge.ir import run_int
from nnforge.sim.native import run_c
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import find_tool

BITS = (2, 4, 8, 16)


def make_model(nodes, in_shape, out_name, inits=(), opset=13, out_rank=None):
    out_dims = ["N"] + [f"d{i}" for i in range((out_rank or len(in_shape) + 1) - 1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_dims)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def c_outputs(design, tmp_path, x_int):
    out = design.write(tmp_path / "out", targets=["c"])
    prog = design.lowered("c")
    return run_c(prog, out / "c", out / "build" / "c", x_int.reshape(len(x_int), -1), QUIET).y


def assert_c_exact(model, in_shape, bits, tmp_path, seed, n=64, cal_scale=1.0):
    rng = np.random.default_rng(seed)
    cal = (rng.normal(0, cal_scale, (64, *in_shape))).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, bits=bits)
    x_int = extremes(design, n, seed)
    golden = design.predict_int(x_int).reshape(n, -1)
    c_y = c_outputs(design, tmp_path, x_int)
    assert c_y.shape == golden.shape
    assert np.array_equal(c_y, golden), f"first difference at sample {np.flatnonzero((c_y != golden).any(1))[0]}"
    return design, x_int


# ---- random window geometries -------------------------------------------------------

def _window(rng, nd, ceil_ok=False):
    spatial = [int(rng.integers(3, 9)) for _ in range(nd)]
    kernel = [int(rng.integers(1, 4)) for _ in range(nd)]
    strides = [int(rng.integers(1, 4)) for _ in range(nd)]
    dil = [int(rng.integers(1, 3)) for _ in range(nd)]
    # ONNX wants pads smaller than the kernel for pooling; keep the window inside the padded input
    pads = [int(rng.integers(0, k)) for k in kernel] + [int(rng.integers(0, k)) for k in kernel]
    for i in range(nd):
        while spatial[i] + pads[i] + pads[nd + i] < dil[i] * (kernel[i] - 1) + 1:
            spatial[i] += 1
    return spatial, kernel, strides, dil, pads


def conv_case(seed):
    rng = np.random.default_rng(1000 + seed)
    nd = 1 + seed % 2
    spatial, kernel, strides, dil, pads = _window(rng, nd)
    kind = seed % 3  # 0: dense conv, 1: grouped, 2: depthwise
    groups = [1, 2, 3][kind] if kind < 2 else int(rng.integers(2, 5))
    c = groups * int(rng.integers(1, 3)) if kind < 2 else groups
    m = groups * int(rng.integers(1, 3)) if kind < 2 else groups
    if kind == 1:
        groups = 2
        c, m = 2 * int(rng.integers(1, 3)), 2 * int(rng.integers(1, 3))
    w = rng.normal(0, 1, (m, c // groups, *kernel))
    b = rng.normal(0, 0.5, m)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", strides=strides, pads=pads,
                              dilations=dil, group=groups, kernel_shape=kernel)]
    out = "y"
    if seed % 4 == 3:
        nodes.append(helper.make_node("Relu", ["y"], ["r"], name="relu"))
        out = "r"
    return make_model(nodes, (c, *spatial), out, [("w", w), ("b", b)]), (c, *spatial)


@pytest.mark.parametrize("seed", range(12))
def test_conv_random(seed, tmp_path):
    model, shape = conv_case(seed)
    design, _ = assert_c_exact(model, shape, BITS[seed % 4], tmp_path, seed)
    assert [n.op for n in design.qgraph.topo()] == ["Conv"]


def pool_case(seed, op):
    rng = np.random.default_rng(2000 + seed)
    nd = 1 + seed % 2
    spatial, kernel, strides, dil, pads = _window(rng, nd)
    attrs = dict(kernel_shape=kernel, strides=strides, pads=pads, ceil_mode=(seed // 2) % 2)
    opset = 13
    if op == "MaxPool":
        attrs["dilations"] = dil
    else:
        attrs["count_include_pad"] = (seed // 4) % 2
    c = int(rng.integers(1, 4))
    node = helper.make_node(op, ["x"], ["y"], name="pool", **attrs)
    return make_model([node], (c, *spatial), "y", opset=opset), (c, *spatial)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_random(op, seed, tmp_path):
    model, shape = pool_case(seed, op)
    design, x_int = assert_c_exact(model, shape, BITS[seed % 4], tmp_path, seed)
    # signed inputs: negative window sums reach the division (C truncates, the rule floors)
    assert design.input_type.signed and (x_int < 0).any()
    assert [n.op for n in design.qgraph.topo()] == [op]


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 3)])
def test_global_pool(op, shape, tmp_path):
    model = make_model([helper.make_node(op, ["x"], ["y"], name="gp")], shape, "y")
    for i, bits in enumerate((4, 16)):
        assert_c_exact(model, shape, bits, tmp_path / str(bits), seed=i)


def test_relu_batchnorm_reshape_dense(tmp_path):
    """Standalone BatchNormalization (no linear layer before it), standalone Relu after an
    Add, Flatten and a Dense head."""
    rng = np.random.default_rng(5)
    c = 3
    inits = [("scale", rng.uniform(0.5, 2, c)), ("bias", rng.normal(0, 1, c)), ("mean", rng.normal(0, 0.3, c)),
             ("var", rng.uniform(0.5, 2, c)), ("gw", rng.normal(0, 0.5, (c * 16, 5))), ("gb", rng.normal(0, 0.1, 5))]
    nodes = [helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["bn"], name="bn"),
             helper.make_node("Add", ["bn", "x"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
             helper.make_node("MatMul", ["f", "gw"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "gb"], ["y"], name="fc")]
    model = make_model(nodes, (c, 4, 4), "y", inits, out_rank=2)
    for bits in (4, 8, 16):
        design, _ = assert_c_exact(model, (c, 4, 4), bits, tmp_path / str(bits), seed=bits)
        ops = [n.op for n in design.qgraph.topo()]
        assert ops == ["BatchNormalization", "Add", "Relu", "Reshape", "Dense"], ops


def residual_model(seed=7):
    rng = np.random.default_rng(seed)
    c = 4
    inits = [("w1", rng.normal(0, 0.5, (c, c, 3, 3))), ("b1", rng.normal(0, 0.1, c)),
             ("w2", rng.normal(0, 0.05, (c, 1, 3, 3))), ("b2", rng.normal(0, 0.01, c)),
             ("gw", rng.normal(0, 0.5, (c, 3))), ("gb", rng.normal(0, 0.1, 3))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], group=c),
             helper.make_node("Add", ["c2", "x"], ["s"], name="skip"),
             helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], name="head")]
    return make_model(nodes, (c, 6, 6), "y", inits, out_rank=2), (c, 6, 6)


@pytest.mark.parametrize("bits", [4, 8, 16])
def test_residual_dag(bits, tmp_path):
    model, shape = residual_model()
    design, _ = assert_c_exact(model, shape, bits, tmp_path, seed=bits, n=100, cal_scale=4.0)
    q = design.qgraph
    add = next(n for n in q.topo() if n.op == "Add")
    ta, tb = (q.qtype(t) for t in add.inputs)
    assert ta.frac != tb.frac, (ta, tb)  # the skip join really aligns two formats
    prog = design.lowered("c")
    # the skip value stays live across the branch: its buffer is not reused before the Add
    add_step = next(s for s in prog.steps if s.kind == "add")
    assert len(set(add_step.inputs)) == 2
    # stricter than the harness: no implicit narrowing anywhere in the generated C
    subprocess.run([find_tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-c",
                    str(tmp_path / "out" / "c" / "nnforge_model.c"), "-o", str(tmp_path / "m.o")], check=True)


def test_corrupted_c_is_caught(tmp_path):
    """verify must notice a wrong C model: negate one row of conv weights in the source."""
    model, shape = residual_model()
    cal = np.random.default_rng(0).normal(0, 4, (64, *shape)).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, bits=8)
    x = np.random.default_rng(1).normal(0, 4, (50, *shape)).astype(np.float32)
    out = design.write(tmp_path / "out", targets=["c"])
    assert design.verify(x, backends=["golden", "c"], outdir=out).backends["c"].mismatches == 0
    negate_first_row(out / "c" / "nnforge_model.c", "conv1_w")
    res = design.verify(x, backends=["golden", "c"], outdir=out)
    assert res.backends["c"].mismatches > 0 and not res.ok


def test_one_c_path_and_refusals(tmp_path):
    """The MLP goes through the same Program; a squeeze-excitation Mul (an activation
    broadcast against another) is C-only: Verilog refuses it up front, naming the node,
    and nothing is written."""
    rng = np.random.default_rng(0)
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["s"]),
         helper.make_node("Mul", ["c", "s"], ["se"], name="excite"),
         helper.make_node("Flatten", ["se"], ["y"])],
        "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 18])],
        [numpy_helper.from_array(rng.normal(0, 1, (2, 2, 1, 1)).astype(np.float32), "w"),
         numpy_helper.from_array(np.zeros(2, np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (16, 2, 3, 3)), bits=8)
    for targets in (["c", "verilog"], ["verilog"], ["c", "hls", "verilog"]):
        with pytest.raises(nnforge.BackendError, match=r"node 'excite' \(op Mul\).*broadcasting"):
            design.write(tmp_path / "o", targets=targets)
        assert not (tmp_path / "o").exists()
    res = design.verify(rng.normal(0, 2, (8, 2, 3, 3)), backends=["golden", "c"])
    assert res.backends["c"].samples == 8 and res.backends["c"].mismatches == 0
    mlp = ROOT / "examples" / "digits_mlp"
    d = nnforge.compile(mlp / "model.onnx", calibration=np.load(mlp / "calibration.npz")["x"], bits=8)
    prog = lower_program(d.qgraph)
    assert {s.kind for s in prog.steps} == {"dense"}


@pytest.mark.parametrize("name", ["digits_cnn", "digits_resnet"])
def test_cnn_examples_c(name, tmp_path):
    ex = ROOT / "examples" / name
    test = np.load(ex / "test.npz")
    design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"], bits=8)
    res = design.verify(test["x"], test["y"], backends=["golden", "c"])
    assert res.ok and res.backends["c"].mismatches == 0 and res.backends["c"].samples == len(test["x"])
    assert res.backends["c"].accuracy >= res.float_accuracy - 0.02
    # the intermediate values are really exercised (not all clamped)
    env = run_int(design.qgraph, design.quantize_input(test["x"][:8]), keep=True)
    assert all(np.ptp(env[n.outputs[0]]) > 0 for n in design.qgraph.topo())
