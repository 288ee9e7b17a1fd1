"""Resize / Upsample beyond nearest by integer factors: linear, cubic and nearest with every
coordinate rule and rounding, up and down, 1-D and 2-D. The float interpreter against
onnxruntime (or ONNX's reference where onnxruntime has no kernel); the integer rule against
an exact rational oracle; golden == C == HLS in every integer; an 8-bit design near float."""

import tracemalloc
from fractions import Fraction

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import nnforge
from conftest import extremes
from nnforge.frontend.errors import ModelImportError
from nnforge.ir import run_float
from nnforge.ir.fixed import FixedType
from nnforge.ir.graph import Graph, Node
from nnforge.ir.ops import op_def
from nnforge.frontend.resize_taps import MAX_ROWS, axis_rows
from nnforge.ir.ops.resize import FRAC, int_taps
from nnforge.sim.native import run_c, run_hls
from nnforge.sim.progress import QUIET


def resize_model(in_shape, out_shape, *, scales=None, sizes=None, opset=13, op="Resize", **attrs):
    inits, ins = [], ["x", "", ""]
    if scales is not None:
        inits.append(numpy_helper.from_array(np.asarray(scales, np.float32), "s"))
        ins = ["x", "s"] if op == "Upsample" or opset < 11 else ["x", "", "s"]
    if sizes is not None:
        inits.append(numpy_helper.from_array(np.asarray(sizes, np.int64), "z"))
        ins = ["x", "", "", "z"]
    g = helper.make_graph([helper.make_node(op, ins, ["y"], **attrs)], "r",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, *out_shape])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def onnx_reference(m, x):
    """onnxruntime's result; ONNX's reference where onnxruntime has no kernel (cubic on a
    1-D signal, cubic downsampling)."""
    try:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x})[0]
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors have no type of their own
        if "'Cubic' mode only supports" not in str(e):
            raise
        return ReferenceEvaluator(m).run(None, {"x": x})[0]


# (mode, coordinate rule, nearest_mode or cubic extras, in shape, out shape, scales, sizes)
LINEAR_CUBIC = [(mode, ctm, extra, i, o, sc, sz)
                for mode, extras in (("linear", [{}]), ("cubic", [{}, {"exclude_outside": 1, "cubic_coeff_a": -0.5}]))
                for extra in extras
                for ctm in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
                for i, o, sc, sz in (((2, 5), (2, 12), None, [1, 2, 12]),       # 1-D up
                                     ((2, 7), (2, 4), [1, 1, 0.6], None),         # 1-D down, scales
                                     ((2, 4, 5), (2, 6, 3), None, [1, 2, 6, 3]),  # 2-D up / down
                                     ((1, 3, 3), (1, 9, 6), [1, 1, 3, 2], None))]  # 2-D integer factors
NEAREST = [("nearest", ctm, {"nearest_mode": nm}, i, o, sc, sz)
           for ctm in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
           for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
           for i, o, sc, sz in (((2, 5), (2, 12), [1, 1, 2.5], None), ((2, 4, 5), (2, 7, 3), None, [1, 2, 7, 3]))]


@pytest.mark.parametrize("mode, ctm, extra, in_shape, out_shape, scales, sizes", LINEAR_CUBIC + NEAREST)
def test_float_matches_onnx(mode, ctm, extra, in_shape, out_shape, scales, sizes):
    m = resize_model(in_shape, out_shape, scales=scales, sizes=sizes, mode=mode,
                     coordinate_transformation_mode=ctm, **extra)
    if ctm == "align_corners" and scales is not None and any(d * f % 1 for d, f in zip(in_shape, scales[1:])):
        # no whole output length: onnxruntime and ONNX's definition differ, the importer refuses
        with pytest.raises(ModelImportError, match="align_corners"):
            nnforge.frontend.import_onnx(m)
        return
    x = np.random.default_rng(len(in_shape)).normal(size=(1, *in_shape)).astype(np.float32)
    g = nnforge.frontend.import_onnx(m)
    got = run_float(g, x)[0]
    np.testing.assert_allclose(got, onnx_reference(m, x), rtol=1e-5, atol=1e-5)


