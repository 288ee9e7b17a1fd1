"""The C runtime helpers (``nnf_requant``, ``nnf_floor_div``) are defined exactly when a
step calls them: which helpers a step needs is read from its template
(:func:`nnforge.codegen.c.helpers_called`), never listed by hand."""

import re
import subprocess
from pathlib import Path

import jinja2.nodes as jn
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.codegen.c import HELPERS, TARGET, helpers_called
from nnforge.codegen.hls_program import DIVIDE
from nnforge.codegen.render import TEMPLATES, branches_calling, calls, environment
from nnforge.sim.tools import find_tool

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion"]
# the whole-model templates, not a step's
MODEL_TEMPLATES = {"nnforge_model.c", "nnforge_model.h", "nnforge_dynamic.c", "nnforge_dynamic.h",
                   "float_nnforge_model.c", "float_nnforge_model.h"}


def step_kinds() -> list[str]:
    return sorted(p.stem for p in (TEMPLATES / TARGET).glob("*.j2")
                  if not p.stem.startswith("_") and p.stem not in MODEL_TEMPLATES)


def _calls(node, fn: str) -> bool:
    return any(fn + "(" in d.data.replace(" (", "(") for d in node.find_all(jn.TemplateData))


def always_calls(body, fn: str) -> bool:
    """Every path through the template body ``body`` writes a call of ``fn`` (loops are taken
    to run once unless filtered; a macro's body counts only where it is called, so not)."""
    for node in body:
        if isinstance(node, jn.Output) and _calls(node, fn):
            return True
        if isinstance(node, jn.If):
            branches = [node.body, *(e.body for e in node.elif_), node.else_]
            if all(b and always_calls(b, fn) for b in branches):
                return True
        elif isinstance(node, jn.For):
            if node.test is None and always_calls(node.body, fn):
                return True
        elif isinstance(node, (jn.Scope, jn.With, jn.FilterBlock)) and always_calls(node.body, fn):
            return True
    return False


@pytest.mark.parametrize("kind", step_kinds())
def test_a_template_calls_its_helpers_on_every_path(kind):
    """What makes the derivation exact: a helper named anywhere in a step's template is
    called whatever the step's parameters (else a model could define it unused and
    -Wunused-function would fail the build under -Werror)."""
    env = environment(TARGET)
    tree = env.parse(env.loader.get_source(env, kind + ".j2")[0])
    for flag in helpers_called(kind):
        assert always_calls(tree.body, HELPERS[flag]), \
            f"{kind}.j2 calls {HELPERS[flag]} on some paths only: split the template, or call it on every path"


def test_the_scan_finds_the_callers():
    """The kinds whose templates requantize / divide through the helpers (read from the
    templates here too, independently of the scan: a textual grep of each file)."""
    for flag, fn in HELPERS.items():
        grep = {k for k in step_kinds() if fn + "(" in (TEMPLATES / TARGET / f"{k}.j2").read_text()}
        assert grep, f"no template calls {fn}"
        assert {k for k in step_kinds() if flag in helpers_called(k)} == grep


def test_hls_and_dynamic_c_read_the_division_helper_from_their_templates():
    """HLS defines ``nnf_floor_div`` for the kinds whose ``step_<kind>.j2`` calls it, dynamic C
    for the kinds whose branch of its one template calls it (both read from the templates,
    :func:`~nnforge.codegen.render.calls` / :func:`~nnforge.codegen.render.branches_calling`);
    checked against a grep of the HLS files and against the static C's division kinds."""
    hls = {p.stem[5:] for p in (TEMPLATES / "hls").glob("step_*.j2")}
    grep = {k for k in hls if "nnf_floor_div(" in (TEMPLATES / "hls" / f"step_{k}.j2").read_text()}
    assert grep and {k for k in hls if calls("hls", f"step_{k}.j2", DIVIDE)} == grep
    dyn_text = (TEMPLATES / "c" / "nnforge_dynamic.c.j2").read_text()
    dyn_kinds = set(re.findall(r's\.kind == "(\w+)"', dyn_text))
    divides = branches_calling("c", "nnforge_dynamic.c.j2", "floor_div")
    assert divides and divides == {k for k in dyn_kinds if "need_div" in helpers_called(k)}
    assert not branches_calling("c", "nnforge_dynamic.c.j2", "no_such_helper")


def _model(nodes, shape, inits=()):
    out = ["N", *(f"d{i}" for i in range(len(shape)))]  # every model here keeps its rank
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


MODELS = {  # name -> (model, input shape, the helpers its C file must define)
    "reduce-mean": (_model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1])], (3, 5)), (3, 5), set()),
    "table-op": (_model([helper.make_node("Sigmoid", ["x"], ["y"])], (6,)), (6,), set()),
    "max-of-const": (_model([helper.make_node("Max", ["x", "c"], ["y"])], (2, 3), [("c", [[0.5], [-1.0]])]),
                     (2, 3), set()),
    "gap": (_model([helper.make_node("GlobalAveragePool", ["x"], ["y"])], (2, 3, 3)), (2, 3, 3), {"need_div"}),
    "relu-then-mean": (_model([helper.make_node("Relu", ["x"], ["r"]),
                               helper.make_node("ReduceMean", ["r"], ["y"], axes=[1])], (2, 4)), (2, 4),
                       {"need_requant"}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_strict_c_defines_exactly_the_helpers_called(name, tmp_path):
    model, shape, needs = MODELS[name]
    cal = np.random.default_rng(0).normal(0, 1, (16, *shape)).astype(np.float32)
    out = nnforge.compile(model, calibration=cal, bits=8).write(tmp_path / name, targets=["c"])
    src = Path(out / "c" / "nnforge_model.c").read_text()
    for flag, fn in HELPERS.items():
        assert (f"static int64_t {fn}(" in src) == (flag in needs), f"{name}: {fn}"
    subprocess.run([find_tool("gcc"), *STRICT, "-c", str(out / "c" / "nnforge_model.c"), "-o",
                    str(tmp_path / "m.o")], check=True)
