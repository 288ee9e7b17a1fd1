"""End to end on the bundled example, every backend including Verilator, as users run it."""

import json
import re

import pytest

from conftest import ROOT
from nnforge import cli

pytestmark = pytest.mark.slow


def test_demo_all_backends_bit_exact(tmp_path, capsys):
    """`nnforge demo`: compile the digits MLP to c, hls, verilog and verify the whole test split."""
    rc = cli.main(["demo", "-o", str(tmp_path / "demo"), "--json", "-q"])
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{"):])
    assert rc == 0
    assert list(doc["backends"]) == ["golden", "c", "hls", "verilog"]
    for name, b in doc["backends"].items():
        assert b["samples"] == 360, name
        assert b["mismatches"] == 0, name
        assert doc["float_accuracy"] - b["accuracy"] <= 0.015, name
    v = doc["backends"]["verilog"]
    assert v["cycles_per_inference"] > 0 and v["latency_cycles"] > 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["verilog"]["totals"]["ii_cycles"] > 0


def test_readme_notebook_example_runs(tmp_path, monkeypatch):
    """The README's Python example runs as written (from the repository root's layout)."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"^```python\n(.+?)\n```", text, flags=re.M | re.S).group(1)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "out" / "verilog").is_dir()
