"""float16 / bfloat16 end to end: the contract's conversions (ir/floats.py), the golden
model against a scalar float32 reference, and the C and HLS C++ backends bit-exact with
golden on the example CNN and ResNet, within half a point of float32 accuracy."""

import subprocess

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.codegen.c_float import lower_float, write_c
from nnforge.design import DataError
from nnforge.ir import Graph, Node, run_int
from nnforge.ir.floats import FORMATS, check_patterns, float_type, from_f32, random_patterns, to_f32
from nnforge.passes.floatfmt import to_float
from nnforge.sim.native import C_FLAGS, CXX_FLAGS

FP16, BF16 = FORMATS["fp16"], FORMATS["bf16"]


def test_fp16_conversions_match_ieee():
    every = np.arange(1 << 16)
    finite = every[(every & 0x7FFF) <= FP16.sat]
    v = to_f32(finite, FP16)
    assert np.array_equal(v, finite.astype(np.uint16).view(np.float16).astype(np.float32))
    back = from_f32(v, FP16)
    assert np.array_equal(back, np.where(finite == 0x8000, 0, finite))  # -0 is stored as +0
    # saturation instead of Inf; ties to even; subnormals
    assert from_f32(np.float32([1e9, -1e9, 65519.0, 65520.0]), FP16).tolist() == [0x7BFF, 0xFBFF, 0x7BFF, 0x7BFF]
    assert from_f32(np.float32([1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11]), FP16).tolist() == [0x3C00, 0x3C02]
    assert from_f32(np.float32([2.0 ** -25, 2.0 ** -25 * 1.5, -(2.0 ** -26)]), FP16).tolist() == [0, 1, 0]


def test_bf16_conversions_round_to_nearest_even_and_saturate():
    every = np.arange(1 << 16)
    finite = every[(every & 0x7FFF) <= BF16.sat]
    v = to_f32(finite, BF16)
    assert np.array_equal(v.view(np.uint32) >> 16, finite)
    assert np.array_equal(from_f32(v, BF16), np.where(finite == 0x8000, 0, finite))
    bits = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x00008000, 0x7F7FFFFF, 0xFF000000], dtype=np.uint32)
    assert from_f32(bits.view(np.float32), BF16).tolist() == [0x3F80, 0x3F82, 0x3F81, 0, 0x5F80, 0xDF80]
    with pytest.raises(ValueError, match="not bf16 patterns"):
        check_patterns(np.array([0x7F80]), BF16, "x")


