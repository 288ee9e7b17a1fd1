"""Hostile and wrong-but-plausible data: .npz files, labels, input values, calibration
without spread, NaN in the C float wrapper, and a very large layer compiled to C.

Every refusal is exit 2 with one line naming the file / tensor and the numbers, and
nothing written; every warning is one ``nnforge: warning:`` line (shown even with -q)
with the documented fallback applied."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .harness import nnforge, python, run, patch_zip

N_IN, N_OUT = 4, 3


def _save_model(path: Path, w: np.ndarray, b: np.ndarray, out_shape=None) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_out, n_in = w.shape
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y" if out_shape is None else "g"], name="fc", transB=1)]
    inits = [numpy_helper.from_array(w.astype(np.float32), "W"), numpy_helper.from_array(b.astype(np.float32), "b")]
    if out_shape is not None:
        nodes.append(helper.make_node("Reshape", ["g", "shape"], ["y"], name="rs"))
        inits.append(numpy_helper.from_array(np.array((1, *out_shape), dtype=np.int64), "shape"))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, *(out_shape or (n_out,))])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A 4 -> 3 Gemm with mixed-sign weights (no Relu), good calibration data, and its
    compiled output folder (C)."""
    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    w = np.array([[1.0, -1.0, 0.5, 0.0], [-0.5, 0.25, 1.0, -1.0], [0.75, 0.5, -0.25, 0.5]])
    model = _save_model(d / "model.onnx", w, np.array([0.1, -0.2, 0.05]))
    cal = d / "cal.npz"
    np.savez(cal, x=rng.uniform(-1, 1, (64, N_IN)).astype(np.float32))
    out = d / "out"
    nnforge("compile", model, "-o", out, "--targets", "c", "--calibration", cal, "-q").ok()
    return {"model": model, "cal": cal, "out": out, "dir": d, "w": w}


def _compile(tiny, tmp_path, *extra, cal=None) -> tuple:
    out = tmp_path / "out"
    r = nnforge("compile", tiny["model"], "-o", out, "--targets", "c", "--calibration", cal or tiny["cal"], "-q",
                *extra)
    return r, out


def _refused(tiny, tmp_path, cal: Path, *fragments: str, extra=()) -> str:
    r, out = _compile(tiny, tmp_path, *extra, cal=cal)
    line = r.one_error(*fragments)
    assert not out.exists(), "a refused compile wrote its output folder"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    return line


def _x(n=16, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, N_IN)).astype(np.float32)


