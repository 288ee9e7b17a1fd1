"""The frontend refuses what it cannot compile, clearly and before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge import DataError, Design, ModelImportError, UnsupportedOpError
from nnforge.frontend import SUPPORTED_OPS, import_onnx
from nnforge.ir import run_float

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_mlp"


def make_model(nodes, in_shape=("N", 4), out_shape=("N", 3), inits=(), opset=13, extra_opsets=()):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])
    model.ir_version = 8
    return model


def gemm_model(in_shape=("N", 4), seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    return make_model([helper.make_node("Gemm", ["x", "W", "b"], ["y"], name="fc", transB=1)],
                      in_shape=in_shape, inits=[("W", w), ("b", b)])


@pytest.fixture
def no_write(monkeypatch):
    """Fail the test if Design.write is ever called."""
    calls = []

    def spy(self, *a, **k):
        calls.append((a, k))
        raise AssertionError("Design.write must not be reached")

    monkeypatch.setattr(Design, "write", spy)
    return calls


def compile_and_write(model, out: Path, x_cal):
    """What the command line does: compile, then write."""
    design = nnforge.compile(model, calibration=x_cal)
    design.write(out, targets=["c"])


# ---- unsupported ops -------------------------------------------------------------------------


def sin_model():
    nodes = [helper.make_node("Sin", ["x"], ["c"], name="sin_1"),
             helper.make_node("Flatten", ["c"], ["y"], name="flat")]
    return make_model(nodes, in_shape=("N", 1, 5, 5), out_shape=("N", 25))


def custom_model():
    nodes = [helper.make_node("FancyAct", ["x"], ["c"], name="fancy_0", domain="com.acme"),
             helper.make_node("Relu", ["c"], ["y"], name="r")]
    return make_model(nodes, out_shape=("N", 4), extra_opsets=[helper.make_opsetid("com.acme", 1)])


@pytest.mark.parametrize("model_fn, node, op, x_shape", [
    (sin_model, "sin_1", "Sin", (2, 1, 5, 5)),
    (custom_model, "fancy_0", "FancyAct", (2, 4)),
])
def test_unsupported_op_is_named_and_nothing_is_written(tmp_path, no_write, model_fn, node, op, x_shape):
    model = model_fn()
    path = tmp_path / "m.onnx"
    onnx.save_model(model, str(path))
    out = tmp_path / "out"
    for source in (model, path):
        with pytest.raises(UnsupportedOpError) as info:
            compile_and_write(source, out, np.zeros(x_shape, np.float32))
        msg = str(info.value)
        assert repr(node) in msg and repr(op) in msg
        for supported in SUPPORTED_OPS:
            assert supported in msg
    if model_fn is custom_model:
        assert "com.acme" in msg
    assert no_write == []
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_unsupported_op_error_is_an_import_error():
    with pytest.raises(ModelImportError):
        import_onnx(sin_model())


def test_several_unsupported_ops_are_counted():
    nodes = [helper.make_node("Sin", ["x"], ["s"], name="sin"), helper.make_node("Cos", ["s"], ["y"], name="cos")]
    with pytest.raises(UnsupportedOpError, match=r"'sin'.*'Sin'.*1 more"):
        import_onnx(make_model(nodes, out_shape=("N", 4)))


def test_unsupported_op_on_constants_only_is_folded():
    """An op outside SUPPORTED_OPS is fine when all its inputs are constants."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    nodes = [helper.make_node("Sigmoid", ["W"], ["Ws"], name="sig_w"), helper.make_node("MatMul", ["x", "Ws"], ["y"])]
    g = import_onnx(make_model(nodes, inits=[("W", w)]))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(run_float(g, x)[0], x @ (1 / (1 + np.exp(-w))), rtol=1e-5, atol=1e-6)


# ---- opset, files ----------------------------------------------------------------------------


@pytest.mark.parametrize("opset", [7, 9, 10])
def test_old_opset_is_upgraded(opset):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], out_shape=("N", 4), opset=opset)
    g = import_onnx(model)
    x = np.array([[-1.0, 0.5, 2.0, -3.0]], dtype=np.float32)
    np.testing.assert_array_equal(run_float(g, x)[0], np.maximum(x, 0))
    assert g.meta["opset"] == 11


