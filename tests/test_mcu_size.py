"""The compile-time code and stack estimates of MCU programs (codegen/mcu_size.py) against
the linked ELF and the stack high-water mark on the emulated cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nnforge
from nnforge.codegen import c as c_target
from nnforge.codegen.mcu import mcu
from nnforge.codegen.mcu_program import lower_mcu
from nnforge.codegen.mcu_size import TOLERANCE, code_estimate, stack_estimate
from nnforge.sim import cortexm

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.skipif(cortexm.available() is not None, reason=str(cortexm.available()))
@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m0plus"])
@pytest.mark.parametrize("example", ["digits_mlp", "digits_cnn", "digits_resnet"])
def test_estimates_hold(example, core, tmp_path):
    cal = np.load(EXAMPLES / example / "calibration.npz")
    x = cal[cal.files[0]][:32]
    d = nnforge.compile(EXAMPLES / example / "model.onnx", calibration=x)
    prog = lower_mcu(d.qgraph, mcu(core))
    c_target.write(prog, tmp_path / "c")
    b = cortexm.build(tmp_path / "c", tmp_path / "arm", mcu(core))
    run = cortexm.run(b, d.quantize_input(x[:2]).reshape(2, -1), count=False)
    linked = sum(n for f, n in b.code_by_function.items() if not f.startswith("nnforge_run_float")
                 and f not in ("nnf_quantize_input",))
    est = code_estimate(prog)
    assert abs(est - linked) <= TOLERANCE * linked, (est, linked, b.code_by_function)
    assert run.stack_bytes <= stack_estimate(prog), run.stack_bytes
    assert linked < 8192