def _conv_graph(fmt, rng, groups=2, one_d=False):
    """A small Conv (grouped, strided, dilated, padded) + Relu + Dense float graph."""
    g = Graph("t")
    if one_d:
        g.add_input("x", (4, 11))
        w = rng.normal(0, 0.5, (6, 4 // groups, 3)).astype(np.float32)
        attrs = {"strides": (2,), "pads": (1, 2), "dilations": (2,), "groups": groups, "relu": True}
    else:
        g.add_input("x", (4, 7, 6))
        w = rng.normal(0, 0.5, (6, 4 // groups, 3, 2)).astype(np.float32)
        attrs = {"strides": (2, 1), "pads": (1, 0, 2, 1), "dilations": (1, 2), "groups": groups, "relu": True}
    g.add_const("w", w)
    g.add_const("b", rng.normal(0, 0.5, 6).astype(np.float32))
    g.add_node(Node("conv", "Conv", ("x", "w", "b"), ("y",), attrs))
    n = int(np.prod(g.shape("y")))
    g.add_node(Node("flat", "Reshape", ("y",), ("f",), {"shape": (n,)}))
    g.add_const("w2", rng.normal(0, 0.3, (5, n)).astype(np.float32))
    g.add_const("b2", np.zeros(5, np.float32))
    g.add_node(Node("fc", "Dense", ("f", "w2", "b2"), ("z",), {}))
    g.outputs = ["z"]
    return to_float(g, fmt)


def _scalar_reference(q, x):
    """The contract written out one float32 operation at a time (module doc of ir/floats)."""
    fmt = q.qtype("x").format
    f = lambda p: np.float32(to_f32(np.array([p]), fmt)[0])  # noqa: E731
    h = lambda v: int(from_f32(np.array([v], dtype=np.float32), fmt)[0])  # noqa: E731
    conv = next(n for n in q.topo() if n.op == "Conv")
    w, b = q.consts["w"], q.consts["b"]
    one_d = x.ndim == 2
    xs = x[:, None, :] if one_d else x
    ws = w[:, :, None, :] if one_d else w
    a = conv.attrs
    sh, sw = (1, a["strides"][0]) if one_d else a["strides"]
    dh, dw = (1, a["dilations"][0]) if one_d else a["dilations"]
    pt, pl = (0, a["pads"][0]) if one_d else a["pads"][:2]
    oshape = q.shape("y")
    oh, ow = (1, oshape[1]) if one_d else oshape[1:]
    m_all, cg, kh, kw = ws.shape
    mg = m_all // a["groups"]
    y = np.zeros((m_all, oh, ow), dtype=np.int64)
    for m in range(m_all):
        for oy in range(oh):
            for ox in range(ow):
                acc = f(b[m])
                for ci in range(cg):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy, ix = oy * sh - pt + ky * dh, ox * sw - pl + kx * dw
                            if 0 <= iy < xs.shape[1] and 0 <= ix < xs.shape[2]:
                                p = np.float32(f(xs[(m // mg) * cg + ci, iy, ix]) * f(ws[m, ci, ky, kx]))
                                acc = np.float32(acc + p)
                y[m, oy, ox] = h(acc if acc > 0 else np.float32(0))
    flat = y.reshape(-1)
    out = []
    for n in range(5):
        acc = f(q.consts["b2"][n])
        for k in range(len(flat)):
            acc = np.float32(acc + np.float32(f(flat[k]) * f(q.consts["w2"][n, k])))
        out.append(h(acc))
    return np.array(out)


@pytest.mark.parametrize("fmt,one_d", [("fp16", False), ("bf16", False), ("fp16", True)])
def test_golden_is_the_scalar_contract(fmt, one_d):
    rng = np.random.default_rng(1)
    q = _conv_graph(fmt, rng, one_d=one_d)
    x = from_f32(rng.normal(0, 2, (3, *q.shape("x"))).astype(np.float32), q.qtype("x").format)
    x[0].flat[:4] = [0, 1, 0x8001, 0x0400]  # subnormals, the smallest normal
    got = run_int(q, x)[0]
    for i in range(len(x)):
        assert np.array_equal(got[i], _scalar_reference(q, x[i])), i


def _harness_checks_conversions(tmp_path, fmt):
    """Every pattern widened by the C code, and many float32 values (all exponents,
    subnormals, ties) narrowed, equal the contract's numpy conversions."""
    rng = np.random.default_rng(2)
    q = _conv_graph(fmt, rng)
    src = tmp_path / "c"
    write_c(lower_float(q, "c"), src)
    bits = rng.integers(0, 1 << 32, 60000, dtype=np.uint64).astype(np.uint32)
    bits = bits[(bits & 0x7F800000) != 0x7F800000]  # finite values
    ties = (rng.integers(0, 1 << 16, 2000).astype(np.uint32) << 16) | 0x8000  # bf16 ties
    small = rng.integers(0, 0x39000000, 4000).astype(np.uint32)  # fp16 subnormal range and below
    vals = np.concatenate([bits, ties, small, small | 0x80000000])
    vals = vals[(vals & 0x7F800000) != 0x7F800000].view(np.float32)
    (tmp_path / "vals.bin").write_bytes(vals.tobytes())
    main = tmp_path / "conv.c"
    main.write_text('#include "nnforge_model.c"\n#include <stdio.h>\nint main(void) {\n'
                    '    unsigned p; float v; FILE *f = fopen("vals.bin", "rb");\n'
                    '    for (p = 0; p < 65536; p++) { v = nnf_f((uint16_t)p); fwrite(&v, 4, 1, stdout); }\n'
                    '    while (fread(&v, 4, 1, f) == 1) { uint16_t h = nnf_h(v); fwrite(&h, 2, 1, stdout); }\n'
                    '    return 0;\n}\n')
    exe = tmp_path / "conv"
    subprocess.run(["gcc", *C_FLAGS, "-I", str(src), str(main), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, check=True).stdout
    f = q.qtype("x").format
    widened = np.frombuffer(out[:4 * 65536], dtype=np.float32)
    every = np.arange(1 << 16)
    ok = (every & 0x7FFF) <= f.sat
    assert np.array_equal(widened[ok].view(np.uint32), to_f32(every[ok], f).view(np.uint32))
    narrowed = np.frombuffer(out[4 * 65536:], dtype=np.uint16)
    assert np.array_equal(narrowed.astype(np.int64), from_f32(vals, f))


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_c_conversions_equal_the_contract(tmp_path, fmt):
    _harness_checks_conversions(tmp_path, fmt)


@pytest.mark.parametrize("model", ["digits_cnn", "digits_resnet"])
@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
def test_examples_bit_exact_in_c_and_hls(tmp_path, model, fmt):
    d = np.load(ROOT / "examples" / model / "test.npz")
    design = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt)
    out = tmp_path / "out"
    design.write(out, targets=["c", "hls"])
    r = design.verify(d["x"], d["y"], backends=["golden", "c", "hls"], outdir=out)
    for b in ("c", "hls"):
        assert r.backends[b].mismatches == 0, b
    assert r.backends["golden"].accuracy >= r.float_accuracy - 0.005
    # patterns over the whole range (huge values, subnormals, saturation) as well
    x = random_patterns(np.random.default_rng(3), (64, *design.input_shape), design.input_type.format)
    golden = design.predict_int(x)
    from nnforge.sim.native import run_c, run_hls

    for run, b in ((run_c, "c"), (run_hls, "hls")):
        got = run(design.lowered(b), out / b, tmp_path / ("b" + b), x.reshape(len(x), -1), nnforge.sim.progress.QUIET)
        assert np.array_equal(got.y.reshape(golden.shape), golden), b
    # the HLS C-simulation testbench passes on its own vectors
    if model == "digits_cnn":
        exe = tmp_path / "tb"
        subprocess.run(["g++", *CXX_FLAGS, "-I", str(out / "hls"), str(out / "hls" / "tb_nnforge_hls.cpp"),
                        str(out / "hls" / "nnforge_hls.cpp"), "-o", str(exe)], check=True)
        assert "0 mismatching" in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    # the design folder loads back as the same float design
    again = nnforge.Design.load(out)
    assert str(again.input_type) == fmt and np.array_equal(again.predict_int(x[:4]), golden[:4])


def test_float_refusals(tmp_path):
    model = ROOT / "examples" / "digits_cnn" / "model.onnx"
    with pytest.raises(DataError, match="float format too"):
        nnforge.compile(model, neuzip="lossless")
    with pytest.raises(DataError, match="lossless' or 'lossy:K"):
        nnforge.compile(model, float_format="fp16", neuzip="lossy:0")
    with pytest.raises(DataError, match="quantization options"):
        nnforge.compile(model, float_format="fp16", per_channel=True)
    g = Graph("s")
    g.add_input("x", (4,))
    g.add_node(Node("s", "Sigmoid", ("x",), ("y",), {}))
    g.outputs = ["y"]
    with pytest.raises(ValueError, match="Sigmoid"):
        to_float(g, "fp16")
    assert str(float_type("bf16")) == "bf16"


def test_float_backends_implement_the_contract_ops_and_refuse_others(tmp_path):
    """The float C / HLS lowering table covers every op with a float16 contract, and a
    node outside it is refused by name before anything is written."""
    from nnforge.codegen.c_float import LOWERINGS
    from nnforge.codegen.lower import BackendError
    from nnforge.ir.floats import FLOAT_OPS

    assert LOWERINGS.ops() == FLOAT_OPS
    q = _conv_graph("fp16", np.random.default_rng(5))
    q.add_node(Node("odd/sig", "Sigmoid", ("z",), ("s",), {}))
    q.set_qtype("s", q.qtype("z"))
    q.outputs = ["s"]
    with pytest.raises(BackendError, match=r"target 'c' cannot implement node 'odd_sig' \(op Sigmoid\); "
                                           r"supported ops: Add, Conv, Dense, GlobalAveragePool, MaxPool, Relu, "
                                           r"Reshape$"):
        write_c(lower_float(q, "c"), tmp_path / "c")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("model,fmt", [("digits_cnn", "fp16"), ("digits_cnn", "bf16"), ("digits_resnet", "fp16"),
                                       ("digits_resnet", "bf16"), ("digits_mlp", "bf16")])
def test_verilog_float_processor_bit_exact(tmp_path, model, fmt):
    """The float processor (one binary32 multiply-accumulate unit) in Verilator: every
    output pattern equals golden, on test images and on patterns over the whole range;
    the cycles match the writer's count."""
    d = np.load(ROOT / "examples" / model / "test.npz")
    design = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt)
    out = design.write(tmp_path / "out", targets=["verilog"])
    info = __import__("json").loads((out / "verilog" / "verilog_info.json").read_text())
    x = design.quantize_input(d["x"][:6])
    x = np.concatenate([x, random_patterns(np.random.default_rng(4), (4, *design.input_shape),
                                           design.input_type.format)])
    from nnforge.sim import verilog as sim_verilog

    run = sim_verilog.run(design.lowered("verilog"), out / "verilog", tmp_path / "build", x.reshape(len(x), -1),
                          nnforge.sim.progress.QUIET, expected=design.predict_int(x))
    assert run.extra["mismatches"] == 0
    assert run.cycles_per_inference == info["totals"]["ii_cycles"]
    sim_verilog.lint(out / "verilog")  # lint-clean under -Wall, as the other designs
    sim_verilog.lint(out / "verilog", axis=True)


@pytest.mark.parametrize("model,fmt", [("digits_cnn", "fp16"), ("digits_mlp", "bf16")])
def test_float_processor_skips_zero_weights(tmp_path, model, fmt):
    """Pruned to 75%: the float processor walks each channel's nonzero taps only, so its
    cycles drop by the share of zero weights (measured), and every output stays equal to
    golden; the C and HLS code of the same design agree too."""
    d = np.load(ROOT / "examples" / model / "test.npz")
    x_cal = np.load(ROOT / "examples" / model / "calibration.npz")["x"]
    dense = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt)
    pruned = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt, prune=0.75,
                             calibration=x_cal)
    cycles = {}
    for name, design in (("dense", dense), ("pruned", pruned)):
        out = design.write(tmp_path / name, targets=["c", "hls", "verilog"])
        r = design.verify(d["x"][:8], backends=["golden", "c", "hls", "verilog"], outdir=out)
        assert all(b.mismatches == 0 for b in r.backends.values()), name
        cycles[name] = r.backends["verilog"].cycles_per_inference
        info = __import__("json").loads((out / "verilog" / "verilog_info.json").read_text())
        assert cycles[name] == info["totals"]["ii_cycles"]
    assert info["totals"]["sparse_layers"] and info["totals"]["zero_weights_skipped"] > 0
    from nnforge.sim import verilog as sim_verilog

    sim_verilog.lint(out / "verilog")
    macs = sum(s.macs for s in dense.lowered("c").steps)
    saved = cycles["dense"] - cycles["pruned"]
    assert saved >= 0.6 * macs, (cycles, macs)  # about three quarters of the MACs were zeros
