"""NeuZip weight storage (passes/neuzip.py, hls_templates/c/neuzip.c): the lossless blob
gives back every bit (Python and C decoders, any patterns), compresses trained-like
weights near the exponents' entropy; the lossy blob gives exactly ``lossy_values`` (Python
and C, subnormals included) within half a quantum; the C backend decoding layer by layer
at run time gives the outputs of plain storage."""

import math
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnforge
from conftest import ROOT
from nnforge.codegen.render import TEMPLATES
from nnforge.passes.neuzip import (PROB_BITS, decode_lossless, decode_lossy, encode_lossless, encode_lossy,
                                   lossy_blob_size, lossy_values, ratio)
from nnforge.sim.native import C_FLAGS

EXP = {"fp16": 5, "bf16": 8}
NEUZIP_C = TEMPLATES / "c" / "neuzip.c"


def _bf16(w: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 patterns, round to nearest even, in integer arithmetic."""
    b = np.asarray(w, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def _patterns(fmt: str, w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float32)
    return w.astype(np.float16).view(np.uint16) if fmt == "fp16" else _bf16(w)


def _weights(fmt: str, n: int = 5000, seed: int = 0) -> np.ndarray:
    return _patterns(fmt, np.random.default_rng(seed).normal(0, 0.05, n))


def _one_exponent(fmt: str, n: int = 300) -> np.ndarray:
    """A single exponent value, random signs and mantissas."""
    man = 15 - EXP[fmt]
    r = np.random.default_rng(3).integers(0, 1 << 16, n)
    return (((r >> 15) << 15) | (3 << man) | (r & ((1 << man) - 1))).astype(np.uint16)


def _skewed(fmt: str, n: int = 20000) -> np.ndarray:
    """One dominant exponent plus every other exponent once (frequencies forced to 1)."""
    e, man = EXP[fmt], 15 - EXP[fmt]
    rng = np.random.default_rng(4)
    exps = np.full(n, 1)
    exps[:1 << e] = np.arange(1 << e)
    rng.shuffle(exps)
    return ((rng.integers(0, 2, n) << 15) | (exps << man) | rng.integers(0, 1 << man, n)).astype(np.uint16)


def _cases():
    out = []
    for fmt in ("fp16", "bf16"):
        out += [(fmt, "normal", _weights(fmt)),
                (fmt, "empty", np.zeros(0, np.uint16)),
                (fmt, "one", np.array([0xBC00], np.uint16)),
                (fmt, "one exponent", _one_exponent(fmt)),
                (fmt, "all patterns", np.arange(1 << 16, dtype=np.uint16)),  # every exponent, Inf, NaN
                (fmt, "skewed", _skewed(fmt)),
                (fmt, "large", _weights(fmt, 60000, seed=5))]
    return out


CASES = _cases()


def test_bf16_conversion_is_round_to_nearest_even():
    w = np.array([1.0, -2.5, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -8 + 2.0 ** -20], np.float32)
    assert _bf16(w).tolist() == [0x3F80, 0xC020, 0x3F80, 0x3F82, 0x3F81]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{f}-{name}" for f, name, _ in CASES])
def test_lossless_round_trip_every_bit(i):
    fmt, _, p = CASES[i]
    blob = encode_lossless(p, EXP[fmt])
    assert np.array_equal(decode_lossless(blob, len(p), EXP[fmt]), p)
    n, nsym = int.from_bytes(blob[:4], "little"), int.from_bytes(blob[6:8], "little")
    assert (n, blob[4], blob[5]) == (len(p), EXP[fmt], PROB_BITS)
    freqs = [int.from_bytes(blob[17 + 3 * j:19 + 3 * j], "little") for j in range(nsym)]
    assert sum(freqs) == (1 << PROB_BITS if len(p) else 0) and all(f >= 1 for f in freqs)
    assert freqs == sorted(freqs, reverse=True)


def test_lossless_edge_sizes():
    assert len(encode_lossless(np.zeros(0, np.uint16), 5)) == 16
    # one exponent: frequency 2^12, the rANS stream is the 4-byte state only
    blob = encode_lossless(_one_exponent("fp16", 1000), 5)
    assert int.from_bytes(blob[8:12], "little") == 4 and len(blob) == 16 + 3 + 4 + 1000 * 11 // 8
    assert ratio(np.zeros(0, np.uint16), 8) == 0.0


def test_lossless_compresses_trained_like_weights():
    got = {}
    for fmt in ("fp16", "bf16"):
        p = _weights(fmt)
        e, man = EXP[fmt], 15 - EXP[fmt]
        got[fmt] = ratio(p, e)
        assert got[fmt] > 1.15, got
        # within 1% of the entropy bound (sign and mantissa raw, exponents at their entropy)
        counts = np.bincount((p.astype(np.int64) >> man) & ((1 << e) - 1))
        q = counts[counts > 0] / len(p)
        ideal = len(p) * (1 + man - (q * np.log2(q)).sum()) / 8
        nsym = len(q)
        assert len(encode_lossless(p, e)) <= 1.01 * ideal + 16 + 3 * nsym + 4, fmt
    print(f"NeuZip lossless ratios, N(0, 0.05) x 5000: fp16 {got['fp16']:.3f}, bf16 {got['bf16']:.3f}")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), max_size=400), st.sampled_from([5, 8, 1, 3]))
def test_lossless_round_trip_any_bits(values, e):
    p = np.array(values, dtype=np.uint16)
    assert np.array_equal(decode_lossless(encode_lossless(p, e), len(p), e), p)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0x0000, 0x8001, 0x3C00, 0x3C01, 0xFC00, 0x7FFF, 0x0400, 0x7F80]), max_size=500),
       st.sampled_from([5, 8]))
def test_lossless_round_trip_few_exponents(values, e):
    p = np.array(values, dtype=np.uint16)
    assert np.array_equal(decode_lossless(encode_lossless(p, e), len(p), e), p)


def test_lossless_bad_arguments():
    p = _weights("fp16", 100)
    blob = encode_lossless(p, 5)
    for bad in (0, 9, 5.0, True):
        with pytest.raises(ValueError, match="exp_bits"):
            encode_lossless(p, bad)
    with pytest.raises(ValueError, match="integer"):
        encode_lossless(p.astype(np.float32), 5)
    with pytest.raises(ValueError, match="0..65535"):
        encode_lossless(np.array([70000]), 5)
    with pytest.raises(ValueError, match="weights, not"):
        decode_lossless(blob, 99, 5)
    with pytest.raises(ValueError, match="exponent bits"):
        decode_lossless(blob, 100, 8)
    with pytest.raises(ValueError):
        decode_lossless(blob[:-1], 100, 5)
    with pytest.raises(ValueError):
        decode_lossless(blob[:10], 100, 5)
    at = 16 + 3 * int.from_bytes(blob[6:8], "little")  # a corrupt rANS state
    with pytest.raises(ValueError, match="rANS"):
        decode_lossless(blob[:at + 3] + bytes([blob[at + 3] ^ 0x40]) + blob[at + 4:], 100, 5)


# ---------------------------------------------------------------------------- lossy

def _lossy_reference(w: np.ndarray, k: int, block: int) -> np.ndarray:
    """Scalar Python restatement of the lossy rule (round() is half to even)."""
    w = [float(x) for x in np.asarray(w, np.float32).reshape(-1)]
    out = []
    for b in range(0, len(w), block):
        blk = w[b:b + block]
        top = max(abs(x) for x in blk)
        e = math.frexp(top)[1] - 1 if top else 0
        for x in blk:
            m = min(round(abs(x) / 2.0 ** (e - k)), (1 << (k + 1)) - 1)
            out.append(math.copysign(m * 2.0 ** (e - k), x) if m else 0.0)
    return np.array(out, dtype=np.float32)


def _lossy_weights() -> np.ndarray:
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, 1000).astype(np.float32)
    w[:32] = 0.0  # an all-zero block
    w[32:64] = -0.0  # negative zeros are stored as +0
    w[64:96] = rng.normal(0, 1, 32) * 2.0 ** -122  # quanta 2^(E-K) give subnormal values
    w[96:128] = np.float32(2.0 ** -128) * rng.uniform(1, 4, 32).astype(np.float32)  # subnormal inputs
    w[96] = 2.0 ** -128  # ... and the smallest storable block scale (any block size)
    w[128] = np.finfo(np.float32).max  # E = 127; rounds up to 2^(K+1): clamped
    w[129] = -3e38
    w[160:192] = [1.5 * 2.0 ** -5] * 16 + [1.25 * 2.0 ** -6] * 16  # ties to even at K = 1, 2
    w[200] = 1.0 - 2.0 ** -24  # rounds up to 2^(K+1) under its own scale: clamped
    return w  # 1000 = 31 blocks + a partial one of 8


@pytest.mark.parametrize("k", [1, 2, 4, 7, 10])
def test_lossy_values_exact_and_bounded(k):
    w = _lossy_weights()
    for block in (32, 7, 1, 4096):
        v = lossy_values(w, k, block)
        assert v.dtype == np.float32 and v.shape == w.shape
        assert np.array_equal(v.view(np.uint32), _lossy_reference(w, k, block).view(np.uint32)), block
        blob = encode_lossy(w, k, block)
        assert len(blob) == lossy_blob_size(len(w), k, block)
        assert np.array_equal(decode_lossy(blob, len(w), k, block).view(np.uint32), v.view(np.uint32)), block
        assert np.array_equal(lossy_values(v, k, block).view(np.uint32), v.view(np.uint32))  # idempotent
        a = np.abs(w.astype(np.float64))
        nb = -(-len(w) // block)
        top = np.pad(a, (0, nb * block - len(w))).reshape(nb, block).max(axis=1)
        e = np.repeat(np.where(top > 0, np.frexp(top)[1] - 1, 0), block)[:len(w)]
        clamped = np.ldexp(a, k - e) >= (1 << (k + 1)) - 0.5
        err = np.abs(w.astype(np.float64) - v.astype(np.float64))
        assert np.all((err <= np.ldexp(1.0, e - k - 1)) | clamped), (k, block)
        assert clamped[128] and (clamped[200] or block > 32)
        assert not np.signbit(v[:64]).any() and not v[:64].any()
    blob = encode_lossy(w, k, 32)
    per = 1 + (32 * (k + 2) + 7) // 8
    top = np.abs(w[:992]).reshape(31, 32).max(axis=1)
    e = np.where(top > 0, np.frexp(top)[1] - 1, 0)  # the signed exponent bytes
    assert [blob[b * per] for b in range(31)] == (e % 256).tolist()
    assert (e[0], e[3], e[4]) == (0, -127, 127) and e[2] < -118


def _wide_floats(n: int, seed: int) -> np.ndarray:
    """Finite float32 of every magnitude (random bits); every 5th is 2^-128, so blocks of 5
    (and any block of 5 or more starting at a multiple of 5) can be stored."""
    bits = np.random.default_rng(seed).integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    w = bits.view(np.float32).copy()
    w[~np.isfinite(w)] = 1.0
    w[::5] = np.float32(2.0 ** -128)
    return w


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, (1 << 32) - 1), max_size=120), st.integers(1, 10), st.integers(1, 40))
def test_lossy_any_floats(bits, k, block):
    w = np.array(bits, dtype=np.uint32).view(np.float32)
    w = np.where(np.isfinite(w) & (np.abs(w) >= 2.0 ** -128), w, np.float32(0.5))
    v = lossy_values(w, k, block)
    assert np.array_equal(v.view(np.uint32), _lossy_reference(w, k, block).view(np.uint32))
    assert np.array_equal(decode_lossy(encode_lossy(w, k, block), len(w), k, block).view(np.uint32),
                          v.view(np.uint32))


def test_lossy_sizes_and_bad_arguments():
    w = np.random.default_rng(6).normal(0, 0.05, 100).astype(np.float32)
    assert encode_lossy(np.zeros(0, np.float32), 4) == b"" and len(decode_lossy(b"", 0, 4)) == 0
    assert lossy_blob_size(100, 4, 32) == 3 * (1 + 24) + 1 + 3 == len(encode_lossy(w, 4, 32))
    for k in (0, 11, 2.0):
        with pytest.raises(ValueError, match="k"):
            lossy_values(w, k)
    with pytest.raises(ValueError, match="block"):
        encode_lossy(w, 4, 0)
    with pytest.raises(ValueError, match="finite"):
        encode_lossy(np.array([1.0, np.nan], np.float32), 4)
    with pytest.raises(ValueError, match="finite"):
        lossy_values(np.array([np.inf], np.float32), 4)
    tiny = np.full(32, 2.0 ** -129, np.float32)  # a block below the signed-byte scale range
    for f in (lossy_values, encode_lossy):
        with pytest.raises(ValueError, match="below 2"):
            f(np.concatenate([w[:32], tiny]), 4, 32)
    with pytest.raises(ValueError, match="bytes"):
        decode_lossy(encode_lossy(w, 4), 90, 4)


# ---------------------------------------------------------------------------- C decoder

HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "neuzip.c"

/* nz BLOB OUT lossless N EXP | nz BLOB OUT lossy N K BLOCK | nz BLOB - bench N EXP REPEAT */
int main(int argc, char **argv)
{
    FILE *f;
    long size;
    uint8_t *blob;
    void *out;
    uint32_t n;
    size_t got, esize;
    if (argc < 6) {
        return 2;
    }
    f = fopen(argv[1], "rb");
    if (!f) {
        return 3;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    blob = malloc((size_t)size + 1);
    got = fread(blob, 1, (size_t)size, f);
    fclose(f);
    if ((long)got != size) {
        return 4;
    }
    n = (uint32_t)strtoul(argv[4], NULL, 10);
    esize = strcmp(argv[3], "lossy") == 0 ? sizeof(float) : sizeof(uint16_t);
    out = malloc(esize * n + 1);
    if (strcmp(argv[3], "lossless") == 0) {
        nnf_nz_decode_lossless(blob, (uint16_t *)out, n, atoi(argv[5]));
    } else if (strcmp(argv[3], "lossy") == 0 && argc > 6) {
        nnf_nz_decode_lossy(blob, (float *)out, n, atoi(argv[5]), atoi(argv[6]));
    } else if (strcmp(argv[3], "bench") == 0 && argc > 6) {
        int r, reps = atoi(argv[6]);
        uint32_t sum = 0, i;
        clock_t t0 = clock();
        for (r = 0; r < reps; r++) {
            nnf_nz_decode_lossless(blob, (uint16_t *)out, n, atoi(argv[5]));
            for (i = 0; i < n; i += 997) {
                sum += ((uint16_t *)out)[i];
            }
        }
        printf("%.3f ns/weight (%u)\n", 1e9 * (double)(clock() - t0) / CLOCKS_PER_SEC / ((double)n * reps),
               (unsigned)sum);
        return 0;
    } else {
        return 2;
    }
    f = fopen(argv[2], "wb");
    fwrite(out, esize, n, f);
    fclose(f);
    free(out);
    free(blob);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_decoders(tmp_path_factory):
    """The harness built with the default (table walk) and the slot-table decoder."""
    assert {"-O2", "-std=c99", "-Wall", "-Werror"} <= set(C_FLAGS)
    d = tmp_path_factory.mktemp("neuzip_c")
    (d / "neuzip.c").write_text(NEUZIP_C.read_text())
    (d / "main.c").write_text(HARNESS)
    exes = []
    for variant in ([], ["-DNNF_NZ_SLOT_TABLE"]):
        exe = d / f"nz{len(exes)}"
        subprocess.run(["gcc", *C_FLAGS, *variant, "-I", str(d), str(d / "main.c"), "-o", str(exe)], check=True)
        exes.append(exe)
    # pasted with one decoder only (as the generated model files do): no unused-function warnings
    for macro, fn in (("NNF_NZ_LOSSLESS", "nnf_nz_decode_lossless(b, (uint16_t *)o, 1, 5)"),
                      ("NNF_NZ_LOSSY", "nnf_nz_decode_lossy(b, (float *)o, 1, 4, 32)")):
        (d / "one.c").write_text(f"#include <stdint.h>\n#include <string.h>\n#define {macro}\n"
                                 f'#include "neuzip.c"\nvoid f(const uint8_t *b, void *o);\n'
                                 f"void f(const uint8_t *b, void *o) {{ {fn}; }}\n")
        subprocess.run(["gcc", *C_FLAGS, "-I", str(d), "-c", str(d / "one.c"), "-o", str(d / "one.o")], check=True)
    return d, exes


def _run(exe, d, blob: bytes, args: list) -> bytes:
    (d / "blob").write_bytes(blob)
    subprocess.run([str(exe), str(d / "blob"), str(d / "out"), *map(str, args)], check=True)
    return (d / "out").read_bytes()


def test_c_lossless_every_bit(c_decoders):
    d, exes = c_decoders
    for fmt, name, p in CASES:
        blob = encode_lossless(p, EXP[fmt])
        for exe in exes:
            out = np.frombuffer(_run(exe, d, blob, ["lossless", len(p), EXP[fmt]]), dtype=np.uint16)
            assert np.array_equal(out, p), (fmt, name, exe.name)
    for e in (1, 3):  # other exponent widths
        p = np.random.default_rng(e).integers(0, 1 << 16, 3000).astype(np.uint16)
        out = np.frombuffer(_run(exes[0], d, encode_lossless(p, e), ["lossless", len(p), e]), dtype=np.uint16)
        assert np.array_equal(out, p), e


@pytest.mark.parametrize("k", [2, 4, 7, 10])
def test_c_lossy_bit_exact(c_decoders, k):
    d, exes = c_decoders
    w = _lossy_weights()
    for block in (32, 7):
        out = np.frombuffer(_run(exes[0], d, encode_lossy(w, k, block), ["lossy", len(w), k, block]),
                            dtype=np.uint32)
        v = lossy_values(w, k, block).view(np.uint32)
        assert np.array_equal(out, v), (k, block)
    mag = v[64:128] & 0x7FFFFFFF
    assert ((mag > 0) & (mag < 0x00800000)).sum() > 10  # subnormal results were covered
    w = _wide_floats(4000, k)  # every exponent from 2^-149 to 2^127
    for block in (5, 1):
        if block == 1:
            w = np.where(np.abs(w) >= 2.0 ** -128, w, np.float32(2.0 ** -127))
        out = np.frombuffer(_run(exes[0], d, encode_lossy(w, k, block), ["lossy", len(w), k, block]),
                            dtype=np.uint32)
        assert np.array_equal(out, lossy_values(w, k, block).view(np.uint32)), (k, block)


# ---------------------------------------------------------------------------- the C backend

@pytest.mark.parametrize("model,fmt", [("digits_cnn", "fp16"), ("digits_resnet", "bf16")])
def test_c_backend_with_neuzip_storage(tmp_path, model, fmt):
    """Lossless: the C outputs equal plain storage's (golden) and the flash holds fewer
    bytes; lossy:4: golden, C (decoding its blobs) and HLS agree."""
    d = np.load(ROOT / "examples" / model / "test.npz")
    plain = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt)
    nz = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt, neuzip="lossless")
    assert all(np.array_equal(plain.qgraph.consts[c], nz.qgraph.consts[c]) for c in plain.qgraph.consts)
    out = nz.write(tmp_path / "nz", targets=["c"])
    src = (out / "c" / "nnforge_model.c").read_text()
    assert "nnf_nz_decode_lossless(" in src and "_blob[" in src
    r = nz.verify(d["x"], d["y"], backends=["golden", "c"], outdir=out)
    assert r.backends["c"].mismatches == 0
    assert np.array_equal(nz.predict(d["x"]), plain.predict(d["x"]))
    steps = [s for s in nz.lowered("c").steps if "n_w" in s.params]
    assert sum(s.params["blob_bytes"] for s in steps) < sum(2 * s.params["n_w"] for s in steps)
    lossy = nnforge.compile(ROOT / "examples" / model / "model.onnx", float_format=fmt, neuzip="lossy:4")
    out = lossy.write(tmp_path / "ly", targets=["c", "hls"])
    r = lossy.verify(d["x"], d["y"], backends=["golden", "c", "hls"], outdir=out)
    assert r.backends["c"].mismatches == 0 and r.backends["hls"].mismatches == 0
    assert r.backends["golden"].accuracy >= 0.9  # 4 mantissa bits still classify
