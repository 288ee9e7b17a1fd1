"""The ONNX backend test suite on the float interpreter (scripts/onnx_conformance.py)."""

import importlib.util
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import ROOT
from nnforge.frontend.onnx_backend import NnforgeBackend

_spec = importlib.util.spec_from_file_location("onnx_conformance", ROOT / "scripts" / "onnx_conformance.py")
conformance = importlib.util.module_from_spec(_spec)
sys.modules["onnx_conformance"] = conformance  # dataclasses look their module up there
_spec.loader.exec_module(conformance)


@pytest.fixture(scope="module")
def outcomes():
    return {o.name: o for o in conformance.run_all(["node", "pytorch-converted", "pytorch-operator", "light"])}


def test_no_in_scope_case_fails(outcomes):
    failed = {n: o.reason for n, o in outcomes.items() if o.status == "failed"}
    assert failed == {}


def test_every_refusal_says_why(outcomes):
    for o in outcomes.values():
        if o.status == "refused":
            assert len(o.reason) > 20, o


# cases of the spine's ops that must pass (the CNN ops' cases are counted by the script)
MUST_PASS = [
    "test_add", "test_add_bcast", "test_relu", "test_identity", "test_dropout_default",
    "test_flatten_axis1", "test_flatten_axis2", "test_flatten_default_axis", "test_gemm_default_no_bias",
    "test_gemm_default_vector_bias", "test_gemm_default_scalar_bias", "test_gemm_transposeB",
    "test_gemm_alpha", "test_gemm_beta", "test_matmul_2d", "test_softmax_example",
    "test_softmax_axis_1", "test_softmax_axis_2", "test_softmax_default_axis", "test_softmax_large_number",
    "test_cast_DOUBLE_to_FLOAT", "test_cast_FLOAT_to_DOUBLE",
    # integer / narrow float inputs held exactly in float32, 1-D inputs (a batch of scalars),
    # a batch size written into a Reshape, half-pixel nearest Resize, Dropout with ratio 0
    "test_add_int8", "test_mul_uint16", "test_clip_default_int8_min", "test_maxpool_2d_uint8",
    "test_cast_INT4_to_FLOAT", "test_cast_FLOAT8E4M3FN_to_FLOAT16", "test_cast_UINT2_to_UINT8",
    "test_clip_example", "test_reshape_reduced_dims", "test_reshape_zero_dim",
    "test_resize_upsample_scales_nearest", "test_resize_upsample_scales_nearest_axes_3_2",
    "test_resize_upsample_sizes_nearest_ceil_half_pixel", "test_resize_upsample_scales_linear",
    "test_resize_downsample_scales_cubic",
    "test_training_dropout_zero_ratio",
]


@pytest.mark.parametrize("name", MUST_PASS)
def test_spine_case_passes(outcomes, name):
    assert outcomes[name].status == "passed", outcomes[name].reason


LIGHT = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
         "squeezenet", "vgg19", "zfnet512"]


@pytest.mark.parametrize("name", LIGHT)
def test_light_model_reproduces_stored_output(outcomes, name):
    assert outcomes[f"light_{name}"].status == "passed", outcomes[f"light_{name}"].reason


@pytest.mark.parametrize("name, words", [
    ("test_softmax_axis_0", "batch axis"),
    ("test_flatten_axis0", "batch axis"),
    ("test_cast_FLOAT_to_FLOAT16", "float32 or float64"),
    ("test_cast_e8m0_FLOAT8E8M0_to_FLOAT16", "holds every value"),
    ("test_div_int8", "int8"),
    ("test_quantizelinear", "quantized integers"),
    ("test_reshape_reordered_all_dims", "cannot reshape"),
    ("test_reshape_negative_dim", "batch axis"),
    ("test_resize_tf_crop_and_resize", "tf_crop_and_resize"),
])
def test_out_of_scope_cases_are_refused_with_reason(outcomes, name, words):
    assert outcomes[name].status == "refused"
    assert words in outcomes[name].reason


def test_backend_detects_a_wrong_result(monkeypatch):
    """The harness can fail: a Relu that is off by one is reported as failed."""
    import dataclasses

    from nnforge.ir.ops import relu

    off_by_one = dataclasses.replace(relu.DEF, float_ref=lambda attrs, inputs: [np.maximum(inputs[0], 0) + 1])
    monkeypatch.setattr(relu, "DEF", off_by_one)
    case = next(c for c in conformance.in_scope_cases(["node"]) if c[0].name == "test_relu")
    assert conformance.run_case(*case).status == "failed"


def test_backend_binds_weight_inputs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x, w], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    (got,) = NnforgeBackend.run_model(model, [a, b])
    np.testing.assert_allclose(got, a @ b, rtol=1e-6)


def int8_add_model():
    x, y, z = (helper.make_tensor_value_info(t, TensorProto.INT8, ["N", 3]) for t in "xyz")
    model = helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "y"], ["z"])], "g", [x, y], [z]),
                              opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


def test_integer_arithmetic_is_exact_or_refused_at_run_time():
    """int8 Add: exact while the sums stay within int8; a sum that ONNX wraps around is
    refused, not answered differently."""
    from nnforge.frontend import ModelImportError

    a = np.array([[1, -2, 3], [60, 20, -80]], np.int8)
    (got,) = NnforgeBackend.run_model(int8_add_model(), [a, a // 2])
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, a + a // 2)
    with pytest.raises(ModelImportError, match="int8 result -160 leaves the type's range"):
        NnforgeBackend.run_model(int8_add_model(), [a, a])


def test_integer_inputs_only_for_the_float_interpreter():
    """The compile path keeps refusing integer inputs; the backend takes them."""
    from nnforge.frontend import ModelImportError, import_onnx

    with pytest.raises(ModelImportError, match="is not a float tensor"):
        import_onnx(int8_add_model())
    assert import_onnx(int8_add_model(), float_interpreter=True).inputs == ["x", "y"]


def test_holds_every_value():
    from nnforge.frontend.exact import holds_every_value, is_exact_input

    T = TensorProto
    assert holds_every_value(T.INT8, T.FLOAT16) and holds_every_value(T.UINT4, T.INT8)
    assert not holds_every_value(T.INT16, T.FLOAT16) and not holds_every_value(T.FLOAT8E8M0, T.FLOAT16)
    assert not holds_every_value(T.FLOAT, T.FLOAT16) and not holds_every_value(T.INT8, T.UINT8)
    assert is_exact_input(T.UINT16) and is_exact_input(T.FLOAT8E5M2)
    assert not is_exact_input(T.INT32) and not is_exact_input(T.FLOAT) and not is_exact_input(T.BOOL)