def _npy_member(descr: str, shape: tuple, payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def _zip(path: Path, members: dict[str, bytes], method=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


# ---- .npz files that are not what they say ---------------------------------------------

def test_npy_renamed_npz(tiny, tmp_path):
    bad = tmp_path / "cal.npz"
    with open(bad, "wb") as f:
        np.save(f, _x())
    _refused(tiny, tmp_path, bad, "cal.npz", "single .npy array, not a .npz")


def test_empty_file(tiny, tmp_path):
    bad = tmp_path / "cal.npz"
    bad.write_bytes(b"")
    _refused(tiny, tmp_path, bad, "cal.npz: the file is empty")


def test_truncated_zip(tiny, tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=_x(64))
    bad = tmp_path / "cal.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(tiny, tmp_path, bad, "cal.npz", "not a readable .npz file, truncated or corrupt")


def test_corrupt_member_data(tiny, tmp_path):
    """The directory is intact but the member's bytes are not: the CRC check refuses it."""
    good = tmp_path / "good.npz"
    np.savez(good, x=_x(64))
    raw = bytearray(good.read_bytes())
    raw[200] ^= 0xFF  # inside x.npy's data (stored, not compressed)
    bad = tmp_path / "cal.npz"
    bad.write_bytes(bytes(raw))
    _refused(tiny, tmp_path, bad, "cal.npz", "truncated or corrupt", "crc")


def test_not_a_zip_at_all(tiny, tmp_path):
    bad = tmp_path / "cal.npz"
    bad.write_text("x,y\n1,2\n")
    _refused(tiny, tmp_path, bad, "cal.npz", "is not a .npz file")


def test_member_not_npy(tiny, tmp_path):
    good = io.BytesIO()
    np.save(good, _x())
    bad = _zip(tmp_path / "cal.npz", {"x.npy": good.getvalue(), "run_me.sh\x1b[2J": b"rm -rf ~"})
    line = _refused(tiny, tmp_path, bad, "cal.npz", "is not a .npy array", "run_me.sh\\x1b")
    assert "\x1b" not in line


def test_pickled_object_array(tiny, tmp_path, canary):
    import pickle

    class Plant:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    payload = pickle.dumps(np.array([Plant(), 1], dtype=object), protocol=2)
    bad = _zip(tmp_path / "cal.npz", {"x.npy": _npy_member("|O", (2,), payload)})
    _refused(tiny, tmp_path, bad, "cal.npz", "'x' is an array of python objects")
    assert not canary.exists()


def test_header_announces_1e12_elements(tiny, tmp_path):
    bad = _zip(tmp_path / "cal.npz", {"x.npy": _npy_member("<f4", (10**12,), b"\0" * 64)}, zipfile.ZIP_DEFLATED)
    r, out = _compile(tiny, tmp_path, cal=bad)
    assert r.seconds < 30
    r.one_error("cal.npz", "1000000000000 values", "truncated or corrupt")
    assert not out.exists()


def test_header_huge_and_directory_agrees(tiny, tmp_path):
    """A zip directory that claims the member really is 40 GB: refused by the size limit,
    before anything is read."""
    member = _npy_member("<f4", (10**10, 4))
    bad = tmp_path / "cal.npz"
    _zip(bad, {"x.npy": member})
    raw = bytearray(bad.read_bytes())
    # patch the uncompressed size in the central directory (and the local header) to 2^32-1
    for sig, off in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        i = raw.find(sig)
        raw[i + off:i + off + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    bad.write_bytes(bytes(raw))
    _refused(tiny, tmp_path, bad, "cal.npz", "'x'")


@pytest.mark.parametrize("arr, frag", [
    (np.ones((8, N_IN), dtype=np.complex64), "dtype complex64"),
    (np.array([["a"] * N_IN] * 8), "dtype <u1"),
    (np.ones((8, N_IN), dtype="datetime64[s]"), "dtype datetime64"),
    (np.zeros((8,), dtype=[("a", "<f4"), ("b", "<i4")]), "it must hold real numbers"),
], ids=["complex", "str", "datetime", "structured"])
def test_non_numeric_dtype(tiny, tmp_path, arr, frag):
    bad = tmp_path / "cal.npz"
    np.savez(bad, x=arr)
    _refused(tiny, tmp_path, bad, "cal.npz", frag)


def test_zero_samples(tiny, tmp_path):
    bad = tmp_path / "cal.npz"
    np.savez(bad, x=np.zeros((0, N_IN), np.float32))
    _refused(tiny, tmp_path, bad, "cal.npz", "'x' holds no samples")


def test_no_x(tiny, tmp_path):
    bad = tmp_path / "cal.npz"
    np.savez(bad, data=_x())
    _refused(tiny, tmp_path, bad, "has no array named 'x'", "found: data")


def test_wrong_shape_verify(tiny, tmp_path):
    bad = tmp_path / "d.npz"
    np.savez(bad, x=np.zeros((8, N_IN + 1), np.float32))
    nnforge("verify", tiny["out"], "--data", bad, "--backends", "golden", "-q").one_error(
        "input data has shape (8, 5)", "(n, 4)")


def test_labels_wrong_length(tiny, tmp_path):
    bad = tmp_path / "d.npz"
    np.savez(bad, x=_x(8), y=np.zeros(7, np.int64))
    nnforge("verify", tiny["out"], "--data", bad, "--backends", "golden", "-q").one_error(
        "d.npz", "8 samples in 'x' but 7 labels")


def test_labels_float_dtype(tiny, tmp_path):
    bad = tmp_path / "d.npz"
    np.savez(bad, x=_x(8), y=np.zeros(8, np.float64))
    nnforge("verify", tiny["out"], "--data", bad, "--backends", "golden", "-q").one_error(
        "d.npz", "'y' has dtype float64", "integers")


# ---- labels outside the model's classes -------------------------------------------------

@pytest.mark.parametrize("label, frag", [(3, "(3)"), (-1, "(-1)"), (2**40, f"({2**40})")])
def test_labels_out_of_range_verify(tiny, tmp_path, label, frag):
    bad = tmp_path / "d.npz"
    y = np.zeros(8, np.int64)
    y[5] = label
    np.savez(bad, x=_x(8), y=y)
    nnforge("verify", tiny["out"], "--data", bad, "--backends", "golden", "-q").one_error(
        "1 label(s) outside the model's 3 classes [0, 2]", "index 5", frag)


def test_labels_out_of_range_mixed_precision(tiny, tmp_path):
    val = tmp_path / "val.npz"
    np.savez(val, x=_x(16), y=np.full(16, 7))
    _refused(tiny, tmp_path, tiny["cal"], "validation labels", "16 label(s) outside the model's 3 classes",
             extra=("--validation", val, "--mixed-precision", "0.01"))


def test_labels_out_of_range_prune_budget(tiny, tmp_path):
    val = tmp_path / "val.npz"
    np.savez(val, x=_x(16), y=-np.ones(16, np.int64))
    _refused(tiny, tmp_path, tiny["cal"], "validation labels", "outside the model's 3 classes", "(-1)",
             extra=("--validation", val, "--prune-max-drop", "0.01"))


def test_labels_for_output_that_is_not_a_class_vector(tmp_path):
    rng = np.random.default_rng(0)
    model = _save_model(tmp_path / "m.onnx", rng.standard_normal((6, N_IN)), np.zeros(6), out_shape=(2, 3))
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=_x(32))
    out = tmp_path / "out"
    nnforge("compile", model, "-o", out, "--targets", "c", "--calibration", cal, "-q").ok()
    data = tmp_path / "d.npz"
    np.savez(data, x=_x(8), y=np.zeros(8, np.int64))
    nnforge("verify", out, "--data", data, "--backends", "golden", "-q").one_error(
        "labels were given", "(2, 3)", "not a vector of class scores")


# ---- input values --------------------------------------------------------------------------

def test_nan_and_inf_in_calibration(tiny, tmp_path):
    x = _x(16).astype(np.float64)
    x[3, 2], x[9, 0] = np.nan, -np.inf
    bad = tmp_path / "cal.npz"
    np.savez(bad, x=x)
    _refused(tiny, tmp_path, bad, "cal.npz: 'x'", "2 values are nan or infinite", "index [3, 2]")


def test_float64_beyond_float32_verify(tiny, tmp_path):
    x = _x(8).astype(np.float64)
    x[6, 1] = 1e300
    x[7, 3] = -1e39
    bad = tmp_path / "d.npz"
    np.savez(bad, x=x)
    nnforge("verify", tiny["out"], "--data", bad, "--backends", "golden", "-q").one_error(
        "d.npz: 'x'", "2 values are beyond float32's range", "index [6, 1]", "1e+300")


def test_float32_values_that_overflow_the_float_model(tiny, tmp_path):
    """Finite float32 inputs whose products overflow: one line naming the tensor, no
    RuntimeWarning text (PYTHONWARNINGS=default is set for the child)."""
    x = _x(16)
    x[4] = 3e38
    bad = tmp_path / "cal.npz"
    np.savez(bad, x=x)
    _refused(tiny, tmp_path, bad, "tensor 'y' is not finite on the calibration data", "overflows float32")


def test_report_and_verify_on_overflowing_float32_print_no_numpy_warnings(tiny, tmp_path):
    """Finite float32 inputs the float model overflows on at verify / report time: the
    golden model saturates them; no RuntimeWarning text reaches stderr."""
    x = _x(8)
    x[5] = 3e38
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=np.zeros(8, np.int64))
    r = nnforge("report", tiny["out"], "--data", data, "-q").ok()
    assert r.err == "" and "model output SQNR nan dB" in r.out
    r = nnforge("verify", tiny["out"], "--data", data, "--backends", "golden", "-q").ok()
    assert r.err == "" and "all backends match golden" in r.out


def test_api_refuses_nan_without_warnings(tiny):
    code = f"""
import numpy as np, nnforge
x = np.random.default_rng(0).uniform(-1, 1, (16, {N_IN})).astype(np.float32)
d = nnforge.compile({str(tiny['model'])!r}, calibration=x)
x[2, 1] = np.nan
for f in (d.predict, d.predict_float):
    try:
        f(x)
    except nnforge.DataError as e:
        print(e)
"""
    r = python(code).ok()
    assert r.err == ""
    assert r.out.splitlines() == ["input data: 1 value is NaN or infinite, the first at index [2, 1] (nan)"] * 2


# ---- calibration without spread ------------------------------------------------------------

@pytest.mark.parametrize("fill, frag", [(0.0, "is 0 over 16 sample(s)"), (3.5, "is 3.5 over 16 sample(s)")])
def test_calibration_constant_refused(tiny, tmp_path, fill, frag):
    bad = tmp_path / "cal.npz"
    np.savez(bad, x=np.full((16, N_IN), fill, np.float32))
    _refused(tiny, tmp_path, bad, "every value of the model input 'x'", frag, "no range can be known")


def test_calibration_single_sample_warns_even_quiet(tiny, tmp_path):
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=_x(1))
    r, out = _compile(tiny, tmp_path, cal=cal)
    r.ok()
    lines = r.err_lines
    assert lines and all(ln.startswith("nnforge: warning: ") for ln in lines), r.err
    assert "only 1 calibration sample(s) (at least 8 recommended)" in lines[0]
    assert (out / "c" / "nnforge_model.c").is_file()


