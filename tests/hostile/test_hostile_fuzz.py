"""Property-based fuzzing of the compiler: random small ONNX graphs built from the supported
ops, and random corruptions of them (mutated attributes, shapes, dtypes, opsets, wiring,
truncated or flipped bytes). Every compile runs in a child under the suite's limits
(4 GiB of address space, 60 s) and must end with exit 0 -- and then the golden model lies
within the quantization bound of the float model -- or with exit 2 and one line.

The examples are derandomized (the same every run) and bounded, so CI time is fixed;
``NNFORGE_FUZZ_EXAMPLES=N`` runs more of them locally."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sys

from .harness import run

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

EXAMPLES = int(os.environ.get("NNFORGE_FUZZ_EXAMPLES", "6"))


@pytest.fixture(autouse=True)
def _case_timeout():
    """Here a case is one example: each compile runs in its own child under the 60 s and
    4 GiB limits (the test function runs many of them)."""
    yield

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# ---- random valid graphs -----------------------------------------------------------------


class _Builder:
    """Appends nodes to a chain, tracking the current tensor and its shape (batch axis 1)."""

    def __init__(self, rng: np.random.Generator, shape: list[int]):
        self.rng, self.shape = rng, list(shape)
        self.cur, self.nodes, self.inits, self.n = "x", [], [], 0

    def name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def const(self, arr: np.ndarray, kind: str = "w") -> str:
        n = self.name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(self, op: str, inputs: list[str], shape: list[int], **attrs) -> None:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, [self.cur, *inputs], [out], name=out, **attrs))
        self.cur, self.shape = out, list(shape)

    def weights(self, *shape) -> np.ndarray:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return (self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def _conv(b: _Builder, draw) -> None:
    _, c, h, w = b.shape
    k = draw(st.integers(1, min(3, h, w)))
    stride = draw(st.integers(1, 2))
    pad = draw(st.integers(0, k // 2))
    group = draw(st.sampled_from([1, c])) if c > 1 else 1
    oc = c * draw(st.integers(1, 2)) if group == c and c > 1 else draw(st.integers(1, 4))
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    wgt = b.const(b.weights(oc, c // group, k, k))
    bias = b.const((0.1 * b.rng.standard_normal(oc)).astype(np.float32), "b")
    b.node("Conv", [wgt, bias], [1, oc, oh, ow], kernel_shape=[k, k], strides=[stride, stride],
           pads=[pad] * 4, group=group)


def _pool(b: _Builder, draw) -> None:
    _, c, h, w = b.shape
    if min(h, w) < 2:
        return _act(b, draw)
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    b.node(op, [], [1, c, h // 2, w // 2], kernel_shape=[2, 2], strides=[2, 2])


def _residual(b: _Builder, draw) -> None:
    _, c, h, w = b.shape
    skip = b.cur
    wgt = b.const(b.weights(c, c, 3, 3))
    b.node("Conv", [wgt], b.shape, kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    b.node("Relu", [], b.shape)
    b.node("Add", [skip], b.shape)


def _batchnorm(b: _Builder, draw) -> None:
    c = b.shape[1]
    r = b.rng
    parts = [r.uniform(0.5, 1.5, c), 0.1 * r.standard_normal(c), 0.1 * r.standard_normal(c), r.uniform(0.5, 2, c)]
    names = [b.const(p.astype(np.float32), "bn") for p in parts]
    b.node("BatchNormalization", names, b.shape, epsilon=1e-5)


def _act(b: _Builder, draw) -> None:
    op = draw(st.sampled_from(["Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip", "HardSwish"]))
    if op == "LeakyRelu":
        b.node(op, [], b.shape, alpha=draw(st.sampled_from([0.01, 0.1, 0.3])))
    elif op == "Clip":
        lo, hi = b.const(np.float32(-1.0), "lo"), b.const(np.float32(draw(st.sampled_from([1.0, 6.0]))), "hi")
        b.node(op, [lo, hi], b.shape)
    else:
        b.node(op, [], b.shape)


def _scale(b: _Builder, draw) -> None:
    op = draw(st.sampled_from(["Add", "Mul"]))
    if len(b.shape) == 4 and draw(st.booleans()):  # per channel
        v = b.rng.uniform(0.5, 1.5, (1, b.shape[1], 1, 1))
    else:
        v = b.rng.uniform(0.5, 1.5, ())
    b.node(op, [b.const(v.astype(np.float32), "k")], b.shape)


def _dense(b: _Builder, draw) -> None:
    n_in = b.shape[1]
    n_out = draw(st.integers(1, 12))
    if draw(st.booleans()):
        b.node("Gemm", [b.const(b.weights(n_out, n_in)), b.const(np.zeros(n_out, np.float32), "b")],
               [1, n_out], transB=1)
    else:
        b.node("MatMul", [b.const(b.weights(n_out, n_in).T.copy())], [1, n_out])
        b.node("Add", [b.const((0.1 * b.rng.standard_normal(n_out)).astype(np.float32), "b")], [1, n_out])


IMAGE_STEPS = {"conv": _conv, "pool": _pool, "residual": _residual, "bn": _batchnorm, "act": _act, "scale": _scale}
VECTOR_STEPS = {"dense": _dense, "act": _act, "scale": _scale}


@st.composite
def graphs(draw) -> tuple[bytes, tuple[int, ...]]:
    """A valid model (serialized) and its input shape without the batch axis."""
    seed = draw(st.integers(0, 2**31 - 1))
    image = draw(st.booleans())
    shape = [1, draw(st.integers(1, 3)), draw(st.integers(3, 8)), draw(st.integers(3, 8))] if image \
        else [1, draw(st.integers(2, 16))]
    b = _Builder(np.random.default_rng(seed), shape)
    if image:
        for kind in draw(st.lists(st.sampled_from(sorted(IMAGE_STEPS)), min_size=1, max_size=4)):
            IMAGE_STEPS[kind](b, draw)
        pool_end = draw(st.sampled_from(["GlobalAveragePool", "GlobalMaxPool", "Flatten"]))
        if pool_end != "Flatten":
            b.node(pool_end, [], [1, b.shape[1], 1, 1])
        b.node("Flatten", [], [1, int(np.prod(b.shape[1:]))])
        _dense(b, draw)
    else:
        for kind in draw(st.lists(st.sampled_from(sorted(VECTOR_STEPS)), min_size=1, max_size=4)):
            VECTOR_STEPS[kind](b, draw)
    batch = draw(st.sampled_from([1, "N"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *shape[1:]])
    y = helper.make_tensor_value_info(b.cur, TensorProto.FLOAT, [batch, *b.shape[1:]])
    g = helper.make_graph(b.nodes, "fuzz", [x], [y], initializer=b.inits)
    opset = draw(st.sampled_from([14, 17]))  # HardSwish is opset 14
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(m)
    return m.SerializeToString(), tuple(shape[1:])


# ---- corruptions -------------------------------------------------------------------------

def _mutate_attribute(m, draw) -> None:
    nodes = [n for n in m.graph.node if n.attribute]
    if not nodes:
        return
    a = draw(st.sampled_from(list(draw(st.sampled_from(nodes)).attribute)))
    big = st.sampled_from([0, -1, -7, 2, 3, 1000, 2**31 - 1, 2**40, -(2**62)])
    if a.type == onnx.AttributeProto.INT:
        a.i = draw(big)
    elif a.type == onnx.AttributeProto.INTS:
        vals = draw(st.lists(big, min_size=0, max_size=6))
        del a.ints[:]
        a.ints.extend(vals)
    elif a.type == onnx.AttributeProto.FLOAT:
        a.f = draw(st.sampled_from([0.0, -1.0, 1e30, float("nan"), float("inf"), 1e-30]))
    else:
        a.type = onnx.AttributeProto.STRING
        a.s = b"\x1b[31mbogus"


def _mutate_initializer_shape(m, draw) -> None:
    if not m.graph.initializer:
        return
    t = draw(st.sampled_from(list(m.graph.initializer)))
    dims = draw(st.lists(st.sampled_from([0, 1, 2, 3, 7, 2**20, 2**33]), min_size=0, max_size=4))
    del t.dims[:]
    t.dims.extend(dims)


def _mutate_dtype(m, draw) -> None:
    dt = draw(st.sampled_from([TensorProto.INT8, TensorProto.UINT64, TensorProto.DOUBLE, TensorProto.STRING,
                               TensorProto.BOOL, TensorProto.FLOAT16, TensorProto.COMPLEX64, 9999]))
    where = draw(st.sampled_from(["initializer", "input", "output"]))
    if where == "initializer" and m.graph.initializer:
        draw(st.sampled_from(list(m.graph.initializer))).data_type = dt
    elif where == "input":
        m.graph.input[0].type.tensor_type.elem_type = dt
    else:
        m.graph.output[0].type.tensor_type.elem_type = dt


def _mutate_input_shape(m, draw) -> None:
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if not dims:
        return
    d = dims[draw(st.integers(0, len(dims) - 1))]
    v = draw(st.sampled_from([0, -3, 1, 5, 2**40, "sym"]))
    if v == "sym":
        d.dim_param = "\x1b[2Jh"
    else:
        d.dim_value = v


def _drop_node(m, draw) -> None:
    if len(m.graph.node) > 1:
        del m.graph.node[draw(st.integers(0, len(m.graph.node) - 1))]


def _rewire(m, draw) -> None:
    nodes = list(m.graph.node)
    n = draw(st.sampled_from(nodes))
    if not n.input:
        return
    choices = ["nonexistent\n\x1b[0m", nodes[-1].output[0], m.graph.output[0].name, ""]
    n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(choices))


def _opset(m, draw) -> None:
    m.opset_import[0].version = draw(st.sampled_from([1, 7, 10, 99, 2**40]))


def _no_outputs(m, draw) -> None:
    del m.graph.output[:]


MUTATIONS = {"attribute": _mutate_attribute, "init_shape": _mutate_initializer_shape, "dtype": _mutate_dtype,
             "input_shape": _mutate_input_shape, "drop": _drop_node, "rewire": _rewire, "opset": _opset,
             "no_outputs": _no_outputs}


@st.composite
def corrupted(draw) -> tuple[bytes, tuple[int, ...], str]:
    data, shape = draw(graphs())
    kind = draw(st.sampled_from(sorted(MUTATIONS) + ["truncate", "flip"]))
    if kind == "truncate":
        data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
    elif kind == "flip":
        buf = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        data = bytes(buf)
    else:
        m = onnx.load_from_string(data)
        MUTATIONS[kind](m, draw)
        data = m.SerializeToString()
    return data, shape, kind


# ---- the property ------------------------------------------------------------------------

# Runs in the child: the command line's compile, then (on success) golden against the float
# model on the calibration data (the bound is in _check_outcome).
_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    from nnforge import cli, load
    argv = sys.argv[1:]
    rc = cli.main(argv)
    doc = {"rc": rc}
    if rc == 0:
        d = load(argv[argv.index("-o") + 1])
        x = np.load(argv[argv.index("--calibration") + 1])["x"]
        yq = np.asarray(d.predict_dequantized(x), dtype=np.float64).reshape(len(x), -1)
        yf = np.asarray(d.predict_float(x), dtype=np.float64).reshape(len(x), -1)
        t = d.output_type
        doc.update(err=float(np.max(np.abs(yq - yf))), span=float(np.ptp(yf)),
                   peak=float(np.max(np.abs(yf))), lsb=float(2.0 ** -t.frac) if hasattr(t, "frac") else 0.0,
                   finite=bool(np.isfinite(yf).all()))
    print("FUZZ " + json.dumps(doc))
    sys.exit(rc)
""")


