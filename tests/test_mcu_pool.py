"""The MCU kernels of codegen/mcu_pool.py: depthwise convolution, MaxPool / AveragePool /
GlobalAveragePool / GlobalMaxPool and the Add of two activations, lowered for a Cortex-M4
(DSP flavour) and a Cortex-M0+ (scalar flavour). Small ONNX models with random weights are
compiled, written as C, built natively with gcc and compared with golden on every output
integer; a few also run on the emulated cores (with instruction counts for the depthwise
kernel). The exact-arithmetic helpers (the average's reciprocal, the 32-bit Add) are
checked against brute force."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.codegen import c as c_backend
from nnforge.codegen.mcu import mcu
from nnforge.codegen.mcu_pool import add32, average_reciprocal
from nnforge.codegen.mcu_program import lower_mcu
from nnforge.ir import FixedType
from nnforge.ir.interp import run_int
from nnforge.sim import cortexm
from nnforge.sim.native import run_c
from nnforge.sim.progress import QUIET

CORES = ("cortex-m4", "cortex-m0plus")


def _model(nodes, shape, inits) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
                          [helper.make_empty_tensor_value_info("y")],
                          [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    m = onnx.shape_inference.infer_shapes(m)
    del m.graph.value_info[:]
    return m


def _pointwise(rng, c, src, out):
    """A 1x1 Conv and Relu: its output is stored channels last, as a network's would be."""
    return [helper.make_node("Conv", [src, "Wp"], [out + "_c"], kernel_shape=[1, 1]),
            helper.make_node("Relu", [out + "_c"], [out])], {"Wp": rng.standard_normal((c, c, 1, 1)) * 0.4}


def depthwise(c, h, w, k=3, stride=1, dil=1, pads=(1, 1, 1, 1), relu=False, hwc=True, seed=0):
    rng = np.random.default_rng(seed)
    nodes, inits = _pointwise(rng, c, "x", "h") if hwc else ([], {})
    inits.update(W=rng.standard_normal((c, 1, k, k)) * 0.5, B=rng.standard_normal(c) * 0.1)
    nodes.append(helper.make_node("Conv", ["h" if hwc else "x", "W", "B"], ["d" if relu else "y"], group=c,
                                  kernel_shape=[k, k], strides=[stride, stride], dilations=[dil, dil],
                                  pads=list(pads)))
    if relu:
        nodes.append(helper.make_node("Relu", ["d"], ["y"]))
    return _model(nodes, (c, h, w), inits)


def pool(op, c, h, w, hwc=True, seed=0, **attrs):
    rng = np.random.default_rng(seed)
    if hwc:
        nodes, inits = _pointwise(rng, c, "x", "h")
    else:  # an elementwise op keeps the model input's order: the pool reads it in IR order
        nodes, inits = [helper.make_node("Relu", ["x"], ["h"])], {}
    nodes.append(helper.make_node(op, ["h"], ["y"], **attrs))
    return _model(nodes, (c, h, w), inits)


