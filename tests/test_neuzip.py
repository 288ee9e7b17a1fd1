"""NeuZip weight storage: the lossless blob reproduces every weight bit (Python and the C
decoder), the lossy one gives exactly the values the golden model uses, and the C backend
decoding layer by layer at run time gives the outputs of plain storage."""

import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnforge
from conftest import ROOT
from nnforge.codegen.render import TEMPLATES
from nnforge.ir.floats import FORMATS, from_f32
from nnforge.passes.neuzip import decode_lossless, decode_lossy, encode_lossless, encode_lossy, lossy_values, ratio
from nnforge.sim.native import C_FLAGS

EXP = {"fp16": 5, "bf16": 8}


def _weights(fmt: str, n: int = 5000, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).normal(0, 0.05, n).astype(np.float32)
    return from_f32(w, FORMATS[fmt]).astype(np.uint16)


def _cases():
    out = []
    for fmt in ("fp16", "bf16"):
        out += [(fmt, _weights(fmt)), (fmt, np.zeros(0, np.uint16)), (fmt, np.array([0x3C00], np.uint16)),
                (fmt, np.full(300, 0x1234, np.uint16)), (fmt, np.arange(1 << 16, dtype=np.uint16))]
    return out


@pytest.mark.parametrize("i", range(10))
def test_lossless_round_trip_every_bit(i):
    fmt, p = _cases()[i]
    blob = encode_lossless(p, EXP[fmt])
    assert np.array_equal(decode_lossless(blob, len(p), EXP[fmt]), p)


def test_lossless_compresses_trained_like_weights():
    for fmt in ("fp16", "bf16"):
        assert ratio(_weights(fmt), EXP[fmt]) > 1.15, fmt


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), max_size=200), st.sampled_from([5, 8]))
def test_lossless_round_trip_any_bits(values, e):
    p = np.array(values, dtype=np.uint16)
    assert np.array_equal(decode_lossless(encode_lossless(p, e), len(p), e), p)


def test_lossy_values_and_bound():
    w = np.random.default_rng(1).normal(0, 0.05, 1024).astype(np.float32)
    w[:32] = 0.0  # an all-zero block
    for k in (2, 4, 7):
        v = lossy_values(w, k, 32)
        assert np.array_equal(decode_lossy(encode_lossy(w, k, 32), len(w), k, 32).view(np.uint32), v.view(np.uint32))
        top = np.abs(w).reshape(-1, 32).max(axis=1)
        e = np.repeat(np.frexp(top)[1] - 1, 32)
        clamped = np.abs(w) >= np.ldexp((1 << (k + 1)) - 0.5, e - k)
        err = np.abs(w.astype(np.float64) - v)
        assert np.all((err <= np.ldexp(1.0, e - k - 1) * (1 + 1e-6)) | clamped), k
        assert np.count_nonzero(np.unique(v)) <= 2 * ((1 << (k + 1)) - 1) * (len(w) // 32)


def _c_decoder(tmp_path):
    main = tmp_path / "nz.c"
    main.write_text('#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n'
                    + "#define NNF_NZ_LOSSLESS\n#define NNF_NZ_LOSSY\n" + (TEMPLATES / "c" / "neuzip.c").read_text()
                    + """
int main(int argc, char **argv)
{
    static uint8_t blob[1 << 22];
    static uint16_t out[1 << 20];
    static float fout[1 << 20];
    uint32_t n = (uint32_t)atol(argv[2]);
    int a = atoi(argv[3]), b = atoi(argv[4]);
    (void)argc;
    FILE *f = fopen(argv[1], "rb");
    size_t got = fread(blob, 1, sizeof blob, f);
    (void)got;
    fclose(f);
    if (b == 0) {
        nnf_nz_decode_lossless(blob, out, n, a);
        fwrite(out, 2, n, stdout);
    } else {
        nnf_nz_decode_lossy(blob, fout, n, a, b);
        fwrite(fout, 4, n, stdout);
    }
    return 0;
}
""")
    exe = tmp_path / "nz"
    subprocess.run(["gcc", *C_FLAGS, str(main), "-o", str(exe)], check=True)
    return exe


def test_c_decoder_reproduces_every_bit(tmp_path):
    exe = _c_decoder(tmp_path)
    for i, (fmt, p) in enumerate(_cases()):
        (tmp_path / f"b{i}").write_bytes(encode_lossless(p, EXP[fmt]))
        out = subprocess.run([str(exe), str(tmp_path / f"b{i}"), str(len(p)), str(EXP[fmt]), "0"],
                             capture_output=True, check=True).stdout
        assert np.array_equal(np.frombuffer(out, dtype=np.uint16), p), (fmt, i)
    w = np.random.default_rng(2).normal(0, 0.05, 999).astype(np.float32)
    w[5] = 3e-39  # a block scale below the normal floats
    w[40:72] = 0.0
    for k in (2, 4, 10):
        (tmp_path / "l").write_bytes(encode_lossy(w, k, 32))
        out = subprocess.run([str(exe), str(tmp_path / "l"), str(len(w)), str(k), "32"],
                             capture_output=True, check=True).stdout
        assert np.array_equal(np.frombuffer(out, dtype=np.uint32), lossy_values(w, k, 32).view(np.uint32)), k


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
    assert r.backends["golden"].accuracy >= 0.9  # 4 mantissa bits still classify (the table has the figures)