def test_old_opset_the_converter_cannot_upgrade_is_refused(monkeypatch):
    from onnx import version_converter

    def fail(model, version):
        raise RuntimeError("no adapter for op Foo")

    monkeypatch.setattr(version_converter, "convert_version", fail)
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], out_shape=("N", 4), opset=9)
    with pytest.raises(ModelImportError, match="opset 9; nnforge needs opset 11 or newer.*no adapter for op Foo"):
        import_onnx(model)


def test_missing_file(tmp_path):
    with pytest.raises(ModelImportError, match="no such model file"):
        import_onnx(tmp_path / "nope.onnx")
    with pytest.raises(ModelImportError, match="no such model file"):
        nnforge.compile(str(tmp_path / "nope.onnx"), calibration=np.zeros((1, 4)))
    with pytest.raises(ModelImportError, match="no such model file"):
        import_onnx(tmp_path)  # a folder is not a model file


@pytest.mark.parametrize("content", [b"this is not an onnx model\n", b"\xff\xfe\x00\x01garbage" * 13, b"",
                                     b"PK\x03\x04 a zip file"])
def test_not_an_onnx_file(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelImportError) as info:
        import_onnx(path)
    assert str(path) in str(info.value) or "onnx.checker" in str(info.value)


def test_model_failing_the_checker_is_refused():
    model = gemm_model()
    model.graph.node[0].input[1] = "does_not_exist"
    with pytest.raises(ModelImportError, match="onnx.checker"):
        import_onnx(model)


# ---- external data -------------------------------------------------------------------------


