"""The MCU driver (codegen/mcu_program.py): layouts between the channels-last kernels and
the generic steps, conversions only where an op needs the IR's order, the model's input
and output in the API's order, and the arena at the live maximum. Every case is built
with the host gcc and compared with golden on every output integer."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from onnx import helper

import nnforge
from nnforge.codegen import c as c_target
from nnforge.codegen.arena import Value, live_maximum
from nnforge.codegen.mcu import MCUS, mcu
from nnforge.codegen.mcu_program import lower_mcu
from nnforge.codegen.program import lower_program
from nnforge.sim.native import run_c
from nnforge.sim.progress import QUIET
from test_cnn_ops import make_model

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _conv(rng, x, y, cin, cout, k=3, pad=1):
    w = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    node = helper.make_node("Conv", [x, f"{y}_w", f"{y}_b"], [y], kernel_shape=[k, k], pads=[pad] * 4)
    return node, [(f"{y}_w", w), (f"{y}_b", b)]


def _model(name):
    """Small graphs around two convolutions, each exercising one rule of the driver."""
    rng = _rng("mcu-program", name)
    c1, i1 = _conv(rng, "x", "a", 3, 8)
    c2, i2 = _conv(rng, "r", "b", 8, 8)
    nodes, inits = [c1], i1 + i2
    if name == "agnostic":  # LeakyRelu works in any layout: no conversion
        nodes += [helper.make_node("LeakyRelu", ["a"], ["r"], alpha=0.1), c2]
    elif name == "transpose":  # Transpose reads the IR's order: one conversion before it
        nodes += [helper.make_node("Relu", ["a"], ["r"]), c2,
                  helper.make_node("Transpose", ["b"], ["y"], perm=[0, 1, 3, 2])]
    elif name == "concat":  # Concat on channels of two hwc tensors: both converted
        nodes += [helper.make_node("Relu", ["a"], ["r"]), c2,
                  helper.make_node("Concat", ["r", "b"], ["y"], axis=1)]
    elif name == "sigmoid-out":  # a table op on the last conv, whose output is the model's
        nodes += [helper.make_node("Relu", ["a"], ["r"]), c2, helper.make_node("Sigmoid", ["b"], ["y"])]
    out = {"agnostic": "b", "transpose": "y", "concat": "y", "sigmoid-out": "y"}[name]
    model = make_model(nodes, [("x", (3, 6, 5))], [out], inits)
    cal = rng.standard_normal((32, 3, 6, 5)).astype(np.float32)
    return nnforge.compile(model, calibration=cal)


def _exact(d, prog, tmp_path):
    c_target.write(prog, tmp_path / "c")
    t = d.input_type
    x = _rng("x").integers(t.lo, t.hi + 1, size=(10, *d.input_shape))
    y = run_c(prog, tmp_path / "c", tmp_path / "b", x.reshape(len(x), -1), QUIET).y
    gold = d.predict_int(x).reshape(len(x), -1)
    assert np.array_equal(y, gold), f"{np.sum(y != gold)} of {gold.size} output integers differ"


def _conversions(prog):
    return [s for s in prog.steps if s.kind == "transpose" and not s.tensor]


@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m0plus"])
@pytest.mark.parametrize("name, converted", [("agnostic", 1), ("transpose", 1), ("concat", 2), ("sigmoid-out", 1)])
def test_layouts_convert_only_where_needed(name, converted, core, tmp_path):
    d = _model(name)
    prog = lower_mcu(d.qgraph, mcu(core))
    # "agnostic": the model's output comes from a hwc conv, so one conversion writes `out`
    assert len(_conversions(prog)) == converted, [(s.kind, s.name, s.layout) for s in prog.steps]
    by_op = {s.op: s for s in prog.steps if s.tensor}
    if name == "agnostic":
        assert by_op["LeakyRelu"].layout == (1, 2, 0)  # kept the conv's channels-last layout
    if name == "sigmoid-out":
        assert by_op["Sigmoid"].layout == (1, 2, 0) and prog.steps[-1].output == "out"
    assert prog.steps[0].inputs == ("in",) and prog.steps[0].kind == "mcu_conv"  # reads the chw input
    _exact(d, prog, tmp_path)


def test_generic_is_the_portable_program():
    d = _model("agnostic")
    a, b = lower_mcu(d.qgraph, MCUS["generic"]), lower_program(d.qgraph)
    assert a.buffers == b.buffers and a.arena is None and a.mcu == "generic"
    assert [(s.kind, s.name, s.inputs, s.output) for s in a.steps] == [(s.kind, s.name, s.inputs, s.output)
                                                                       for s in b.steps]


@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn", "digits_resnet"])
def test_arena_is_the_live_maximum(example):
    """The examples' arenas: placed at the bound, which is recomputed here from the steps."""
    cal = np.load(EXAMPLES / example / "calibration.npz")
    d = nnforge.compile(EXAMPLES / example / "model.onnx", calibration=cal[cal.files[0]][:64])
    prog = lower_mcu(d.qgraph, mcu("cortex-m4"))
    a = prog.arena
    size = {b.name: b.size * {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4}[b.ctype]
            for b in prog.buffers}
    first = {s.output: i for i, s in enumerate(prog.steps)}
    last = {}
    for i, s in enumerate(prog.steps):
        for b in s.inputs:
            last[b] = i
    values = [Value(b, n, first[b], max(first[b], last.get(b, first[b]))) for b, n in size.items()]
    assert a.live_max == live_maximum(values) and a.activations == a.live_max
    assert a.scratch == max(s.scratch for s in prog.steps)
    for b in prog.buffers:  # no two values live at once share a byte
        for o in prog.buffers:
            vb, vo = next(v for v in values if v.name == b.name), next(v for v in values if v.name == o.name)
            if b is not o and vb.first <= vo.last and vo.first <= vb.last:
                assert b.offset + size[b.name] <= o.offset or o.offset + size[o.name] <= b.offset