def test_opset_forms():
    """Upsample-9 and Resize-10 (asymmetric), Resize-18 with axes and a keep-aspect-ratio
    policy, Resize-19's half_pixel_symmetric."""
    x = np.random.default_rng(1).normal(size=(1, 2, 4, 5)).astype(np.float32)
    models = [resize_model((2, 4, 5), (2, 6, 7), scales=[1, 1, 1.5, 1.5], op="Upsample", opset=9, mode="linear"),
              resize_model((2, 4, 5), (2, 6, 7), scales=[1, 1, 1.5, 1.5], opset=10, mode="linear"),
              resize_model((2, 4, 5), (2, 7, 9), sizes=[7, 10], opset=18, axes=[2, 3], mode="linear",
                           keep_aspect_ratio_policy="not_larger"),
              resize_model((2, 4, 5), (2, 8, 10), sizes=[7, 10], opset=18, axes=[2, 3], mode="cubic",
                           keep_aspect_ratio_policy="not_smaller"),
              resize_model((2, 4, 5), (2, 6, 7), scales=[1, 1, 1.6, 1.5], opset=19, mode="linear",
                           coordinate_transformation_mode="half_pixel_symmetric")]
    for m in models:
        np.testing.assert_allclose(run_float(nnforge.frontend.import_onnx(m), x)[0], onnx_reference(m, x),
                                   rtol=1e-5, atol=1e-5)


