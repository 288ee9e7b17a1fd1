"""What the generated Verilog costs a cycle-based simulator: the products of the window
engines' multiplier lanes are plain multiplies in Verilator's C++ (written unsigned: operand
and product widths are equal, so the bits are the signed product's), not VL_MULS_III, which
sign-extends both operands on every cycle of every lane (about a fifth of ResNet-8's
simulation time). The results themselves are checked bit-exact by tests/test_verilog*.py."""

import re
import subprocess

import numpy as np

import nnforge
from conftest import ROOT
from nnforge.sim import rtl
from nnforge.sim.tools import find_tool, verilator_env

CNN = ROOT / "examples" / "digits_cnn"


def test_window_products_are_plain_multiplies(tmp_path):
    design = nnforge.compile(CNN / "model.onnx", calibration=np.load(CNN / "calibration.npz")["x"], bits=8)
    src = design.write(tmp_path / "out", targets=["verilog"]) / "verilog"
    info, srcs = rtl.design_sources(src)
    text = "".join(p.read_text() for p in srcs)
    n_prod = len(re.findall(r"wire signed \[\d+:0\] prod_\d+_\d+ = ", text))
    assert n_prod > 0  # the example has window engines with multiplier lanes
    obj = tmp_path / "obj"
    subprocess.run([find_tool("verilator"), "--cc", "-O3", "--x-assign", "fast", "--top-module", info["top"],
                    "-Mdir", str(obj), *map(str, srcs)], check=True, env=verilator_env(), capture_output=True)
    cpp = "".join(p.read_text() for p in obj.glob("*.cpp"))
    # every statement that computes a lane's product from its operand registers
    stmts = [s for s in re.findall(r"__DOT__prod_\d+_\d+\s*=([^;]*);", cpp) if "__DOT__xr_" in s]
    assert len(stmts) >= n_prod
    assert not [s for s in stmts if "VL_MULS" in s]
    assert all("*" in s for s in stmts)