def _run_check(model, out, cal):
    res = run([sys.executable, "-c", _CHECK, "compile", model, "-o", out, "--targets", "c",
               "--calibration", cal, "-q"])
    lines = [ln for ln in res.out.splitlines() if ln.startswith("FUZZ ")]
    doc = json.loads(lines[-1][5:]) if lines else None
    return res, doc


def _check_outcome(res, doc, what: str) -> None:
    assert "Traceback" not in res.err, f"{what}: traceback\n{res.err[-4000:]}"
    if res.rc == 2:
        res.one_error()
        return
    assert res.rc == 0 and doc is not None and doc["rc"] == 0, \
        f"{what}: exit {res.rc}\n{res.out[-2000:]}\n{res.err[-3000:]}"
    if doc["finite"]:
        # a gross-error bound: 8-bit activations keep golden within a small share of the
        # output's magnitude (an error propagated from a coarse intermediate step through a
        # gain of a few stays well inside it); a sign flip, a clipped or saturated output
        # or a wrong layer is far outside
        bound = 0.2 * max(doc["span"], doc["peak"]) + 8 * doc["lsb"] + 1e-6
        assert doc["err"] <= bound, f"{what}: golden {doc['err']:.4g} from float, bound {bound:.4g} ({doc})"


@pytest.mark.slow
@FUZZ
@given(case=graphs())
def test_random_graphs_compile_within_the_quantization_bound(tmp_path_factory, case):
    data, shape = case
    tmp = tmp_path_factory.mktemp("fuzz")
    res, doc = _run_check(*_write(tmp, data, shape))
    _check_outcome(res, doc, "valid graph")
    # a valid graph of supported ops must compile
    assert res.rc == 0, res.err


@pytest.mark.slow
@FUZZ
@given(case=corrupted())
def test_corrupted_graphs_compile_or_fail_in_one_line(tmp_path_factory, case):
    data, shape, kind = case
    tmp = tmp_path_factory.mktemp("fuzz")
    res, doc = _run_check(*_write(tmp, data, shape))
    _check_outcome(res, doc, f"corruption {kind}")


def _write(tmp, data: bytes, shape):
    model, cal, out = tmp / "m.onnx", tmp / "cal.npz", tmp / "out"
    model.write_bytes(data)
    np.savez(cal, x=np.random.default_rng(1).standard_normal((32, *shape)).astype(np.float32))
    return model, out, cal
