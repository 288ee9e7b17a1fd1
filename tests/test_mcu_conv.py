"""The MCU convolution / Dense kernels (codegen/mcu_conv.py, hls_templates/c/mcu_rt_conv.j2):
a grid of small models (odd channel counts, strides, dilation, asymmetric pads, 1x1 /
3x3 / 10x4 kernels, 1-D, per-channel and real scales, uint8 inputs after a Relu, a Dense
over a channels-last tensor) lowered for the DSP-extension and the scalar flavour, built
with the host gcc and compared with the golden model on every output integer; some of
them also on the emulated Cortex-M4 and M0+, where the kernels' speed is measured."""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
import pytest
from onnx import helper

import nnforge
from nnforge.codegen import c as c_target
from nnforge.codegen.mcu import mcu
from nnforge.codegen.mcu_conv import pack_weights
from nnforge.codegen.mcu_kernels import requant_form
from nnforge.codegen.mcu_program import lower_mcu
from nnforge.ir.fixed import FixedType, requantize_mult
from nnforge.sim import cortexm
from nnforge.sim.native import run_c
from nnforge.sim.progress import QUIET
from test_cnn_ops import make_model

CORES = ("cortex-m4", "cortex-m0plus")


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _conv(rng, x, y, cin, cout, kernel, relu=False, **attrs):
    w, b = f"{y}_w", f"{y}_b"
    out = f"{y}_pre" if relu else y
    nodes = [helper.make_node("Conv", [x, w, b], [out], name=f"conv_{y}", kernel_shape=list(kernel), **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", [out], [y]))
    fan = cin * int(np.prod(kernel))
    inits = [(w, (rng.standard_normal((cout, cin, *kernel)) / np.sqrt(fan)).astype(np.float32)),
             (b, (rng.standard_normal(cout) * 0.1).astype(np.float32))]
    return nodes, inits


# id -> (input shape, [(cout, kernel, attrs), ...] convs in a chain (Relu between), dense outputs or 0,
#        compile options)
CASES = {
    "c1-3x3": ((1, 6, 7), [(3, (3, 3), {"pads": [1, 1, 1, 1]})], 0, {}),
    "c3-3x3-s2-asym": ((3, 9, 8), [(5, (3, 3), {"strides": [2, 2], "pads": [0, 1, 2, 1]})], 0, {}),
    "c5-3x3-d2-pads": ((5, 8, 9), [(4, (3, 3), {"dilations": [2, 2], "pads": [2, 0, 1, 3]})], 0, {}),
    "c16-relu-c17": ((3, 6, 6), [(16, (3, 3), {"pads": [1, 1, 1, 1]}),
                                 (17, (3, 3), {"pads": [1, 2, 0, 1], "strides": [1, 2]})], 0, {}),
    "c17-1x1-u8": ((5, 5, 4), [(17, (1, 1), {}), (16, (1, 1), {}), (5, (1, 1), {})], 0, {}),
    "c1-10x4-s2": ((1, 20, 9), [(16, (10, 4), {"strides": [2, 2], "pads": [4, 1, 5, 2]})], 0, {}),
    "conv1d": ((3, 17), [(5, (3,), {"pads": [2, 1], "strides": [2]}), (16, (5,), {"dilations": [2]})], 0, {}),
    "per-channel": ((3, 7, 7), [(16, (3, 3), {"pads": [1, 1, 1, 1]}), (5, (3, 3), {})], 0,
                    {"per_channel": True}),
    "real-scale": ((4, 6, 6), [(16, (3, 3), {"pads": [1, 1, 1, 1]}), (17, (1, 1), {})], 0,
                   {"scale": "real"}),
    "dense-hwc": ((3, 5, 4), [(8, (3, 3), {"pads": [1, 1, 1, 1]})], 7, {}),
    "dense-real": ((5, 3, 3), [(4, (1, 1), {})], 3, {"scale": "real", "per_channel": True}),
    "dense-odd": ((3, 5, 3), [(5, (1, 1), {})], 6, {}),  # 75 inputs: widened value by value
    "c8-d2": ((3, 9, 9), [(8, (3, 3), {"pads": [1, 1, 1, 1]}), (5, (3, 3), {"dilations": [2, 2], "pads": [2] * 4})],
              0, {}),  # channels last, dilated: 4 channels a word, tap by tap
    "o1-c1": ((1, 6, 7), [(1, (3, 3), {"pads": [1, 1, 1, 1]}), (1, (3, 3), {"pads": [0, 1, 1, 0]}),
                          (3, (1, 1), {})], 0, {}),  # one output channel, one input channel
    "o1-c3": ((3, 7, 6), [(1, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]})], 0, {}),
}