def test_integer_nearest_keeps_the_copy_form():
    m = resize_model((2, 3, 4), (2, 6, 8), scales=[1, 1, 2, 2], mode="nearest",
                     coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    (node,) = nnforge.frontend.import_onnx(m).topo()
    assert node.attrs == {"scales": (1, 2, 2)}


@pytest.mark.parametrize("attrs, scales, words", [
    (dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"), [1, 1, 2, 2], "tf_crop_and_resize"),
    (dict(mode="linear", antialias=1), [1, 1, 0.5, 0.5], "antialias"),
    (dict(mode="linear"), [2, 1, 1, 1], "batch axis"),
    (dict(mode="area"), [1, 1, 2, 2], "mode 'area'"),
    (dict(mode="nearest", nearest_mode="up"), [1, 1, 2, 2], "nearest_mode 'up'"),
])
def test_refusals(attrs, scales, words):
    m = resize_model((2, 4, 4), tuple(int(d * s) for d, s in zip((2, 4, 4), scales[1:])), scales=scales,
                     opset=18, **attrs)
    with pytest.raises(ModelImportError, match=words):
        nnforge.frontend.import_onnx(m)


def test_hostile_refusals():
    """A cubic_coeff_a that is not finite or beyond 4, scales that keep every extent (onnxruntime
    returns the input, ONNX interpolates), an axis of more than MAX_ROWS output indices, an
    accumulator the integer form cannot hold (linear on four axes at 16 bits)."""
    cases = [(resize_model((2, 4, 4), (2, 8, 8), scales=[1, 1, 2, 2], mode="cubic", cubic_coeff_a=float("nan")),
              "cubic_coeff_a"),
             (resize_model((2, 4, 4), (2, 8, 8), scales=[1, 1, 2, 2], mode="cubic", cubic_coeff_a=5.0),
              "cubic_coeff_a"),
             (resize_model((2, 4, 4), (2, 4, 4), scales=[1, 1, 1.1, 1.2], mode="linear"), "keep every extent"),
             (resize_model((2, 3), (2, MAX_ROWS + 1), sizes=[1, 2, MAX_ROWS + 1], mode="linear"),
              f"more than {MAX_ROWS} output"),
             (resize_model((2, 2, 2, 2), (3, 3, 3, 3), sizes=[1, 3, 3, 3, 3], mode="linear"), "accumulator")]
    for m, words in cases:
        m.graph.node[0].name = "rz"
        with pytest.raises(ModelImportError, match=f"rz.*{words}"):
            nnforge.frontend.import_onnx(m)
    with pytest.raises(ValueError, match="not finite"):
        op_def("Resize").shape({"mode": "linear", "taps": (((0, (float("inf"), 0.0)),),)}, [(2,)])


def test_large_axis_without_a_dense_matrix():
    """A 2048 -> 2049 resize applies its taps directly (a dense matrix would take 32 MiB);
    its tap table is computed once."""
    taps = (None, axis_rows(2048, 2049, 2049 / 2048, mode="cubic", ctm="half_pixel"))
    assert int_taps(taps) is int_taps([None, [(s, list(w)) for s, w in taps[1]]])  # cached, saved form too
    x = np.random.default_rng(0).integers(-128, 128, (2, 3, 2048))
    t = FixedType(8, 4, True)
    q = Graph("q")
    q.add_input("x", (3, 2048))
    rn = q.add_node(Node("r", "Resize", ["x"], ["y"], {"mode": "cubic", "taps": taps}))
    q.set_qtype("x", t)
    q.set_qtype("y", t)
    tracemalloc.start()
    y = op_def("Resize").int_ref(rn, q, [x])[0]
    yf = op_def("Resize").float_ref({"mode": "cubic", "taps": taps}, [x.astype(np.float32)])[0]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20, peak
    assert y.shape == yf.shape == (2, 3, 2049)
    w = np.array([w for _, w in taps[1]])
    idx = np.array([s for s, _ in taps[1]])[:, None] + np.arange(w.shape[1])
    np.testing.assert_array_equal(yf, np.einsum("ot,ncot->nco", w, x[:, :, idx]).astype(np.float32))


# ---- the integer rule ------------------------------------------------------------------

def test_int_taps_rounding():
    """Round half to even at FRAC bits; a row whose weights sum to 1 sums to 2**FRAC, its
    largest weight taking the difference; other rows are left as rounded."""
    one = 1 << FRAC
    taps = ((None), ((0, (2.5 / one, 1 - 2.5 / one)), (0, (1 / 3, 1 / 3, 1 / 3)), (1, (0.5, 0.3))))
    _, (starts, weights, t) = int_taps(taps[:1] + (taps[1],))
    assert (starts, t) == ((0, 0, 1), 2)
    assert weights[0] == (2, one - 2)  # 2.5 -> 2 (even); the complement absorbs nothing more
    assert sum(weights[1]) == one and sorted(weights[1]) == [1365, 1365, 1366]
    assert weights[2] == (2048, 1229)  # 0.8 in all: not corrected


def fraction_oracle(taps, x, out_t):
    """y = saturate(floor(sum prod w * x / 2**(n FRAC) + 1/2)) with exact rationals, one
    output value at a time (per-sample x of shape (C, H, W))."""
    axes = int_taps(taps)
    n = sum(a is not None for a in axes)
    out_shape = [len(a[0]) if a is not None else d for a, d in zip(axes, x.shape)]
    y = np.zeros(out_shape, dtype=np.int64)
    for o in np.ndindex(*out_shape):
        per_axis = [[(o[k], 1)] if a is None else [(a[0][o[k]] + t, w) for t, w in enumerate(a[1][o[k]])]
                    for k, a in enumerate(axes)]
        total = Fraction(0)
        for combo in np.ndindex(*[len(p) for p in per_axis]):
            idx = tuple(per_axis[k][c][0] for k, c in enumerate(combo))
            w = np.prod([per_axis[k][c][1] for k, c in enumerate(combo)], dtype=object)
            total += Fraction(int(w) * int(x[idx]))
        v = (total / (1 << (n * FRAC)) + Fraction(1, 2)).__floor__()
        y[o] = min(max(v, out_t.lo), out_t.hi)
    return y


@pytest.mark.parametrize("mode, ctm, sizes", [("linear", "half_pixel", [1, 2, 7, 3]),
                                              ("cubic", "align_corners", [1, 2, 3, 8]),
                                              ("cubic", "half_pixel", [1, 3, 4, 4]),  # the channel axis too
                                              ("nearest", "asymmetric", [1, 2, 6, 7])])
def test_integer_rule_matches_a_rational_oracle(mode, ctm, sizes):
    g = nnforge.frontend.import_onnx(resize_model((2, 4, 5), tuple(sizes[1:]), sizes=sizes, mode=mode,
                                                  coordinate_transformation_mode=ctm))
    (node,) = g.topo()
    t = FixedType(8, 4, True)
    q = Graph("q")
    q.add_input("x", (2, 4, 5))
    rn = q.add_node(Node(node.name, "Resize", ["x"], ["y"], dict(node.attrs)))
    q.set_qtype("x", t)
    q.set_qtype("y", t)
    rng = np.random.default_rng(2)
    x = rng.integers(t.lo, t.hi + 1, (3, 2, 4, 5))
    x[0] = np.where(np.indices((2, 4, 5)).sum(0) % 2, t.lo, t.hi)  # a checkerboard: cubic overshoots
    got = op_def("Resize").int_ref(rn, q, [x])[0]
    for i in range(len(x)):
        assert np.array_equal(got[i], fraction_oracle(node.attrs["taps"], x[i], t))


# ---- golden == C == HLS, and an 8-bit design near float ---------------------------------

IN = (2, 5, 6)


def mixed_model():
    """Resize variants on one input, every branch (2, 8, *) so that they concatenate on the
    width: linear up, cubic down (exclude_outside), nearest with a non-integer scale, the
    copy form followed by a linear downsample, and a resize of the channel axis and back."""
    nodes, inits = [], []

    def resize(src, dst, size, mode, ctm, **extra):
        inits.append(numpy_helper.from_array(np.array([1, *size], np.int64), f"{dst}_z"))
        nodes.append(helper.make_node("Resize", [src, "", "", f"{dst}_z"], [dst], mode=mode,
                                      coordinate_transformation_mode=ctm, **extra))

    resize("x", "r0", (2, 8, 9), "linear", "half_pixel")
    resize("x", "r1", (2, 8, 4), "cubic", "align_corners", exclude_outside=1)
    resize("x", "r2", (2, 8, 7), "nearest", "half_pixel", nearest_mode="round_prefer_ceil")
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "c_s"))
    nodes.append(helper.make_node("Resize", ["x", "", "c_s"], ["c"], mode="nearest",
                                  coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    resize("c", "r3", (2, 8, 5), "linear", "pytorch_half_pixel")
    resize("x", "ch", (3, 5, 6), "linear", "align_corners")
    resize("ch", "r4", (2, 8, 3), "cubic", "half_pixel")
    width = 9 + 4 + 7 + 5 + 3
    nodes.append(helper.make_node("Concat", ["r0", "r1", "r2", "r3", "r4"], ["y"], axis=3))
    g = helper.make_graph(nodes, "resizes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *IN])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 8, width])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture(scope="module")
def design():
    cal = np.random.default_rng(3).normal(0, 1, (64, *IN)).astype(np.float32)
    return nnforge.compile(mixed_model(), calibration=cal, bits=8)


def test_design_forms(design, tmp_path):
    design.save(tmp_path / "d")
    x = np.random.default_rng(1).normal(0, 1, (8, *IN)).astype(np.float32)
    assert np.array_equal(nnforge.load(tmp_path / "d").predict(x), design.predict(x))  # tap tables saved exactly
    forms = sorted((n.attr("mode", "copy"), bool(n.attr("taps"))) for n in design.qgraph.topo() if n.op == "Resize")
    assert forms == [("copy", False), ("cubic", True), ("cubic", True), ("linear", True), ("linear", True),
                     ("linear", True), ("nearest", True)]


def test_c_and_hls_match_golden(design, tmp_path):
    n = 24
    x = extremes(design, n, 7)
    x[2] = np.where(np.indices(IN).sum(0) % 2, design.input_type.lo, design.input_type.hi)  # cubic overshoot
    golden = design.predict_int(x).reshape(n, -1)
    assert golden.min() == design.output_type.lo and golden.max() == design.output_type.hi  # saturation reached
    out = design.write(tmp_path / "out", targets=["c", "hls"])
    assert "_w1[" in (out / "c" / "nnforge_model.c").read_text()  # tap tables, not a copy
    for target, run in (("c", run_c), ("hls", run_hls)):
        y = run(design.lowered(target), out / target, out / "build" / target, x.reshape(n, -1), QUIET).y
        assert np.array_equal(y, golden), target


def test_eight_bit_design_is_near_float(design):
    x = np.random.default_rng(9).normal(0, 1, (64, *IN)).astype(np.float32)
    err = np.abs(design.predict_dequantized(x) - design.predict_float(x)).max()
    assert err <= 3 * 2.0 ** -design.output_type.frac, err


@pytest.mark.parametrize("kw", [dict(scale_factor=1.5, mode="bicubic", align_corners=False),
                                dict(size=(5, 9), mode="bilinear", align_corners=True)])
def test_pytorch_interpolate(kw, tmp_path):
    torch = pytest.importorskip("torch")

    class Interp(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, **kw)

    x = torch.randn(2, 3, 4, 6)
    path = tmp_path / "m.onnx"
    torch.onnx.export(Interp().eval(), x, str(path), opset_version=13, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    g = nnforge.frontend.import_onnx(str(path))
    np.testing.assert_allclose(run_float(g, x.numpy())[0], Interp()(x).numpy(), rtol=1e-5, atol=1e-5)
