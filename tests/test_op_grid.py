"""The per-op backend grid: for every op the hardware backends implement, small random ONNX
models (seeded shapes and parameters, several cases per op, 8 bits and some 4 or 6),
compiled once, and every backend in :data:`BACKENDS` must give exactly the golden integers
(``design.predict_int``) on every output integer of every sample, the extreme integers of
the input type included.

A new backend column (Verilog) is one entry in :data:`BACKENDS` plus one branch in
:func:`run_backend`; cases a backend refuses on purpose go in :data:`REFUSED` (the test
then checks that the refusal is a clear BackendError naming the node).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

import numpy as np
import pytest
from onnx import helper

import nnforge
from conftest import extremes
from nnforge.codegen.lower import BackendError
from nnforge.sim.native import run_c, run_hls
from nnforge.sim.verilog import run as run_verilog
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import find_tool
from test_cnn_ops import bn_inits, bn_node, conv_bn_model, conv_case, make_model, pool_case, randn, rng_for

BACKENDS = ["c", "hls", "verilog"]
# backend -> case ids it refuses on purpose (checked to raise BackendError naming a node)
REFUSED: dict[str, set[str]] = {"c": set(), "hls": set(),
                                 # an activation broadcast against another (squeeze-excitation)
                                 "verilog": {"mul-excite"}}
N_RANDOM = 24  # random samples per case, on top of the corner samples


def run_backend(design, backend: str, x_int: np.ndarray, tmp_path) -> np.ndarray:
    """Write ``backend``'s sources for ``design``, build and run them on ``x_int``; the
    output integers, one row per sample."""
    out = design.write(tmp_path / backend, targets=[backend])
    hw = design.lowered(backend)
    run = {"c": run_c, "hls": run_hls, "verilog": run_verilog}[backend]
    return run(hw, out / backend, out / "build" / backend, x_int.reshape(len(x_int), -1), QUIET).y


# ---- model builders --------------------------------------------------------------------------

def net(nodes, in_shape, inits=(), opset=13):
    """One input ``x`` of per-sample ``in_shape``, one output ``y`` (float initializers as
    float32, integer ones such as shapes and axes kept as they are)."""
    inits = [(k, np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v)) for k, v in inits]
    return make_model(nodes, [("x", in_shape)], ["y"], inits, opset)


def conv(rng, x, y, cin, cout, nd=2, k=3, scale=0.5, **attrs):
    """A Conv node ``x -> y`` (``pads`` keeps the size unless given) and its initializers."""
    attrs.setdefault("pads", [k // 2] * 2 * nd)
    w, b = f"{y}_w", f"{y}_b"
    return ([helper.make_node("Conv", [x, w, b], [y], name=f"conv_{y}", **attrs)],
            [(w, randn(rng, cout, cin // attrs.get("group", 1), *(k,) * nd, scale=scale)),
             (b, randn(rng, cout, scale=0.2))])


def single(op, shape, opset=13, inputs=("x",), inits=(), **attrs):
    return net([helper.make_node(op, list(inputs), ["y"], name=op.lower(), **attrs)], shape, inits, opset)


def scalar(v):
    return np.asarray(v, np.float32).reshape(())


def conv_then(rng, shape, tail, inits=(), opset=13, cout=None, scale=0.5):
    """x -> Conv -> ``tail`` nodes (reading ``c``, writing ``y``): an op on a computed value."""
    cout = cout or shape[0]
    nodes, cinits = conv(rng, "x", "c", shape[0], cout, nd=len(shape) - 1, scale=scale)
    return net(nodes + tail, shape, cinits + list(inits), opset)


def two_convs(rng, shape, tail, inits=(), opset=13, ca=None, cb=None, scale_b=0.05):
    """x -> Conv a and x -> Conv b (b about ten times smaller: another format), then ``tail``."""
    nd = len(shape) - 1
    na, ia = conv(rng, "x", "a", shape[0], ca or shape[0], nd=nd)
    nb, ib = conv(rng, "x", "b", shape[0], cb or shape[0], nd=nd, scale=scale_b)
    return net(na + nb + tail, shape, ia + ib + list(inits), opset)


# ---- the cases: id -> (builder(rng) -> (model, input shape), bits) -----------------------------

def _conv(nd, groups, auto_pad, bias, relu=False):
    def build(rng):
        model, x = conv_case(nd, groups, auto_pad, bias, seed=int(rng.integers(1000)), relu=relu)
        return model, x.shape[1:]
    return build


def _pool(op, nd, variant, include_pad=0):
    def build(rng):
        model, x = pool_case(op, nd, variant, include_pad, seed=int(rng.integers(1000)))
        return model, x.shape[1:]
    return build


def _bn_folded(nd):
    def build(rng):
        model, x = conv_bn_model(rng, nd)
        return model, x.shape[1:]
    return build


def _bn_alone(shape):
    return lambda rng: (net([bn_node("x", "y")], shape, bn_inits(rng, shape[0])), shape)


def _global(op, shape):
    return lambda rng: (conv_then(rng, shape, [helper.make_node(op, ["c"], ["y"])]), shape)


def _residual(relu_skip):
    """Add of two activations whose formats differ (a Conv ten times smaller than the other,
    or an unsigned Relu output against the signed input)."""
    def build(rng):
        shape = (3, 5, 6)
        if relu_skip:
            nodes, inits = conv(rng, "x", "c", 3, 3)
            nodes += [helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])]
            return net(nodes, shape, inits), shape
        return two_convs(rng, shape, [helper.make_node("Add", ["a", "b"], ["y"])]), shape
    return build


def _concat(kind):
    def build(rng):
        if kind == "channels3":  # three inputs, three formats (the model input, two Convs)
            shape = (2, 5, 4)
            return two_convs(rng, shape, [helper.make_node("Concat", ["a", "x", "b"], ["y"], axis=1)],
                             ca=3, cb=1), shape
        if kind == "width":  # the last axis of a 2-D map
            shape = (3, 4, 5)
            return two_convs(rng, shape, [helper.make_node("Relu", ["b"], ["rb"]),
                                          helper.make_node("Concat", ["a", "rb"], ["y"], axis=-1)]), shape
        if kind == "length1d":  # 1-D maps along their length
            shape = (2, 7)
            return two_convs(rng, shape, [helper.make_node("Concat", ["b", "a"], ["y"], axis=2)]), shape
        # reshaped inputs (no copy in the program): Flatten both branches, concatenate, a Dense
        shape = (2, 3, 4)
        tail = [helper.make_node("Flatten", ["a"], ["fa"], axis=1), helper.make_node("Flatten", ["b"], ["fb"], axis=1),
                helper.make_node("Concat", ["fa", "fb", "fa"], ["cat"], axis=1),
                helper.make_node("Gemm", ["cat", "gw", "gb"], ["y"], transB=1)]
        return two_convs(rng, shape, tail, [("gw", randn(rng, 5, 72, scale=0.2)), ("gb", randn(rng, 5))]), shape
    return build


def _mul(kind):
    def build(rng):
        shape = (3, 4, 5)
        # (after a Relu: a Mul right after a Conv would be folded into its weights)
        if kind == "scalar":
            return conv_then(rng, shape, [helper.make_node("Relu", ["c"], ["r"]),
                                          helper.make_node("Mul", ["s", "r"], ["y"])], [("s", scalar(-1.375))]), shape
        if kind == "channel":
            s = randn(rng, 3, 1, 1) * 2
            return conv_then(rng, shape, [helper.make_node("Relu", ["c"], ["r"]),
                                          helper.make_node("Mul", ["r", "s"], ["y"])], [("s", s)]), shape
        if kind == "row":  # a constant over the last two axes, broadcast over channels; on the raw input
            return single("Mul", shape, inputs=("x", "s"), inits=[("s", randn(rng, 1, 1, 4, 5))]), shape
        if kind == "two":  # activation * activation, same shape (a gate)
            return two_convs(rng, shape, [helper.make_node("Sigmoid", ["b"], ["sb"]),
                                          helper.make_node("Mul", ["a", "sb"], ["y"])]), shape
        if kind == "square":  # the same activation twice
            return conv_then(rng, shape, [helper.make_node("Mul", ["c", "c"], ["y"])]), shape
        # squeeze-and-excitation: activation (C, H, W) * activation (C, 1, 1), broadcast
        return conv_then(rng, shape, [helper.make_node("GlobalAveragePool", ["c"], ["g"]),
                                      helper.make_node("Mul", ["c", "g"], ["y"])]), shape
    return build


def _act(op, opset=13, inputs=("x",), inits=(), after_conv=False, **attrs):
    def build(rng):
        shape = (2, 3, 5)
        if after_conv:
            node = helper.make_node(op, ["c", *inputs[1:]], ["y"], **attrs)
            return conv_then(rng, shape, [node], inits, opset), shape
        return single(op, shape, opset, inputs, inits, **attrs), shape
    return build


def _softmax(rng):
    shape = (2, 4, 4)
    tail = [helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Flatten", ["g"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "gw", "gb"], ["z"], transB=1),
            helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    return conv_then(rng, shape, tail, [("gw", randn(rng, 6, 3)), ("gb", randn(rng, 6))], cout=3), shape


def _reshape(kind):
    def build(rng):
        if kind == "flatten_gemm":
            shape = (2, 3, 4)
            tail = [helper.make_node("Flatten", ["c"], ["f"], axis=1),
                    helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1)]
            return conv_then(rng, shape, tail, [("gw", randn(rng, 4, 24, scale=0.3)), ("gb", randn(rng, 4))]), shape
        # (C, H, W) -> Reshape (C, H * W) -> 1-D Conv
        shape = (2, 3, 4)
        nodes, inits = conv(rng, "x", "c", 2, 3)
        n2, i2 = conv(rng, "r", "y", 3, 2, nd=1)
        nodes += [helper.make_node("Reshape", ["c", "shp"], ["r"])] + n2
        return net(nodes, shape, inits + i2 + [("shp", np.array([0, 3, 12], np.int64))]), shape
    return build


def _transpose(kind):
    def build(rng):
        if kind == "nhwc_dense":  # Conv -> (H, W, C) -> Flatten -> Dense
            shape = (3, 4, 5)
            tail = [helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
                    helper.make_node("Flatten", ["t"], ["f"], axis=1),
                    helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], transB=1)]
            return conv_then(rng, shape, tail, [("gw", randn(rng, 4, 60, scale=0.2)), ("gb", randn(rng, 4))]), shape
        if kind == "random":  # a random permutation of a random 3-D input, straight to the output
            shape = tuple(int(d) for d in rng.integers(2, 6, size=3))
            perm = [0] + [int(p) + 1 for p in rng.permutation(3)]
            return single("Transpose", shape, perm=perm), shape
        # of a reshaped value: Conv (C, H, W) -> Reshape (C, H * W) -> Transpose (H * W, C) -> Relu
        shape = (3, 2, 4)
        nodes, inits = conv(rng, "x", "c", 3, 3)
        nodes += [helper.make_node("Reshape", ["c", "shp"], ["r"]),
                  helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
                  helper.make_node("Relu", ["t"], ["y"])]
        return net(nodes, shape, inits + [("shp", np.array([0, 3, 8], np.int64))]), shape
    return build


def _squeeze(kind):
    def build(rng):
        if kind == "squeeze":  # GlobalAveragePool (C, 1, 1) -> Squeeze (C,) -> Dense
            shape = (3, 4, 4)
            tail = [helper.make_node("GlobalAveragePool", ["c"], ["g"]),
                    helper.make_node("Squeeze", ["g", "ax"], ["s"]),
                    helper.make_node("Gemm", ["s", "gw", "gb"], ["y"], transB=1)]
            return conv_then(rng, shape, tail, [("gw", randn(rng, 2, 3)), ("gb", randn(rng, 2)),
                                                ("ax", np.array([2, 3], np.int64))]), shape
        shape = (2, 6)  # (C, L) -> Unsqueeze (C, 1, L) -> 2-D Conv
        nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
                 helper.make_node("Conv", ["u", "w", "b"], ["y"], pads=[0, 1, 0, 1])]
        return net(nodes, shape, [("w", randn(rng, 3, 2, 1, 3)), ("b", randn(rng, 3, scale=0.2)),
                                  ("ax", np.array([2], np.int64))]), shape
    return build


def _resize(kind):
    def build(rng):
        if kind == "resize2d":
            shape, scales = (2, 3, 4), [1, 1, 2, 3]
            tail = [helper.make_node("Resize", ["c", "", "sc"], ["y"], mode="nearest",
                                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
            return conv_then(rng, shape, tail, [("sc", np.array(scales, np.float32))]), shape
        if kind == "resize1d":
            shape = (2, 5)
            return single("Resize", shape, inputs=("x", "", "sc"), inits=[("sc", np.array([1, 1, 3], np.float32))],
                          mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), shape
        shape = (2, 3, 3)  # Upsample (opset 9)
        return single("Upsample", shape, opset=9, inputs=("x", "sc"),
                      inits=[("sc", np.array([1, 1, 2, 2], np.float32))], mode="nearest"), shape
    return build


CASES = {
    # Conv: 1-D and 2-D; stride, dilation and explicit pads are random in every case
    "conv1d-pads": (_conv(1, "one", "NOTSET", True), 8),
    "conv1d-depthwise-same_upper": (_conv(1, "depthwise", "SAME_UPPER", False), 6),
    "conv1d-groups-valid": (_conv(1, "two", "VALID", True), 8),
    "conv2d-pads-relu": (_conv(2, "one", "NOTSET", True, relu=True), 8),
    "conv2d-groups-same_lower": (_conv(2, "two", "SAME_LOWER", True), 4),
    "conv2d-depthwise-pads": (_conv(2, "depthwise", "NOTSET", True), 8),
    "conv2d-same_upper": (_conv(2, "one", "SAME_UPPER", True), 6),
    # BatchNormalization folded into a Conv, and standalone
    "bn-folded-1d": (_bn_folded(1), 8),
    "bn-folded-2d": (_bn_folded(2), 4),
    "bn-alone-2d": (_bn_alone((3, 4, 5)), 8),
    "bn-alone-1d": (_bn_alone((2, 7)), 6),
    # pools
    "maxpool2d-pads": (_pool("MaxPool", 2, "pads"), 8),
    "maxpool1d-ceil": (_pool("MaxPool", 1, "ceil"), 4),
    "maxpool2d-dilated": (_pool("MaxPool", 2, "dilated"), 8),
    "avgpool2d-pads-exclude": (_pool("AveragePool", 2, "pads", 0), 8),
    "avgpool2d-pads-include": (_pool("AveragePool", 2, "pads", 1), 6),
    "avgpool1d-ceil-include": (_pool("AveragePool", 1, "ceil", 1), 8),
    "avgpool2d-same_lower": (_pool("AveragePool", 2, "same_lower", 0), 4),
    "gap2d": (_global("GlobalAveragePool", (3, 4, 5)), 8),
    "gap1d": (_global("GlobalAveragePool", (2, 7)), 6),
    "gmp2d": (_global("GlobalMaxPool", (2, 3, 5)), 8),
    # joins
    "add-two-convs": (_residual(False), 8),
    "add-relu-skip": (_residual(True), 6),
    "concat-channels3": (_concat("channels3"), 8),
    "concat-width": (_concat("width"), 6),
    "concat-1d-length": (_concat("length1d"), 4),
    "concat-flattened": (_concat("flattened"), 8),
    "mul-scalar": (_mul("scalar"), 8),
    "mul-channel": (_mul("channel"), 6),
    "mul-row-input": (_mul("row"), 4),
    "mul-two": (_mul("two"), 8),
    "mul-square": (_mul("square"), 4),
    "mul-excite": (_mul("excite"), 8),
    # activations
    "relu": (_act("Relu"), 8),
    "leakyrelu": (_act("LeakyRelu", alpha=0.15, after_conv=True), 8),
    "relu6": (_act("Clip", inputs=("x", "lo", "hi"), inits=[("lo", scalar(0)), ("hi", scalar(6))], after_conv=True), 6),
    "hardsigmoid": (_act("HardSigmoid", alpha=0.25, beta=0.4), 8),
    "hardswish": (_act("HardSwish", opset=14, after_conv=True), 8),
    "sigmoid": (_act("Sigmoid"), 6),
    "tanh": (_act("Tanh"), 4),
    "sigmoid-after-conv": (_act("Sigmoid", after_conv=True), 8),
    "softmax-output": (_softmax, 8),
    # shapes
    "flatten-gemm": (_reshape("flatten_gemm"), 8),
    "reshape-conv1d": (_reshape("to_1d"), 6),
    "transpose-nhwc": (_transpose("nhwc_dense"), 8),
    "transpose-random": (_transpose("random"), 4),
    "transpose-reshaped": (_transpose("reshaped"), 8),
    "squeeze": (_squeeze("squeeze"), 8),
    "unsqueeze": (_squeeze("unsqueeze"), 6),
    "resize2d": (_resize("resize2d"), 8),
    "resize1d": (_resize("resize1d"), 4),
    "upsample": (_resize("upsample"), 8),
}


@lru_cache(maxsize=None)
def case(name: str):
    """(design, integer inputs) of one case, compiled once for every backend."""
    build, bits = CASES[name]
    rng = rng_for("op-grid", name)
    model, shape = build(rng)
    cal = rng.normal(0, 1.5, (64, *shape)).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, bits=bits)
    assert design.input_type.width == bits
    x = extremes(design, N_RANDOM + 2, int(rng.integers(1 << 30)))  # x[0] all lo, x[1] all hi
    t = design.input_type
    checker = np.indices(design.input_shape).sum(axis=0) % 2
    corners = np.stack([np.where(checker, t.hi, t.lo), np.where(checker, t.lo, t.hi)])
    if t.signed:
        corners = np.concatenate([corners, np.zeros((1, *design.input_shape), np.int64)])
    return design, np.concatenate([x, corners])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_backend_equals_golden(name, backend, tmp_path):
    design, x_int = case(name)
    if name in REFUSED[backend]:
        with pytest.raises(BackendError, match="node"):
            design.lowered(backend)
        return
    golden = design.predict_int(x_int).reshape(len(x_int), -1)
    y = run_backend(design, backend, x_int, tmp_path)
    assert y.shape == golden.shape
    bad = np.flatnonzero((y != golden).any(axis=1))
    assert not len(bad), (f"{backend} != golden on {len(bad)} of {len(x_int)} samples; first: sample {bad[0]}, "
                          f"outputs {np.flatnonzero(y[bad[0]] != golden[bad[0]])[:8]}")
    assert np.ptp(golden) > 0  # the case really exercises something


def test_grid_covers_the_ops():
    """The grid, with the all-ops model of test_new_ops (every table op, PRelu, Min / Max,
    checked bit-exact on every target there) and the models of test_reduce_ops (the
    reductions, ArgMax, Max / Min of two activations: C and HLS bit-exact there), reaches
    every op the C and HLS backends
    implement: their lowering tables' keys (Reshape stands for Flatten, Squeeze and
    Unsqueeze; Softmax is dropped at the output)."""
    from nnforge.codegen import hls_program, program
    from test_new_ops import all_ops_model
    from test_reduce_ops import MODELS

    seen = {n.op for name in CASES for n in case(name)[0].qgraph.topo()}
    for make in (all_ops_model, *MODELS.values()):
        m, x = make()
        seen |= {n.op for n in nnforge.compile(m, calibration=x, bits=8).qgraph.topo()}
    for table in (program.LOWERINGS, hls_program.LOWERINGS):
        assert table.ops() <= seen, f"target {table.target!r}: no case reaches {', '.join(sorted(table.ops() - seen))}"
    assert case("softmax-output")[0].qgraph.meta.get("output_softmax")
    folded = [n.op for n in case("bn-folded-2d")[0].qgraph.topo()]
    assert "BatchNormalization" not in folded and "BatchNormalization" in {
        n.op for n in case("bn-alone-2d")[0].qgraph.topo()}


def test_new_steps_are_strict_c(tmp_path):
    """Concat, Mul and Transpose under the strictest flags (no implicit narrowing)."""
    for name in ("concat-channels3", "mul-excite", "mul-row-input", "transpose-reshaped"):
        design, _ = case(name)
        out = design.write(tmp_path / name, targets=["c"])
        subprocess.run([find_tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion",
                        "-c", str(out / "c" / "nnforge_model.c"), "-o", str(tmp_path / f"{name}.o")], check=True)


def test_refusals_name_the_node():
    """What the program backends do not implement (here a Concat of a constant, which the
    frontend never builds) is refused before any file is written, naming the node."""
    from nnforge.codegen.hls_program import lower_hls
    from nnforge.codegen.program import lower_program

    design, _ = case("concat-channels3")
    q = design.qgraph.copy()
    node = next(n for n in q.topo() if n.op == "Concat")
    k = q.add_const("k", np.zeros(q.shape(q.inputs[0]), np.int64))
    q.set_qtype(k, q.qtype(q.inputs[0]))
    q.replace_node(node.name, node.with_(inputs=tuple(k if t == q.inputs[0] else t for t in node.inputs)))
    for lower in (lower_program, lower_hls):
        with pytest.raises(BackendError, match=r"node .*Concat.* constant input"):
            lower(q)