@lru_cache(maxsize=None)
def design(case: str):
    shape, convs, dense, opts = CASES[case]
    rng = _rng("mcu-conv", case)
    nodes, inits, x, cin = [], [], "x", shape[0]
    for i, (cout, kernel, attrs) in enumerate(convs):
        last = i == len(convs) - 1 and not dense
        n, w = _conv(rng, x, "y" if last else f"h{i}", cin, cout, kernel, relu=not last, **attrs)
        nodes += n
        inits += w
        x, cin = ("y" if last else f"h{i}"), cout
    if dense:
        nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
        nodes.append(helper.make_node("Gemm", ["flat", "wd", "bd"], ["y"], transB=1))
        out_shape = _out_shape(shape, convs)
        inits += [("wd", (rng.standard_normal((dense, int(np.prod(out_shape)))) * 0.2).astype(np.float32)),
                  ("bd", (rng.standard_normal(dense) * 0.1).astype(np.float32))]
    model = make_model(nodes, [("x", shape)], ["y"], inits)
    cal = rng.standard_normal((32, *shape)).astype(np.float32)
    return nnforge.compile(model, calibration=cal, **opts)


def _out_shape(shape, convs):
    import onnx
    rng = _rng("shape")
    nodes, inits, x, cin = [], [], "x", shape[0]
    for i, (cout, kernel, attrs) in enumerate(convs):
        n, w = _conv(rng, x, f"h{i}", cin, cout, kernel, **attrs)
        nodes += n
        inits += w
        x, cin = f"h{i}", cout
    m = make_model(nodes, [("x", shape)], [x], inits)
    m = onnx.shape_inference.infer_shapes(m)
    return [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim][1:]


def inputs(d, n=12, seed=0):
    t = d.input_type
    x = _rng("x", seed).integers(t.lo, t.hi + 1, size=(n, *d.input_shape))
    x[0] = t.lo
    x[-1] = t.hi
    return x


def lowered(d, core):
    prog = lower_mcu(d.qgraph, mcu(core))
    kinds = [s.kind for s in prog.steps]
    n_linear = sum(n.op in ("Conv", "Dense") for n in d.qgraph.topo())
    assert sum(k in ("mcu_conv", "mcu_dense") for k in kinds) == n_linear, kinds  # no fallback
    return prog


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_exact_host(case, core, tmp_path):
    d = design(case)
    prog = lowered(d, core)
    c_target.write(prog, tmp_path / "c")
    x = inputs(d)
    y = run_c(prog, tmp_path / "c", tmp_path / "b", x.reshape(len(x), -1), QUIET).y
    gold = d.predict_int(x).reshape(len(x), -1)
    assert np.array_equal(y, gold), f"{np.sum(y != gold)} of {gold.size} output integers differ"


def test_uint8_input_and_forms_covered():
    """The grid reaches both input types, both requantization forms, every column copy
    and every output saturation of the DSP convolution, and one-channel outputs."""
    seen = set()
    for case in CASES:
        for core in CORES:
            for s in lowered(design(case), core).steps:
                if s.kind in ("mcu_conv", "mcu_dense"):
                    seen |= {s.params["xt"], s.params["rq"], ("fast", s.params["fast"]), ("m", min(s.params["m"], 2))}
                if s.kind == "mcu_conv" and s.params["dsp"]:
                    seen.add(("sat", s.params["sat"]))
    assert {"s8", "u8", "shift", "mult", ("m", 1), ("m", 2)} <= seen
    assert {("fast", 0), ("fast", 1), ("fast", 2), ("fast", 3), ("sat", 0), ("sat", 1), ("sat", 2)} <= seen


@pytest.mark.skipif(cortexm.available() is not None, reason=str(cortexm.available()))
@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("case", ["c16-relu-c17", "c1-10x4-s2", "real-scale", "dense-hwc", "conv1d", "o1-c1",
                                  "o1-c3", "dense-odd"])
def test_kernels_exact_emulated(case, core, tmp_path):
    d = design(case)
    prog = lowered(d, core)
    c_target.write(prog, tmp_path / "c")
    b = cortexm.build(tmp_path / "c", tmp_path / "arm", mcu(core))
    x = inputs(d, n=4)
    r = cortexm.run(b, x.reshape(len(x), -1), count=False)
    assert np.array_equal(r.outputs, d.predict_int(x).reshape(len(x), -1))


