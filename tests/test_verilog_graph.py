"""Verilog on graphs (codegen/verilog_cnn.py): forks, join engines (residual Add of two
formats, Mul of two activations, Concat on channels and on another axis) and gather
engines (Transpose, nearest Resize); Verilator/cocotb == golden in every integer."""

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import verilog_exact


def _conv(rng, name, x, c_in, c_out, k=3, pad=1, **attrs):
    w = rng.normal(0, 0.6 / np.sqrt(c_in * k * k), (c_out, c_in // attrs.get("group", 1), k, k))
    b = rng.normal(0, 0.1, c_out)
    node = helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name], kernel_shape=[k, k], pads=[pad] * 4, **attrs)
    return node, {f"{name}_w": w, f"{name}_b": b}


def _model(nodes, inits, in_shape, out_shape, opset=13):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def residual(rng):
    """x -> c1 (relu) -> c2; y0 = c1 + c2 (different formats); a second skip from the
    input itself: y1 = c3(y0) + x (the top input stream is forked)."""
    nodes, inits = [], {}
    for node, w in (_conv(rng, "c1", "x", 2, 2), _conv(rng, "c2", "r1", 2, 2), _conv(rng, "c3", "a1", 2, 2)):
        nodes.append(node)
        inits.update(w)
    nodes.insert(1, helper.make_node("Relu", ["c1"], ["r1"]))
    nodes.insert(3, helper.make_node("Add", ["r1", "c2"], ["a1"]))
    nodes.append(helper.make_node("Add", ["c3", "x"], ["a2"]))
    nodes.append(helper.make_node("Flatten", ["a2"], ["y"]))
    return _model(nodes, inits, (2, 5, 5), (50,)), (2, 5, 5)


def concat_shuffle(rng):
    """Two convs of x concatenated on channels, a channel shuffle (Reshape, Transpose,
    Reshape), a Mul of two activations, a Concat on the height axis, nearest Resize."""
    nodes, inits = [], {}
    for node, w in (_conv(rng, "ca", "x", 2, 2), _conv(rng, "cb", "x", 2, 4, k=1, pad=0)):
        nodes.append(node)
        inits.update(w)
    inits["shp1"] = np.array([1, 2, 3, 4, 4])
    inits["shp2"] = np.array([1, 6, 4, 4])
    nodes += [helper.make_node("Concat", ["ca", "cb"], ["cat"], axis=1),
              helper.make_node("Reshape", ["cat", "shp1"], ["r5"]),
              helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
              helper.make_node("Reshape", ["t5", "shp2"], ["sh"]),
              helper.make_node("Mul", ["sh", "cat"], ["m"]),
              helper.make_node("Concat", ["m", "sh"], ["hc"], axis=2),
              helper.make_node("Resize", ["hc", "", "scales"], ["y"], mode="nearest",
                                coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    inits["scales"] = np.array([1, 1, 1, 2], np.float32)
    return _model(nodes, {k: v for k, v in inits.items()}, (2, 4, 4), (6, 8, 8)), (2, 4, 4)


def _fix_int64(model):
    for t in model.graph.initializer:
        if t.name.startswith("shp"):
            t.CopyFrom(numpy_helper.from_array(np.asarray(numpy_helper.to_array(t), np.int64), t.name))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("make,bits,backpressure", [(residual, 8, 0.0), (residual, 5, 0.3), (concat_shuffle, 8, 0.2)])
def test_graph_exact(make, bits, backpressure, tmp_path):
    rng = np.random.default_rng(bits)
    model, shape = make(rng)
    model = _fix_int64(model)
    design = nnforge.compile(model, calibration=rng.normal(0, 1, (64, *shape)).astype(np.float32), bits=bits)
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (20, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    info, res = verilog_exact(design, tmp_path, x, backpressure)
    assert info["forks"], "the graph has a value read twice: a fork"
    if not backpressure:  # the analytic period (fork-join bound included) is the measured one
        gap = res.extra["output_gaps"][-1]
        assert abs(gap - info["totals"]["ii_cycles"]) <= 0.1 * gap, (gap, info["totals"])
    json.dumps(info)
