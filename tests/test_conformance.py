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
])
def test_out_of_scope_cases_are_refused_with_reason(outcomes, name, words):
    assert outcomes[name].status == "refused"
    assert words in outcomes[name].reason


def test_backend_detects_a_wrong_result(monkeypatch):
    """The harness can fail: a Relu that is off by one is reported as failed."""
    from nnforge.ir.ops import relu

    monkeypatch.setattr(relu, "float_ref", lambda attrs, inputs: [np.maximum(inputs[0], 0) + 1])
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