# ---- numbers -----------------------------------------------------------------------------

@pytest.mark.parametrize("mult, shift", [([1, 1], 7), ([1], 0), ([1], 31), ([3, 1 << 16, 77], 20),
                                         ([(1 << 31) - 1, 1 << 30], 40), ([(1 << 30) + 5], 32), ([(1 << 29) + 3], 31)])
def test_requant_form_exact(mult, shift):
    """The 32-bit forms give the golden requantization for every accumulator tried."""
    form = requant_form(mult, shift)
    assert form is not None
    rng = _rng("rq", shift)
    acc = np.concatenate([rng.integers(-(1 << 30), 1 << 30, size=(4000, 1)),
                          [[-(1 << 30)], [(1 << 30) - 1], [0], [-1], [1]]])
    acc = np.broadcast_to(acc, (len(acc), len(mult)))
    want = requantize_mult(acc, np.asarray(mult), shift, FixedType(32, 0))
    if form["rq"] == "shift":
        got = (acc + ((1 << form["s"]) >> 1)) >> form["s"]
    else:
        h = acc * form["mult"][None, :]
        t = form["s"]
        got = ((h + (1 << 31)) >> 32) if t == 0 else (((h >> 32) + (1 << (t - 1))) >> t)
        assert int(form["mult"].max()) < 1 << 31
    assert np.array_equal(got, want)


def test_requant_form_refuses():
    assert requant_form([1 << 20], 3) is None  # the multiplier cannot reach 2^32
    assert requant_form([1], -2) is None  # a left shift
    assert requant_form([5], 1) is None


