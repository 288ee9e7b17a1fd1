"""The package's structure, checked in seconds: the layers and the ONNX and private-module
rules of pyproject's [tool.importlinter] contracts (import-linter), and
scripts/check_structure.py (cycles, private names, long functions and files) with its
allowlist that only shrinks. Each check is also shown to fail on a violation."""

import copy
import importlib.util
import subprocess
import sys
import textwrap

import grimp
import pytest
from importlinter import api
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.private_modules import PrivateModulesContract
from importlinter.contracts.protected import ProtectedContract

from conftest import ROOT

CONTRACTS = {"layers": LayersContract, "protected": ProtectedContract, "private_modules": PrivateModulesContract}


def _structure():
    spec = importlib.util.spec_from_file_location("check_structure", ROOT / "scripts" / "check_structure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_lint_imports_keeps_every_contract():
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
                          "--no-cache", str(ROOT / "pyproject.toml")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("importer, imported, broken", [
    ("nnforge.ir.graph", "nnforge.passes.quantize", "layers"),  # ir imports nothing of ours
    ("nnforge.passes.quantize", "nnforge.frontend", "layers"),  # passes and frontend independent
    ("nnforge.codegen.program", "nnforge.sim.files", "layers"),
    ("nnforge.sim.files", "nnforge.design", "layers"),  # the root modules sit on top
    ("nnforge.passes.quantize", "onnx", "protected"),  # only the frontend reads ONNX
    ("nnforge.design", "onnx", "protected"),
    ("nnforge.codegen.naming", "nnforge.ir.ops._window", "private_modules"),
])
def test_each_contract_can_fail(importer, imported, broken):
    """One added import breaks exactly the contract that forbids it (the same graph without it
    keeps them all)."""
    config = api.read_configuration(str(ROOT / "pyproject.toml"))
    session = config["session_options"]
    graph = grimp.build_graph("nnforge", include_external_packages=True, cache_dir=None)

    def kept(g):  # a check removes its ignored imports from the graph: each gets a copy
        return {c["type"]: CONTRACTS[c["type"]](c["name"], session, c).check(copy.deepcopy(g), verbose=False).kept
                for c in config["contracts_options"]}

    assert set(kept(graph).values()) == {True}
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="import")
    assert kept(graph) == {t: t != broken for t in CONTRACTS}


def test_structure_only_allowlisted_violations():
    """No violation beyond the allowlist, and no allowlist entry that no longer occurs (so the
    list only shrinks: delete the entry once its violation is gone)."""
    cs = _structure()
    found = cs.violations()
    new, stale = cs.check(found)
    assert not new, "new structure violations:\n" + "\n".join(f"{v.where}: {v.entry}" for v in new)
    assert not stale, "fixed, remove from ALLOWLIST in scripts/check_structure.py:\n" + "\n".join(stale)
    assert {e.split(":")[0] for e in cs.ALLOWLIST} <= set(cs.KINDS)


def test_structure_checks_find_each_kind(tmp_path):
    """A small package with one violation of each kind, and what is fine beside them."""
    cs = _structure()
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from . import b  # inside a function: counts\n    return b.g\n\n_x = 1\n",
        "b.py": "from .a import f\n\ndef g():\n    return f\n",
        "c.py": "from .a import _x, f\nfrom . import a\n\ny = a._x\nz = a.__name__\n",
        "pkg/__init__.py": "from ._inner import h  # inside its package: fine\n",
        "pkg/_inner.py": "def h():\n    return 1\n",
        "pkg/user.py": "from ._inner import h\n",
        "d.py": "from .pkg._inner import h\nimport nnforge.pkg._inner\n",
        "long.py": ("def fine():\n" + "    x = 1\n" * 99
                    + "\n\nclass K:\n    def long(self):\n" + "        x = 1\n" * 100),
        "big.py": "x = 1\n" * (cs.MAX_FILE + 1),
        "tests/test_x.py": "from nnforge.a import _x\n" + "x = 1\n" * 800,  # not the package
        "e.py": ("LAYERS = frozenset({'Dense', 'Conv'})\nONE = ('Dense',)\nMIXED = ['Dense', 'x', 'Relu']\n"
                 "WORDS = ('Dense', 'Unknown')\nKEYS = {'Dense': 1, 'Conv': 2}\n"
                 # a rule's pattern, marked on its line or alone on the line above: not reported
                 "PAT = ('Conv', 'Dense', 'Relu')  # structure: pattern\n# structure: pattern (why)\nPAT2 = ['Conv', 'Relu']\n"
                 "# structure: pattern\n\nLATE = ('Conv', 'Gemm')  # the mark is not on the line above\n"),
        "ir/__init__.py": "",
        "ir/ops/__init__.py": "OPS = {'Dense', 'Conv'}  # the registry: fine\n",
        "frontend/__init__.py": "ONNX = ('Conv', 'Gemm')  # ONNX names: fine\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    found = cs.violations(tmp_path, frozenset({"Dense", "Conv", "Relu", "Gemm"}))
    assert {v.entry for v in found} == {
        "cycle: nnforge.a -> nnforge.b -> nnforge.a",
        "private: nnforge.c imports nnforge.a._x",
        "private: nnforge.c reads nnforge.a._x",
        "private: nnforge.d imports module nnforge.pkg._inner",
        "function: long.py:K.long",
        "file: big.py",
        "opset: e.py: Conv, Dense",
        "opset: e.py: Dense, Relu",
        "opset: e.py: Conv, Gemm",
    }
    where = {v.entry: v.where for v in found}
    assert where["cycle: nnforge.a -> nnforge.b -> nnforge.a"] == "a.py:2"
    assert where["private: nnforge.c reads nnforge.a._x"] == "c.py:4"
    assert where["opset: e.py: Dense, Relu"] == "e.py:3" and where["opset: e.py: Conv, Gemm"] == "e.py:11"
    assert {"Dense", "Conv"} <= cs.ir_op_names()  # the default: the installed registry's names
    new, stale = cs.check(found, frozenset({"file: big.py", "function: gone.py:f"}))
    assert {v.entry for v in new} == {v.entry for v in found} - {"file: big.py"}
    assert stale == ["function: gone.py:f"]
