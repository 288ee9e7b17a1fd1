"""Dynamic quantization in C (nnforge_dynamic.c): the generated C equals the golden model
:func:`nnforge.ir.dynamic.run_dynamic` in every output integer and every per-sample frac,
on the bundled MLP, CNN and ResNet at 8 and 4 bits, over test images, scaled copies,
random, extreme and all-zero inputs."""

import re
import subprocess
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from conftest import ROOT
from nnforge.codegen.c_dynamic import write_dynamic
from nnforge.sim.native import run_dynamic_c
from nnforge.ir.dynamic import DynamicError, run_dynamic
from nnforge.sim.tools import find_tool

EXAMPLES = ("digits_mlp", "digits_cnn", "digits_resnet")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wshadow"]


@pytest.fixture(scope="module")
def designs():
    cache = {}

    def get(example, bits):
        if (example, bits) not in cache:
            d = ROOT / "examples" / example
            cache[example, bits] = nnforge.compile(d / "model.onnx", calibration=np.load(d / "calibration.npz")["x"],
                                                   bits=bits)
        return cache[example, bits]

    return get


def inputs(example, seed=0):
    """~100 test images, their copies scaled by 0.03 and 40, random normal inputs, all-zero
    inputs and a few extremes (huge, tiny, subnormal, ties at 0.5, single spikes)."""
    x = np.load(ROOT / "examples" / example / "test.npz")["x"][:100].astype(np.float32)
    shape = x.shape[1:]
    rng = np.random.default_rng(seed)
    spikes = np.zeros((8, *shape), np.float32)
    spikes.reshape(8, -1)[np.arange(8), rng.integers(0, int(np.prod(shape)), 8)] = rng.normal(0, 50, 8)
    parts = [x, x * np.float32(0.03), x * np.float32(40), -x[:10],
             rng.normal(0, 1, (30, *shape)).astype(np.float32), rng.normal(0, 100, (10, *shape)).astype(np.float32),
             np.zeros((2, *shape), np.float32), x[:5] * np.float32(1e30), x[:5] * np.float32(1e-30),
             np.full((1, *shape), 1e-45, np.float32), np.full((1, *shape), -3e38, np.float32),
             np.full((1, *shape), 0.5, np.float32), np.full((1, *shape), -0.75, np.float32), spikes]
    return np.concatenate(parts)


def golden(q, x):
    with warnings.catch_warnings():  # numpy's int64 overflow warnings in degenerate (huge shift) cases
        warnings.simplefilter("ignore")
        y, f = run_dynamic(q, x)
    return np.asarray(y, dtype=np.int64).reshape(len(x), -1), np.asarray(f, dtype=np.int64)


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("example", EXAMPLES)
def test_dynamic_c_matches_golden(example, bits, designs, tmp_path):
    q = designs(example, bits).qgraph
    paths = write_dynamic(q, tmp_path / "c")
    assert sorted(p.name for p in paths) == ["nnforge_dynamic.c", "nnforge_dynamic.h"]
    x = inputs(example, seed=bits)
    gy, gf = golden(q, x)
    y, f, yf = run_dynamic_c(tmp_path / "c", tmp_path / "build", x, gy.shape[1], float_out=True)
    assert y.shape == gy.shape and f.shape == gf.shape
    bad = np.nonzero((y != gy).any(axis=1) | (f != gf))[0]
    assert bad.size == 0, f"{bad.size} samples differ, first {bad[:5]}: frac C {f[bad[:5]]} golden {gf[bad[:5]]}"
    # the fracs really vary per sample (the point of dynamic quantization)
    assert len(np.unique(gf)) > 3
    assert np.ptp(gy[:100]) > 0
    # the float wrapper: ldexp(q, -frac), rounded to float32
    np.testing.assert_array_equal(yf, np.ldexp(y.astype(np.float64), -f[:, None]).astype(np.float32))


@pytest.mark.parametrize("example", EXAMPLES)
def test_dynamic_c_strict_flags_and_links_with_static_c(example, designs, tmp_path):
    """Beyond the harness's -pedantic -Werror: -Wconversion -Wshadow; and the dynamic file
    links together with the static nnforge_model.c (no clashing symbols)."""
    d = designs(example, 8)
    out = d.write(tmp_path / "out", targets=["c"])
    write_dynamic(d.qgraph, out / "c")
    gcc = find_tool("gcc")
    objs = []
    for src in (out / "c" / "nnforge_dynamic.c", out / "c" / "nnforge_model.c",
                ROOT / "sim" / "harness" / "dynamic_harness.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run([gcc, *STRICT, "-I", str(out / "c"), "-c", str(src), "-o", str(obj)], check=True)
        objs.append(str(obj))
    subprocess.run([gcc, *objs, "-o", str(tmp_path / "both"), "-lm"], check=True)
    syms = subprocess.run(["nm", objs[0]], capture_output=True, text=True, check=True).stdout
    glob = sorted(line.split()[-1] for line in syms.splitlines() if re.match(r"^\S*\s+[TDBR]\s", line))
    assert glob == ["nnforge_run_dynamic", "nnforge_run_dynamic_float"]


def sigmoid_model():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (3, 4)).astype(np.float32)
    b = rng.normal(0, 0.1, (3,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1), helper.make_node("Sigmoid", ["h"], ["y"])],
        "sig", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_unsupported_op_refused_before_writing(tmp_path):
    cal = np.random.default_rng(1).normal(0, 1, (64, 4)).astype(np.float32)
    d = nnforge.compile(sigmoid_model(), calibration=cal, bits=8)
    assert any(n.op == "Sigmoid" for n in d.qgraph.topo())
    with pytest.raises(DynamicError, match="Sigmoid"):
        write_dynamic(d.qgraph, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_corrupted_dynamic_c_is_caught(designs, tmp_path):
    """The comparison can fail: change the first row of the first layer's weights in the
    generated source and the C no longer equals the golden model."""
    q = designs("digits_mlp", 8).qgraph
    src = write_dynamic(q, tmp_path / "c")[1]
    assert src.name == "nnforge_dynamic.c"
    text = src.read_text()
    m = re.search(r"_w\[\d+\]\[\d+\] = \{\n    \{ ([^}]*) \},", text)
    assert m
    row = [int(v) for v in m.group(1).split(",")]
    flipped = ", ".join(str(max(-127, min(127, -v if v else 1))) for v in row)
    src.write_text(text[:m.start(1)] + flipped + text[m.end(1):])
    x = inputs("digits_mlp")
    gy, gf = golden(q, x)
    y, f = run_dynamic_c(tmp_path / "c", tmp_path / "build", x, gy.shape[1])
    assert not (np.array_equal(y, gy) and np.array_equal(f, gf))
