"""The README's two commands are the ones CI and users run."""

import re

from conftest import ROOT


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```sh\n(.+?)\n```", text, flags=re.M | re.S)


def test_ci_runs_the_readme_test_command():
    commands = readme_commands()
    test_cmd = [c for c in commands if "pytest" in c]
    assert len(test_cmd) == 1
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd[0].strip() in [line.strip() for line in ci]


def test_readme_has_the_demo_command():
    assert any("nnforge demo" in c for c in readme_commands())