def test_external_data_inside_the_folder_loads(tmp_path):
    model = gemm_model()
    folder = tmp_path / "model_dir"
    folder.mkdir()
    path = folder / "model.onnx"
    saved = onnx.ModelProto.FromString(model.SerializeToString())  # save_model edits its argument
    onnx.save_model(saved, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (folder / "weights.bin").stat().st_size > 0
    reloaded = onnx.load(str(path), load_external_data=False)
    assert all(init.data_location == TensorProto.EXTERNAL for init in reloaded.graph.initializer)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    want = run_float(import_onnx(model), x)[0]
    np.testing.assert_array_equal(run_float(import_onnx(path), x)[0], want)
    # and from another working directory, through the public API
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        design = nnforge.compile(str(path), calibration=x)
    finally:
        os.chdir(cwd)
    np.testing.assert_array_equal(design.predict_float(x), want)


def test_external_data_in_a_subfolder_loads(tmp_path):
    model = gemm_model()
    (tmp_path / "data").mkdir()
    path = tmp_path / "model.onnx"
    saved = onnx.ModelProto.FromString(model.SerializeToString())
    onnx.save_model(saved, str(path), save_as_external_data=True, location="data/w.bin", size_threshold=0)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(run_float(import_onnx(path), x)[0], run_float(import_onnx(model), x)[0])


def externalize(model, location: str, data_file: Path | None) -> onnx.ModelProto:
    """Point every initializer at ``location`` by hand (offset/length into one file)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    blob = b""
    for init in model.graph.initializer:
        raw = numpy_helper.to_array(init).tobytes()
        offset = len(blob)
        blob += raw
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
            entry = init.external_data.add()
            entry.key, entry.value = k, v
    if data_file is not None:
        data_file.write_bytes(blob)
    return model


@pytest.fixture
def no_external_read(monkeypatch):
    """Record any attempt to read external tensor data."""
    from onnx import external_data_helper

    reads = []
    real_model, real_tensor = (external_data_helper.load_external_data_for_model,
                               external_data_helper.load_external_data_for_tensor)

    def spy_model(model, base_dir):
        reads.append(("model", base_dir))
        return real_model(model, base_dir)

    def spy_tensor(tensor, base_dir):
        reads.append(("tensor", tensor.name))
        return real_tensor(tensor, base_dir)

    monkeypatch.setattr(external_data_helper, "load_external_data_for_model", spy_model)
    monkeypatch.setattr(external_data_helper, "load_external_data_for_tensor", spy_tensor)
    return reads


def test_handmade_external_data_is_read(tmp_path, no_external_read):
    """The hand-made layout below is right: inside the folder it loads and matches."""
    folder = tmp_path / "m"
    folder.mkdir()
    model = externalize(gemm_model(), "w.bin", folder / "w.bin")
    onnx.save_model(model, str(folder / "model.onnx"))
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(run_float(import_onnx(folder / "model.onnx"), x)[0],
                                  run_float(import_onnx(gemm_model()), x)[0])
    assert no_external_read


@pytest.mark.parametrize("where", ["parent", "absolute", "dotdot_inside", "symlink_out"])
def test_external_data_outside_the_folder_is_refused_before_reading(tmp_path, no_external_read, where):
    folder = tmp_path / "m"
    folder.mkdir()
    outside = tmp_path / "x.bin"  # exists and holds valid data: only the location is wrong
    location = {"parent": "../x.bin", "absolute": str(outside), "dotdot_inside": "sub/../../x.bin",
                "symlink_out": "link.bin"}[where]
    model = externalize(gemm_model(), location, outside)
    if where == "symlink_out":
        (folder / "link.bin").symlink_to(outside)
    path = folder / "model.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(ModelImportError) as info:
        import_onnx(path)
    msg = str(info.value)
    assert repr(location) in msg and "outside" in msg and "refusing" in msg
    assert "'W'" in msg or "'b'" in msg  # names the tensor
    assert no_external_read == []
    with pytest.raises(ModelImportError, match="outside"):
        nnforge.compile(path, calibration=np.zeros((1, 4)))


def test_missing_external_data_file(tmp_path, no_external_read):
    model = externalize(gemm_model(), "gone.bin", None)
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(ModelImportError, match="'gone.bin'.*missing"):
        import_onnx(path)
    assert no_external_read == []


# ---- batch axis ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [2, 3, 64])
def test_fixed_batch_above_one_is_refused(batch):
    with pytest.raises(ModelImportError, match=f"'x'.*fixed batch size of {batch}"):
        import_onnx(gemm_model(in_shape=(batch, 4)))


@pytest.mark.parametrize("batch", [1, "batch"])
def test_batch_one_or_symbolic_is_accepted(batch):
    g = import_onnx(gemm_model(in_shape=(batch, 4)))
    assert g.shape("x") == (4,)


def test_input_without_batch_axis_is_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], in_shape=(4,), out_shape=(4,))
    with pytest.raises(ModelImportError, match="'x'.*batch axis"):
        import_onnx(model)


def test_input_with_symbolic_data_axis_is_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], in_shape=("N", "M"), out_shape=("N", "M"))
    with pytest.raises(ModelImportError, match="'x'.*axis 1"):
        import_onnx(model)


def test_integer_input_is_refused():
    graph = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(ModelImportError, match="'x'.*not a float"):
        import_onnx(model)


def test_output_independent_of_the_input_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["W"], ["y"])]
    model = make_model(nodes, out_shape=(3,), inits=[("W", np.ones(3, np.float32))])
    model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 4]))
    with pytest.raises(ModelImportError, match="'y'.*does not depend"):
        import_onnx(model)


# ---- data that does not fit -------------------------------------------------------------------


@pytest.fixture(scope="module")
def design():
    cal = np.load(EXAMPLE / "calibration.npz")["x"]
    return nnforge.compile(EXAMPLE / "model.onnx", calibration=cal)


@pytest.mark.parametrize("shape", [(5, 63), (5, 8, 8), (64, 5), (5, 1, 64), ()])
def test_wrong_data_shape_is_a_data_error(design, shape):
    x = np.zeros(shape, np.float32)
    for call in (design.check_input, design.predict, design.predict_float,
                 lambda v: design.verify(v, backends=["golden"])):
        with pytest.raises(DataError, match=r"\(N, 64\)") as info:
            call(x)
        assert str(tuple(shape)) in str(info.value)


def test_single_sample_without_batch_axis_is_accepted(design):
    x = np.load(EXAMPLE / "test.npz")["x"][:1]
    np.testing.assert_array_equal(design.predict(x[0]), design.predict(x))


def test_non_numeric_data_is_a_data_error(design):
    with pytest.raises(DataError, match="numeric"):
        design.check_input(np.array([["a"] * 64]))


def test_label_count_mismatch_is_a_data_error(design):
    x = np.zeros((4, 64), np.float32)
    with pytest.raises(DataError, match="4 samples but 3 labels"):
        design.verify(x, np.zeros(3, np.int64), backends=["golden"])


def test_calibration_of_the_wrong_shape_is_a_data_error():
    with pytest.raises(DataError, match=r"\(N, 64\)"):
        nnforge.compile(EXAMPLE / "model.onnx", calibration=np.zeros((10, 63), np.float32))
    with pytest.raises(DataError, match="calibration"):
        nnforge.compile(EXAMPLE / "model.onnx")