def residual(c, h, w, seed=0):
    rng = np.random.default_rng(seed)
    nodes, inits = _pointwise(rng, c, "x", "a")
    nodes += [helper.make_node("Conv", ["a", "W2"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
              helper.make_node("Add", ["a", "b"], ["y"])]
    inits["W2"] = rng.standard_normal((c, c, 3, 3)) * 0.2
    return _model(nodes, (c, h, w), inits)


def _compiled(model, shape, core, n=6, **kw):
    rng = np.random.default_rng(1)
    cal = rng.standard_normal((24, *shape)).astype(np.float32)
    design = nnforge.compile(model, calibration=cal, **kw)
    x = design.quantize_input(np.concatenate([cal[:n], 3 * rng.standard_normal((2, *shape))])).astype(np.int64)
    x = x.reshape(len(x), -1)
    gold = run_int(design.qgraph, x.reshape(len(x), *shape))[0].reshape(len(x), -1)
    return design, lower_mcu(design.qgraph, mcu(core)), x, gold


def _exact_on_host(tmp_path, model, shape, core, kind, **kw):
    """Lower for ``core``, require a ``kind`` step, build with gcc, compare with golden."""
    design, prog, x, gold = _compiled(model, shape, core, **kw)
    assert kind in [s.kind for s in prog.steps], [s.kind for s in prog.steps]
    out = tmp_path / "c"
    c_backend.write(prog, out)

    class Io:
        n_out = gold.shape[1]

    got = run_c(Io, out, tmp_path / "build", x, QUIET).y
    assert np.array_equal(got, gold), f"{np.count_nonzero(got != gold)} of {got.size} outputs differ"
    return prog, out, x, gold


DW_CASES = {
    "c3_s2": dict(c=3, h=7, w=6, stride=2),
    "c5_dil2_asym": dict(c=5, h=7, w=6, dil=2, pads=(2, 1, 0, 2)),
    "c17_relu_asym": dict(c=17, h=5, w=5, pads=(0, 1, 2, 0), relu=True),
    "c64_k5": dict(c=64, h=6, w=5, k=5, pads=(2, 2, 2, 2)),
    "c16_k2_s2": dict(c=16, h=8, w=7, k=2, stride=2, pads=(0, 0, 1, 1)),
    "c8_chw_in": dict(c=8, h=6, w=5, hwc=False),
}


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("case", sorted(DW_CASES))
def test_depthwise_exact(tmp_path, case, core):
    cs = DW_CASES[case]
    kw = {"scale": "real"} if case in ("c17_relu_asym", "c64_k5") else {}
    if case == "c3_s2":
        kw = {"per_channel": True}
    _exact_on_host(tmp_path, depthwise(**cs), (cs["c"], cs["h"], cs["w"]), core, "mcu_dw", **kw)


POOL_CASES = {
    "max_pads": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1])),
    "max_ceil": ("MaxPool", dict(kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1)),
    "avg_nopad_count": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 1], pads=[1, 1, 0, 1])),
    "avg_pad_count_ceil": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                               count_include_pad=1, ceil_mode=1)),
    "avg_2x2": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    "gap": ("GlobalAveragePool", {}),
    "gmp": ("GlobalMaxPool", {}),
}


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("hwc", [True, False])
@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool_exact(tmp_path, case, hwc, core):
    op, attrs = POOL_CASES[case]
    kind = "mcu_gpool" if op.startswith("Global") else "mcu_pool"
    _exact_on_host(tmp_path, pool(op, 5, 7, 6, hwc=hwc, **attrs), (5, 7, 6), core, kind)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("scale", ["pow2", "real"])
def test_residual_add_exact(tmp_path, scale, core):
    _exact_on_host(tmp_path, residual(6, 5, 4), (6, 5, 4), core, "mcu_add", scale=scale)


def test_average_reciprocal_exact():
    for count in (1, 2, 3, 6, 9, 25, 49, 125, 490, 1024):
        for lo, hi in ((-128, 127), (0, 255), (-8, 7)):
            r = average_reciprocal(count, lo, hi)
            s = np.arange(count * lo, count * hi + 1, dtype=np.int64)
            want = (2 * s + count) // (2 * count)
            n = 2 * s + r["add"]
            assert n.min() >= 0
            got = lo + ((((n >> r["e"]) * r["m"]) >> r["s"]))
            assert np.array_equal(got, want), (count, lo, hi)
            assert r["wide"] or int(n.max() >> r["e"]) * r["m"] < 1 << 32