def test_calibration_one_sign_made_signed(tiny, tmp_path):
    """Calibration samples where the first output never goes negative (x0 >= x1), though
    the weights make it negative for other inputs in the same range: the tensor is made
    signed (warned), so golden keeps a negative output instead of clipping it to 0."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (64, N_IN)).astype(np.float32)
    x[:, 0] = np.maximum(x[:, 0], x[:, 1]) + 0.1
    x[:, 2:] = 0.0
    x[0, 2:] = 1.0  # the input still spans [0, 1] everywhere
    w = np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    model = _save_model(tmp_path / "m.onnx", w, np.zeros(3))
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=x)
    out = tmp_path / "out"
    r = nnforge("compile", model, "-o", out, "--targets", "c", "--calibration", cal, "-q").ok()
    assert len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith("nnforge: warning: tensor 'y' never went negative"), r.err
    code = f"""
import numpy as np
from nnforge.design import Design
d = Design.load({str(out)!r})
print(str(d.output_type), float(d.predict_dequantized(np.array([[0.0, 1.0, 0.0, 0.0]], np.float32))[0, 0]))
"""
    t, y0 = python(code).ok().out.split()
    assert t.startswith("s"), t
    assert float(y0) == pytest.approx(-1.0, abs=0.02)


def test_calibration_fine_data_no_warning(tiny, tmp_path):
    r, out = _compile(tiny, tmp_path)
    r.ok()
    assert r.err == ""


# ---- NaN and friends in the generated C float wrapper ----------------------------------

def test_c_float_wrapper_nonfinite_matches_golden(tmp_path):
    """nnforge_run_float on NaN, +-inf, +-1e30, -0.0, rounding midpoints and float32's
    extremes: the same integers as golden's quantize_float(..., nonfinite="saturate")
    (an identity layer, so every output is its input's integer)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found")
    model = _save_model(tmp_path / "m.onnx", np.eye(N_IN), np.zeros(N_IN))
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.random.default_rng(0).uniform(-2, 2, (64, N_IN)).astype(np.float32))
    out = tmp_path / "out"
    nnforge("compile", model, "-o", out, "--targets", "c", "--calibration", cal, "-q").ok()
    from nnforge.design import Design
    from nnforge.ir.fixed import quantize_float

    d = Design.load(out)
    t = d.input_type
    lsb = 2.0 ** -t.frac
    special = [np.nan, np.inf, -np.inf, 1e30, -1e30, -0.0, 0.0, 3.4e38, -3.4e38, 1e-45, -1e-45,
               0.5 * lsb, -0.5 * lsb, 1.5 * lsb, -1.5 * lsb, 2.5 * lsb, -2.5 * lsb, (t.hi + 0.5) * lsb,
               (t.lo - 0.5) * lsb, (t.hi - 0.5) * lsb, (t.lo + 0.5) * lsb, 0.49999997 * lsb, -np.nan]
    vals = np.array(special + [0.0] * (-len(special) % N_IN), dtype=np.float32).reshape(-1, N_IN)
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "nnforge_model.h"\n'
        "int main(void) { float in[NNFORGE_IN_SIZE], out[NNFORGE_OUT_SIZE];\n"
        "  while (fread(in, sizeof(float), NNFORGE_IN_SIZE, stdin) == NNFORGE_IN_SIZE) {\n"
        "    nnforge_run_float(in, out); fwrite(out, sizeof(float), NNFORGE_OUT_SIZE, stdout); }\n"
        "  return 0; }\n")
    exe = tmp_path / "run"
    b = run([gcc, "-std=c99", "-O2", "-Wall", "-Werror", "-fsanitize=float-cast-overflow,undefined",
             "-fno-sanitize-recover=all", "-I", out / "c", out / "c" / "nnforge_model.c", tmp_path / "main.c",
             "-lm", "-o", exe])
    assert b.rc == 0, b.err
    p = subprocess.run([str(exe)], input=vals.tobytes(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    c_out = np.frombuffer(p.stdout, dtype=np.float32).reshape(vals.shape)
    golden = d.predict_int(quantize_float(vals, t, nonfinite="saturate"))
    from nnforge.ir import dequantize

    want = dequantize(golden, d.output_type).astype(np.float32)
    assert np.array_equal(c_out, want), (vals, c_out, want)
    q = quantize_float(vals, t, nonfinite="saturate").reshape(-1)
    assert q[0] == 0 and q[1] == t.hi and q[2] == t.lo and q[3] == t.hi and q[4] == t.lo  # the documented rule


def test_golden_quantize_float_still_refuses_nan_by_default():
    r = python("from nnforge.ir.fixed import quantize_float, FixedType\nimport numpy as np\n"
               "try:\n    quantize_float(np.array([np.nan]), FixedType(8, 4))\nexcept ValueError as e:\n    print(e)")
    assert r.ok().out.strip() == "cannot quantize NaN or infinite values"


# ---- a very large layer --------------------------------------------------------------------

def test_big_layer_compiles_to_c_within_limits(tmp_path):
    """A 4 M-weight Dense layer compiles to C under the suite's limits, with a peak
    resident set of at most BASE + PER_WEIGHT bytes a weight (the C text is streamed: no
    list of strings per weight; benchmarks/bench_big_layer.py measures 10 M to 100 M),
    and the C file holds every row of weights."""
    import importlib.util

    # loaded from its file: neither sys.path nor sys.modules changes for the other tests
    spec = importlib.util.spec_from_file_location(
        "bench_big_layer", Path(__file__).resolve().parents[2] / "benchmarks" / "bench_big_layer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    build_model = bench.build_model

    base, per_weight = 150 << 20, 56
    model = tmp_path / "big.onnx"
    n_in, n_out = build_model(model, 4_000_000, 2000)
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.random.default_rng(1).uniform(-1, 1, (16, n_in)).astype(np.float32))
    out = tmp_path / "out"
    code = f"""
import resource, sys
from nnforge.cli import main
rc = main(["compile", {str(model)!r}, "-o", {str(out)!r}, "--targets", "c", "--calibration", {str(cal)!r}, "-q"])
print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
    r = python(code).ok()
    assert r.err == ""
    rc, peak = map(int, r.out.split())
    assert rc == 0
    assert peak <= base + per_weight * n_in * n_out, f"peak RSS {peak >> 20} MiB for {n_in * n_out} weights"
    text = (out / "c" / "nnforge_model.c").read_text()
    start = text.index("_w[%d][%d] = {" % (n_out, n_in))
    assert text[start:text.index("};", start)].count("{ ") == n_out


# ---- zips nnforge does not read, and compression bombs ------------------------------------

@pytest.mark.parametrize("kind, fragment", [
    ("encrypted", "member 'x.npy' is encrypted; nnforge reads only unencrypted .npz files"),
    ("method", "member 'x.npy' uses zip compression method 99; nnforge reads stored or deflated members")])
def test_encrypted_or_unknown_method(tiny, tmp_path, kind, fragment):
    bad = tmp_path / "cal.npz"
    np.savez(bad, x=_x(64))
    if kind == "encrypted":
        patch_zip(bad, {6: b"\x01\x00"}, {8: b"\x01\x00"})
    else:
        patch_zip(bad, {8: b"\x63\x00"}, {10: b"\x63\x00"})
    _refused(tiny, tmp_path, bad, "cal.npz: " + fragment)


def test_fifo_as_data_file(tiny, tmp_path):
    import os

    fifo = tmp_path / "cal.npz"
    os.mkfifo(fifo)
    line = _refused(tiny, tmp_path, fifo, "cal.npz: is a FIFO, not a regular file; refused")
    assert line


def _bomb(path: Path, rows: int) -> Path:
    """A .npz whose 'x' is ``rows`` x 4 float64 zeros, deflated (about 1000:1)."""
    header = _npy_member("<f8", (rows, 4))
    block = bytes(16 << 20)
    left = rows * 4 * 8
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w", force_zip64=True) as f:
        f.write(header)
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return path


INTERPRETER = 200 << 20  # resident set of nnforge with nothing loaded (about 60 MiB) and room to spare


def _peak(argv: list, env: dict | None = None) -> tuple[int, str, int]:
    """Run ``argv`` from a child that reports the peak resident set of its own child
    (getrusage(RUSAGE_CHILDREN) after it ended): exit status, stderr, bytes."""
    code = f"""
import resource, subprocess, sys
p = subprocess.run({[str(a) for a in argv]!r}, capture_output=True, text=True)
sys.stderr.write(p.stderr)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""
    r = python(code, env=env)
    rc, peak = map(int, r.out.split())
    return rc, r.err, peak


@pytest.mark.parametrize("rows, fragment", [
    ((1 << 25) + (1 << 20), "'x' holds 138412032 values (1.0 GiB), more than the 1.0 GiB nnforge reads from one "
                            "array; to read it, raise the limit (load_npz(max_bytes=...) or NNFORGE_MAX_DATA_BYTES)"),
    (1 << 25, "(a compression bomb?); to read it, raise the limit"),
], ids=["over-limit", "ratio"])
def test_compression_bomb_refused_before_reading(tiny, tmp_path, rows, fragment):
    import sys

    bomb = _bomb(tmp_path / "cal.npz", rows)
    assert bomb.stat().st_size < 4 << 20
    rc, err, peak = _peak([sys.executable, "-m", "nnforge", "compile", tiny["model"], "-o", tmp_path / "out",
                           "--targets", "c", "--calibration", bomb, "-q"])
    lines = err.splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("nnforge: error: ") and fragment in lines[0], err
    assert peak < INTERPRETER, f"peak RSS {peak >> 20} MiB"
    assert not (tmp_path / "out").exists()


def test_raised_data_limit_reads_a_large_array_checked_in_blocks(tiny, tmp_path):
    """With the limit raised, the 1 GiB array is read; the value check works in blocks, so
    the peak stays near the array, its float32 copy and the interpreter (the full-size
    temporaries of np.abs and np.isfinite would add another 1.1 GiB)."""
    import sys

    data = _bomb(tmp_path / "d.npz", 1 << 25)
    rc, err, peak = _peak([sys.executable, "-m", "nnforge", "verify", tiny["out"], "--data", data, "--backends",
                           "golden", "--limit", "8", "-q"], env={"NNFORGE_MAX_DATA_BYTES": str(2 << 30)})
    assert rc == 0 and err == "", err
    assert peak < (1 << 30) + (512 << 20) + INTERPRETER, f"peak RSS {peak >> 20} MiB"
