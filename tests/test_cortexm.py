"""The C target on an emulated Cortex-M4 and Cortex-M0+ (arm-none-eabi-gcc + unicorn):
every output integer of the bundled examples equals the golden model's, for the portable
C built for the core and for the core's own kernels (``mcu=``); the instruction counts,
step marks, stack and size figures are measured, not guessed."""

import re
import shutil

import numpy as np
import pytest

import nnforge
from conftest import ROOT
from nnforge.codegen.mcu import MCUS
from nnforge.sim import cortexm
from nnforge.sim.tools import ToolError

MISSING = cortexm.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

EXAMPLES = ["digits_mlp", "digits_cnn", "digits_resnet"]
CORES = ["cortex-m4", "cortex-m0plus"]
SAMPLES = 8
STEP_CALL = re.compile(r"\b(?:NNFORGE_STEP_DONE|NNF_STEP_END)\(\d+\)")  # a call, not the macro


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(example, kernels, core) -> (design, c folder), compiled and written once."""
    cache = {}

    def get(name, kernels="generic", core="generic"):
        key = (name, kernels if kernels == "generic" else core)
        if key not in cache:
            ex = ROOT / "examples" / name
            mcu = "generic" if kernels == "generic" else core
            design = nnforge.compile(ex / "model.onnx", calibration=np.load(ex / "calibration.npz")["x"],
                                     bits=8, mcu=mcu)
            out = design.write(tmp_path_factory.mktemp(f"{name}-{mcu}"), targets=["c"])
            cache[key] = design, out / "c"
        return cache[key]

    return get


def samples(design, name, n=SAMPLES):
    x = np.load(ROOT / "examples" / name / "test.npz")["x"][:n]
    xi = design.quantize_input(x)
    return xi.reshape(n, -1), design.predict_int(xi).reshape(n, -1)


def macs(design):
    from nnforge.codegen.program import lower_program
    return lower_program(design.qgraph).macs


@pytest.mark.parametrize("kernels", ["generic", "mcu"])
@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_exact_on_core(written, tmp_path, name, core, kernels):
    design, cdir = written(name, kernels, core)
    b = cortexm.build(cdir, tmp_path, MCUS[core])
    x, gold = samples(design, name)
    r = cortexm.run(b, x)
    assert r.outputs.shape == gold.shape
    np.testing.assert_array_equal(r.outputs, gold)
    assert len(r.instructions) == SAMPLES and min(r.instructions) > macs(design) / 4
    assert 0 < r.stack_bytes < 4096
    assert b.code_bytes >= sum(b.code_by_function.values()) > 0 and "nnforge_run" in b.code_by_function
    assert "nnforge_run_float" not in b.symbols  # dropped: the entry is nnforge_run
    assert b.rodata_bytes > 0
    steps = len(STEP_CALL.findall(cdir.joinpath("nnforge_model.c").read_text()))
    if steps:  # every step reports once, the steps account for the whole call but its epilogue
        assert len(r.step_instructions) == steps and min(r.step_instructions) > 0
        assert 0 <= r.instructions[0] - sum(r.step_instructions) < 64


def test_thumb_decode():
    # movs r0, #0 (16-bit); bl (32-bit: 0b11110 then 0b11111); ldr.w (0b11111); it (16-bit); b . (16-bit)
    code = bytes.fromhex("0020" "00f000f8" "d0f80000" "b8bf" "fee7")
    assert cortexm.thumb_offsets(code) == (0, 2, 6, 10, 12)


def with_steps(src, dst):
    """A copy of a generic C folder whose nnforge_run reports after each step."""
    shutil.copytree(src, dst)
    c = dst / "nnforge_model.c"
    text = c.read_text()
    if "NNFORGE_STEP_DONE(" not in text:
        text = re.sub(r"( *)NNFORGE_TRACE\((\d+), [^;]*;\n",
                      lambda m: m.group(0) + f"{m.group(1)}NNFORGE_STEP_DONE({m.group(2)});\n", text)
    c.write_text(text)
    return dst


def reference_counts(b, x_row):
    """Per-instruction counting (slow, exact for cores without IT blocks): total, step marks."""
    import unicorn
    uc = cortexm.load(b)
    n, marks = [0], []
    uc.hook_add(unicorn.UC_HOOK_CODE, lambda *_: n.__setitem__(0, n[0] + 1))
    uc.hook_add(unicorn.UC_HOOK_MEM_WRITE, lambda *_: marks.append(n[0]),
                begin=cortexm.STEP_MMIO, end=cortexm.STEP_MMIO + 3)
    uc.mem_write(cortexm.IN_ADDR, x_row.astype(b.in_dtype).tobytes())
    cortexm.call(uc, b.symbols["nnforge_run"][0])
    return n[0], list(np.diff([0, *marks]))


def test_counts_match_per_instruction_hook(written, tmp_path):
    """On the Cortex-M0+ (no IT blocks) the block counter equals counting each instruction,
    in total and per step; the direct and the wrapped block hooks agree."""
    design, cdir = written("digits_mlp")
    b = cortexm.build(with_steps(cdir, tmp_path / "c"), tmp_path / "b", MCUS["cortex-m0plus"])
    x, gold = samples(design, "digits_mlp", 2)
    r = cortexm.run(b, x)
    np.testing.assert_array_equal(r.outputs, gold)
    total, steps = reference_counts(b, x[0])
    assert r.instructions[0] == total
    assert r.step_instructions == steps and len(steps) == len(design.layers())
    slow = cortexm.run(b, x, fast_hook=False)
    assert slow.instructions == r.instructions and slow.step_instructions == r.step_instructions
    assert cortexm.run(b, x, count=False).instructions == []


def test_wrong_expectations_fail(written, tmp_path):
    """The comparison can fail: another input gives other outputs, and a changed bias in
    the source changes what the emulated core computes."""
    design, cdir = written("digits_mlp")
    x, gold = samples(design, "digits_mlp")
    b = cortexm.build(cdir, tmp_path / "ok", MCUS["cortex-m4"])
    swapped = cortexm.run(b, x[::-1]).outputs
    assert not np.array_equal(swapped, gold)
    x2 = x.copy()
    x2[0, 27] = 255 - x2[0, 27]  # one input pixel, in the middle of the digit
    gold2 = design.predict_int(x2.reshape(-1, *design.input_shape)).reshape(len(x2), -1)
    assert not np.array_equal(gold2, gold)
    np.testing.assert_array_equal(cortexm.run(b, x2).outputs, gold2)

    broken = tmp_path / "broken"
    shutil.copytree(cdir, broken)
    c = broken / "nnforge_model.c"
    text = c.read_text()
    last = list(re.finditer(r"static const int\d+_t \w+_b\[\d+\] = \{\s*(-?\d+)", text))[-1]
    text = text[:last.start(1)] + str(int(last.group(1)) + 100) + text[last.end(1):]
    c.write_text(text)
    bad = cortexm.run(cortexm.build(broken, tmp_path / "bad", MCUS["cortex-m4"]), x).outputs
    assert not np.array_equal(bad, gold)


def test_errors(written, tmp_path):
    """Inputs outside the input type, a core the emulator lacks, a faulting program."""
    design, cdir = written("digits_mlp")
    b = cortexm.build(cdir, tmp_path / "b", MCUS["cortex-m0plus"])
    with pytest.raises(ValueError, match="outside"):
        cortexm.run(b, np.full((1, b.n_in), 256))
    with pytest.raises(ValueError, match="values per sample"):
        cortexm.run(b, np.zeros((1, b.n_in + 1), int))
    with pytest.raises(ValueError, match="no Arm core"):
        cortexm.build(cdir, tmp_path / "g", MCUS["generic"])
    m55 = cortexm.build(cdir, tmp_path / "m55", MCUS["cortex-m55"])
    with pytest.raises(ValueError, match="no model"):
        cortexm.run(m55, np.zeros((1, b.n_in), int))
    trap = tmp_path / "trap"
    shutil.copytree(cdir, trap)
    c = trap / "nnforge_model.c"
    c.write_text(c.read_text().replace("void nnforge_run(const nnforge_in_t in[NNFORGE_IN_SIZE], "
                                       "nnforge_out_t out[NNFORGE_OUT_SIZE])\n{\n",
                                       "void nnforge_run(const nnforge_in_t in[NNFORGE_IN_SIZE], "
                                       "nnforge_out_t out[NNFORGE_OUT_SIZE])\n{\n    __builtin_trap();\n", 1))
    assert "__builtin_trap" in c.read_text()
    with pytest.raises(ToolError, match="nnforge_run"):
        cortexm.run(cortexm.build(trap, tmp_path / "t", MCUS["cortex-m4"]), np.zeros((1, b.n_in), int))
