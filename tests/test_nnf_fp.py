"""The Verilog floating-point units (hls_templates/verilog/nnf_fp.v) against numpy's IEEE
float32 / float16 arithmetic and the contract's conversions (ir/floats.py): every fp16 and
bf16 pattern widened, and products, sums and narrowings of operands drawn to hit
subnormals, ties, cancellation and overflow, simulated by Verilator: 0 differences."""

import subprocess

import numpy as np
import pytest

from nnforge.codegen.render import TEMPLATES
from nnforge.ir.floats import FORMATS, from_f32, to_f32
from nnforge.sim.tools import find_tool, verilator_env

BENCH = """`timescale 1ns/1ps
module bench;
    reg [31:0] a, b;
    wire [31:0] mul, add, w16, wb16;
    wire [15:0] n16, nb16;
    nnf_f32_mul u_mul (.a(a), .b(b), .y(mul));
    nnf_f32_add u_add (.a(a), .b(b), .y(add));
    nnf_f_to_f32 #(.EXP(5), .MAN(10)) u_w16 (.a(a[15:0]), .y(w16));
    nnf_f_to_f32 #(.EXP(8), .MAN(7)) u_wb16 (.a(a[15:0]), .y(wb16));
    nnf_f32_to_f #(.EXP(5), .MAN(10), .SAT(16'h7BFF)) u_n16 (.a(a), .y(n16));
    nnf_f32_to_f #(.EXP(8), .MAN(7), .SAT(16'h5F80)) u_nb16 (.a(a), .y(nb16));
    integer fd, got;
    initial begin
        fd = $fopen("vectors.txt", "r");
        got = $fscanf(fd, "%h %h\\n", a, b);
        while (got == 2) begin
            #1;
            $display("%h %h %h %h %h %h", mul, add, w16, wb16, n16, nb16);
            got = $fscanf(fd, "%h %h\\n", a, b);
        end
        $finish;
    end
endmodule
"""


def _finite(bits: np.ndarray) -> np.ndarray:
    return bits[(bits & 0x7F800000) != 0x7F800000]


def _vectors(rng) -> tuple[np.ndarray, np.ndarray]:
    n = 40000
    u32 = lambda k: rng.integers(0, 1 << 32, k, dtype=np.uint64).astype(np.uint32)  # noqa: E731
    a, b = [], []
    # uniform patterns over every exponent
    a.append(u32(n)), b.append(u32(n))
    # near each other: cancellation in the sum, neighbours
    x = u32(n)
    a.append(x), b.append((x ^ np.uint32(0x80000000)) + rng.integers(-4, 5, n).astype(np.uint32))
    # subnormals and the smallest normals, against anything small
    small = rng.integers(0, 0x01000000, n).astype(np.uint32) | (rng.integers(0, 2, n).astype(np.uint32) << 31)
    a.append(small), b.append(np.concatenate([small[n // 2:], u32(n - n // 2) & np.uint32(0x9FFFFFFF)]))
    # products of widened fp16 / bf16 values (the engine's use), and their neighbourhoods
    for fmt in (FORMATS["fp16"], FORMATS["bf16"]):
        p = rng.integers(0, 1 << 16, (2, n))
        p = np.where((p & 0x7FFF) > fmt.sat, p & 0x3FFF, p)
        a.append(to_f32(p[0], fmt).view(np.uint32)), b.append(to_f32(p[1], fmt).view(np.uint32))
    # ties: values exactly halfway between fp16 / bf16 neighbours, for the narrowing
    t = (rng.integers(0x3000, 0x4700, n).astype(np.uint32) << 13) | np.uint32(0x1000)
    a.append(t | (rng.integers(0, 2, n).astype(np.uint32) << 31)), b.append(u32(n))
    t = (rng.integers(0, 0x7F80, n).astype(np.uint32) << 16) | np.uint32(0x8000)
    a.append(t), b.append(u32(n))
    # fp16 subnormal range and overflow for the narrowing, big values for products
    a.append(rng.integers(0x32000000, 0x39000000, n).astype(np.uint32)), b.append(u32(n))
    a.append(rng.integers(0x477F0000, 0x47800000, n).astype(np.uint32)), b.append(u32(n))
    big = rng.integers(0x5F000000, 0x7F800000, n).astype(np.uint32)
    a.append(big), b.append(big[::-1].copy())
    # every 16-bit pattern, for the widening (in the low half of a)
    every = np.arange(1 << 16, dtype=np.uint32)
    a.append(every), b.append(every << np.uint32(16))
    # zeros of both signs
    z = np.array([0, 0x80000000, 0, 0x80000000, 0x3F800000, 0xBF800000], dtype=np.uint32)
    a.append(z), b.append(np.array([0, 0x80000000, 0x80000000, 0, 0xBF800000, 0x3F800000], dtype=np.uint32))
    a, b = np.concatenate(a), np.concatenate(b)
    keep = ((a & 0x7F800000) != 0x7F800000) & ((b & 0x7F800000) != 0x7F800000)
    return a[keep], b[keep]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("fp")
    (d / "bench.v").write_text(BENCH)
    units = TEMPLATES / "verilog" / "nnf_fp.v"
    a, b = _vectors(np.random.default_rng(7))
    (d / "vectors.txt").write_text("".join(f"{x:08x} {y:08x}\n" for x, y in zip(a.tolist(), b.tolist())))
    cmd = [find_tool("verilator"), "--binary", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-CFLAGS", "-fcoroutines",
           "--top-module", "bench", "--Mdir", str(d / "obj"), "-o", "bench", str(units), str(d / "bench.v")]
    subprocess.run(cmd, cwd=d, env=verilator_env(), check=True, capture_output=True, text=True)
    out = subprocess.run([str(d / "obj" / "bench")], cwd=d, capture_output=True, text=True, check=True).stdout
    rows = [ln.split() for ln in out.splitlines() if len(ln.split()) == 6]
    got = np.array([[int(v, 16) for v in r] for r in rows], dtype=np.uint64).astype(np.uint32)
    assert len(got) == len(a)
    return a, b, got


def _report(name, a, b, got, want):
    bad = np.flatnonzero(got != want)
    assert not len(bad), (f"{name}: {len(bad)} of {len(a)} differ, e.g. "
                          + ", ".join(f"{a[i]:08x} {b[i]:08x}: {got[i]:08x} != {want[i]:08x}" for i in bad[:5]))


def test_mul_and_add_are_ieee_float32(results):
    a, b, got = results
    fa, fb = a.view(np.float32), b.view(np.float32)
    with np.errstate(over="ignore"):
        _report("mul", a, b, got[:, 0], (fa * fb).view(np.uint32))
        _report("add", a, b, got[:, 1], (fa + fb).view(np.uint32))


def test_widening_is_exact(results):
    a, b, got = results
    for col, fmt in ((2, FORMATS["fp16"]), (3, FORMATS["bf16"])):
        low = (a & 0xFFFF).astype(np.int64)
        ok = (low & 0x7FFF) <= fmt.sat
        _report(f"widen {fmt.name}", a[ok], b[ok], got[ok, col], to_f32(low[ok], fmt).view(np.uint32))


def test_narrowing_is_the_contract(results):
    a, b, got = results
    for col, fmt in ((4, FORMATS["fp16"]), (5, FORMATS["bf16"])):
        with np.errstate(over="ignore"):
            want = from_f32(a.view(np.float32), fmt).astype(np.uint32)
        _report(f"narrow {fmt.name}", a, b, got[:, col], want)