def test_add32_narrows_exactly_or_refuses():
    s8, u8 = FixedType(8, 0), FixedType(8, 0, signed=False)
    a = np.arange(-128, 128, dtype=np.int64)[:, None]
    b = np.arange(0, 256, dtype=np.int64)[None, :]
    for ma, mb, shift in ((1 << 30, 3 << 28, 31), (1518500250, 1073741824, 32), (2, 1, 1), (1, 1, -2)):
        found = add32(ma, mb, shift, s8, u8, s8)
        assert found is not None
        xa, xb, s = found
        assert 128 * xa + 255 * xb + (1 << s >> 1) < 1 << 31
        sh = max(shift, 0)
        want = np.clip((a * (ma << max(-shift, 0)) + b * (mb << max(-shift, 0)) + (1 << sh >> 1)) >> sh, -128, 127)
        assert np.array_equal(np.clip((a * xa + b * xb + (1 << s >> 1)) >> s, -128, 127), want)
    # products that overflow int32 with no bit left to drop: refused (the generic lowering runs)
    assert add32(3 << 28, 3 << 28, 0, s8, u8, s8) is None


@pytest.mark.skipif(cortexm.available() is not None, reason=str(cortexm.available()))
@pytest.mark.parametrize("core", CORES)
def test_on_emulated_core(tmp_path, core):
    """A depthwise layer, a pool and a residual Add on the emulated core: every output
    integer of golden."""
    for i, (model, shape) in enumerate(((depthwise(17, 6, 5, pads=(0, 1, 2, 0)), (17, 6, 5)),
                                        (pool("AveragePool", 5, 7, 6, kernel_shape=[3, 3], strides=[2, 2],
                                              pads=[1, 1, 1, 1]), (5, 7, 6)),
                                        (pool("GlobalAveragePool", 8, 5, 5), (8, 5, 5)),
                                        (residual(6, 5, 4), (6, 5, 4)))):
        _, prog, x, gold = _compiled(model, shape, core)
        out = tmp_path / f"m{i}"
        c_backend.write(prog, out)
        run = cortexm.run(cortexm.build(out, tmp_path / f"b{i}", mcu(core)), x)
        assert np.array_equal(run.outputs, gold)


# MACs per executed instruction the depthwise 3x3 step reaches at least (the whole step:
# row buffering and requantization included), per core: the kernels measure about 0.40 /
# 0.42 on the Cortex-M4 and 0.15 on the Cortex-M0+ for these shapes.
DW_FLOOR = {"cortex-m4": 0.35, "cortex-m0plus": 0.135}


def _dw_calls(elf) -> set[str]:
    """The functions the depthwise kernel functions of ``elf`` call."""
    objdump = str(cortexm.arm_gcc()).replace("gcc", "objdump")
    text = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    calls, fn = set(), ""
    for line in text.splitlines():
        if line.endswith(">:"):
            fn = line.split("<")[1][:-2]
        elif fn.startswith("nnf_dw") and re.search(r"\tblx?\s", line) and "<" in line:
            calls.add(line.split("<")[1].split(">")[0])
    return calls


@pytest.mark.skipif(cortexm.available() is not None, reason=str(cortexm.available()))
@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("shape", [(64, 25, 5), (32, 16, 16)])
def test_depthwise_macs_per_instruction(tmp_path, shape, core):
    """The depthwise 3x3 (channels-last input from a pointwise layer) on the emulated core:
    exact, at least the core's floor of MACs per executed instruction, and no run-time
    library call (division, 64-bit multiply) from the kernel."""
    _, prog, x, gold = _compiled(depthwise(*shape), shape, core, n=1)
    out = tmp_path / "c"
    c_backend.write(prog, out)
    build = cortexm.build(out, tmp_path / "b", mcu(core))
    run = cortexm.run(build, x[:1])
    assert np.array_equal(run.outputs, gold[:1])
    k = [i for i, s in enumerate(prog.steps) if s.kind == "mcu_dw"][0]
    rate = prog.steps[k].macs / run.step_instructions[k]
    print(f"depthwise 3x3 {shape} on {core}: {rate:.3f} MACs per instruction")
    assert rate >= DW_FLOOR[core]
    assert not [f for f in _dw_calls(build.elf) if f.startswith("__aeabi")]
    assert sum(n for f, n in build.code_by_function.items() if f.startswith("nnf_dw")) < 1024