def test_pack_weights_pairs():
    """DSP packing: SXTB16 of each word gives bytes 0 and 2, of the word rotated by 8
    bytes 1 and 3; SMLAD multiplies them with the column's pairs, which hold taps
    (k0, k1), (k2, k3), or (k0, k2), (k1, k3) for a column copied 4 channels a word. Two
    rows interleaved word by word, zero padding to whole words and an even row count."""
    w = np.arange(-7, 8).reshape(3, 5)
    for fast in (False, True):
        words, k = pack_weights(w, True, fast)
        assert k == 8 and words.size == 4 * 2
        u = (words.astype(np.int64) & 0xFFFFFFFF).reshape(2, k // 4, 2)  # pair, word, row
        byte = [(u >> (8 * i)) & 0xFF for i in range(4)]
        b0, b1, b2, b3 = (np.where(v > 127, v - 256, v) for v in byte)
        taps = np.stack([b0, b1, b2, b3] if fast else [b0, b2, b1, b3], axis=-1)  # tap order within a word
        rows = taps.transpose(0, 2, 1, 3).reshape(4, k)
        want = np.zeros((4, 8), dtype=np.int64)
        want[:3, :5] = w
        assert np.array_equal(rows, want)


def test_pack_weights_groups():
    """Dense packs four rows a step: DSP words of the four rows interleaved word by word,
    scalar bytes of the four rows interleaved byte by byte; rows padded with zero rows."""
    w = np.arange(-20, 15).reshape(5, 7)
    want = np.zeros((8, 8), dtype=np.int64)
    want[:5, :7] = w
    words, k = pack_weights(w, True, True, group=4)
    assert k == 8
    u = (words.astype(np.int64) & 0xFFFFFFFF).reshape(2, 2, 4)  # group, word, row of the group
    b = np.stack([(u >> (8 * i)) & 0xFF for i in range(4)], axis=-1)
    b = np.where(b > 127, b - 256, b)
    assert np.array_equal(b.transpose(0, 2, 1, 3).reshape(8, 8), want)
    data, k = pack_weights(w, False, False, group=4)
    assert k == 7 and np.array_equal(data.reshape(2, 7, 4).transpose(0, 2, 1).reshape(8, 7), want[:, :7])
    data, k = pack_weights(w, False, False, group=1)
    assert np.array_equal(data.reshape(5, 7), w)


# ---- speed on the emulated cores --------------------------------------------------------

# name -> (input shape, [(cout, kernel, stride), ...] convs in a chain (Relu between), goals): the
# first conv reads the model's input (chw), the next ones a channels-last uint8 tensor.
# goals: core -> minimum MACs per executed instruction of each conv (the measured rates
# less about 10 %, never below the targets: Cortex-M4 >= 0.7 for 3x3 / 1x1 with >= 16 input
# channels, Cortex-M0+ >= 0.12)
BENCH = {
    "3x3 16->16 32x32": ((3, 32, 32), [(16, (3, 3), 1), (16, (3, 3), 1)],
                         {"cortex-m4": (0.33, 0.7), "cortex-m0plus": (0.155, 0.22)}),
    "1x1 64->64 25x5": ((8, 25, 5), [(64, (3, 3), 1), (64, (1, 1), 1)],
                        {"cortex-m4": (0.59, 0.7), "cortex-m0plus": (0.22, 0.22)}),
    "1x1 s2 16->32 16x16": ((3, 16, 16), [(16, (3, 3), 1), (32, (1, 1), 2)],
                            {"cortex-m4": (0.33, 0.43), "cortex-m0plus": (0.155, 0.15)}),
    "10x4 s2 1->64 49x10": ((1, 49, 10), [(64, (10, 4), 2)], {"cortex-m4": (0.55,), "cortex-m0plus": (0.19,)}),
}


def _rates(model, shape, core, tmp_path):
    """MACs per executed instruction of each Conv / Dense step, the outputs checked."""
    d = nnforge.compile(model, calibration=_rng("bench-cal", shape).standard_normal((8, *shape)).astype(np.float32))
    prog = lowered(d, core)
    c_target.write(prog, tmp_path / "c")
    b = cortexm.build(tmp_path / "c", tmp_path / "arm", mcu(core))
    x = inputs(d, n=1)
    r = cortexm.run(b, x.reshape(1, -1))
    assert np.array_equal(r.outputs, d.predict_int(x).reshape(1, -1))
    return [s.macs / n for s, n in zip(prog.steps, r.step_instructions) if s.kind in ("mcu_conv", "mcu_dense")]


@pytest.mark.skipif(cortexm.available() is not None, reason=str(cortexm.available()))
@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("bench", sorted(BENCH))
def test_conv_speed(bench, core, tmp_path):
    shape, convs, goals = BENCH[bench]
    rng = _rng("bench", bench)
    nodes, inits, x, cin = [], [], "x", shape[0]
    for i, (cout, kernel, stride) in enumerate(convs):
        y = "y" if i == len(convs) - 1 else f"h{i}"
        n, w = _conv(rng, x, y, cin, cout, kernel, relu=y != "y", pads=[k // 2 for k in kernel] * 2,
                     strides=[stride, stride])
        nodes, inits, x, cin = nodes + n, inits + w, y, cout
    rates = _rates(make_model(nodes, [("x", shape)], ["y"], inits), shape, core, tmp_path)
    print(f"{core} {bench}: " + ", ".join(f"{v:.3f}" for v in rates) + " MACs per instruction")
    assert all(v >= g for v, g in zip(rates, goals[core])), (rates, goals[core])


@pytest.mark.skipif(cortexm.available() is not None, reason=str(cortexm.available()))
@pytest.mark.parametrize("core, goals", [("cortex-m4", (0.65, 0.6)), ("cortex-m0plus", (0.23, 0.21))])
def test_dense_speed(core, goals, tmp_path):
    """The FC autoencoder's shapes: 640 -> 128, Relu, 128 -> 128."""
    rng = _rng("dense-bench")
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w1", "b1"], ["y"], transB=1)]
    inits = [("w0", (rng.standard_normal((128, 640)) / 25).astype(np.float32)),
             ("b0", (rng.standard_normal(128) * 0.1).astype(np.float32)),
             ("w1", (rng.standard_normal((128, 128)) / 11).astype(np.float32)),
             ("b1", (rng.standard_normal(128) * 0.1).astype(np.float32))]
    rates = _rates(make_model(nodes, [("x", (640,))], ["y"], inits), (640,), core, tmp_path)
    print(f"{core} dense 640x128, 128x128: " + ", ".join(f"{v:.3f}" for v in rates) + " MACs per instruction")
    assert all(v >= g for v, g in zip(rates, goals)), (rates, goals)


# ---- the runtime's portable intrinsics and requantization, on the host -------------------

RT_MAIN = r"""
#include <stdio.h>
static const uint32_t a_[] = {%(a)s};
static const uint32_t b_[] = {%(b)s};
static const int32_t acc_[] = {%(acc)s};
static const int32_t mult_[] = {%(mult)s};
int main(void)
{
    unsigned i;
    for (i = 0; i < sizeof a_ / sizeof a_[0]; i++) {
        printf("%%ld %%lu %%lu %%lu %%lu %%ld %%ld %%ld\n", (long)nnf_smlad(a_[i], b_[i], acc_[i]),
               (unsigned long)nnf_sxtb16(a_[i]), (unsigned long)nnf_sxtb16_ror8(a_[i]),
               (unsigned long)nnf_uxtb16(a_[i]), (unsigned long)nnf_uxtb16_ror8(a_[i]),
               (long)nnf_rq(acc_[i], mult_[i], (int)(i %% 9), -128, 127),
               (long)nnf_rq_shift(acc_[i], (int)(i %% 32), -128, 127), (long)nnf_ssat(acc_[i] >> 20, 8));
        printf("%%ld %%ld %%ld %%ld\n", (long)nnf_mulh32((int32_t)a_[i], mult_[i], 0u),
               (long)nnf_mulh32((int32_t)a_[i], mult_[i], 0x8000u), (long)nnf_usat(acc_[i] >> 20, 8),
               (long)nnf_usat(acc_[i] >> 22, 7));
    }
    return 0;
}
"""


def _s16(v):
    v = v & 0xFFFF
    return np.where(v >= 1 << 15, v - (1 << 16), v)


def _s8(v):
    v = v & 0xFF
    return np.where(v >= 128, v - 256, v)


def test_runtime_portable_intrinsics(tmp_path):
    """The portable definitions compute the DSP instructions' integers (compiled with the
    host gcc, -std=c99 -pedantic -Werror), nnf_rq / nnf_rq_shift the golden rounding and
    nnf_mulh32 (32-bit products only) the high word of the 64-bit product."""
    import subprocess
    from nnforge.codegen.render import environment
    from nnforge.sim.native import C_FLAGS
    from nnforge.sim.tools import find_tool

    rng = _rng("rt")
    n = 400
    a = rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.int64)
    b = rng.integers(0, 1 << 32, size=n, dtype=np.uint64).astype(np.int64)
    a[:6] = [0x80808080, 0x7F7F7F7F, 0xFFFFFFFF, 0, 0x80000000, 0x7FFFFFFF]
    acc = rng.integers(-(1 << 30), 1 << 30, size=n)
    acc[:4] = [-(1 << 30), (1 << 30) - 1, -1, 0]
    mult = rng.integers(0, 1 << 31, size=n)
    mult[4:8] = [(1 << 31) - 1, (1 << 31) - 1, 0, 1 << 16]
    env = environment("c")
    src = "#include <stdint.h>\n" + env.get_template("mcu_rt_common.j2").render(dsp=True, mcu="cortex-m4")
    src += RT_MAIN % {"a": ", ".join(f"{v}u" for v in a), "b": ", ".join(f"{v}u" for v in b),
                      "acc": ", ".join(map(str, acc)), "mult": ", ".join(map(str, mult))}
    (tmp_path / "rt.c").write_text(src)
    subprocess.run([find_tool("gcc"), *C_FLAGS, "rt.c", "-o", "rt"], cwd=tmp_path, check=True)
    out = subprocess.run([str(tmp_path / "rt")], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    got = np.array([[int(v) for v in line.split()] for line in lines[0::2]], dtype=np.int64)
    got2 = np.array([[int(v) for v in line.split()] for line in lines[1::2]], dtype=np.int64)
    smlad = acc + _s16(a) * _s16(b) + _s16(a >> 16) * _s16(b >> 16)
    smlad = (smlad + (1 << 31)) % (1 << 32) - (1 << 31)

    def pair(lo, hi):
        return (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)

    i = np.arange(n)
    t, s = i % 9, i % 32
    h = acc * mult
    rq = np.where(t == 0, (h + (1 << 31)) >> 32, ((h >> 32) + ((1 << t) >> 1)) >> t)
    want = [smlad, pair(_s8(a), _s8(a >> 16)), pair(_s8(a >> 8), _s8(a >> 24)), a & 0x00FF00FF,
            (a >> 8) & 0x00FF00FF, np.clip(rq, -128, 127), np.clip((acc + ((1 << s) >> 1)) >> s, -128, 127),
            np.clip(acc >> 20, -128, 127)]
    for k, w in enumerate(want):
        assert np.array_equal(got[:, k], w), k
    sa = np.where(a >= 1 << 31, a - (1 << 32), a)  # any int32 times a multiplier < 2^31, no 64-bit product
    want2 = [(sa * mult) >> 32, (sa * mult + (1 << 31)) >> 32, np.clip(acc >> 20, 0, 255), np.clip(acc >> 22, 0, 127)]
    for k, w in enumerate(want2):
        assert np.array_equal(got2[:, k], w), k
