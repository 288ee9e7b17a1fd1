"""What an MCU program costs in flash code and stack, estimated at compile time (no
cross compiler needed): from a table of the bytes each runtime template's kernels take,
measured with arm-none-eabi-gcc 12 -O2 (``python3 benchmarks/mcu.py --code-table`` prints
it again), plus a call per step. ``tests/test_mcu_size.py`` checks the estimate against
the linked ELF of the bundled examples and the MLPerf Tiny shapes (within
:data:`TOLERANCE`) and the stack against the high-water mark on the emulated cores.
"""

from __future__ import annotations

# bytes of Thumb code per runtime template (all the kernel variants it emitted, at most,
# over the measured models), per flavour ("dsp": Cortex-M4 / M7 / M33 / M55; "scalar": M0+)
RUNTIME_CODE = {
    "dsp": {"mcu_rt_common": 0, "mcu_rt_conv": 208, "mcu_rt_conv_cols": 416, "mcu_rt_im2col": 1138,
            "mcu_rt_dense": 216, "mcu_rt_dense_u8": 118, "mcu_rt_dense_s8": 118,
            "mcu_rt_dw": 880, "mcu_rt_add": 122, "mcu_rt_pool": 300},
    "scalar": {"mcu_rt_common": 0, "mcu_rt_conv": 302, "mcu_rt_conv_cols": 430, "mcu_rt_im2col": 376,
               "mcu_rt_dense": 234, "mcu_rt_dense_u8": 32, "mcu_rt_dense_s8": 32,
               "mcu_rt_dw": 660, "mcu_rt_add": 158, "mcu_rt_pool": 348},
}
LIBRARY_CODE = {"dsp": 162, "scalar": 166}  # memset
STEP_CODE = 24  # bytes of nnforge_run per step: the call and its arguments (an inlined generic step: more)
GENERIC_STEP_CODE = 96  # a generic step (relu, transpose ...), inlined into nnforge_run
UNKNOWN_RUNTIME = 600  # a runtime template missing from the table
STACK = {"dsp": 320, "scalar": 320}  # bytes: nnforge_run's frame and the deepest kernel's
TOLERANCE = 0.35  # the estimate against the linked code, as a share of the linked size


def flavour(prog) -> str:
    return "dsp" if prog.dsp else "scalar"


def code_estimate(prog) -> int | None:
    """Bytes of code ``nnforge_run`` links (kernels, the steps' calls, library helpers);
    None for the generic program (its code depends on the compiler's target)."""
    if prog.mcu == "generic":
        return None
    table = RUNTIME_CODE[flavour(prog)]
    kernels = sum(table.get(r, UNKNOWN_RUNTIME) for r in prog.runtime)
    steps = sum(STEP_CODE if s.kind.startswith("mcu_") else GENERIC_STEP_CODE for s in prog.steps)
    return LIBRARY_CODE[flavour(prog)] + kernels + steps


def stack_estimate(prog) -> int | None:
    """Bytes of stack one inference needs (nnforge_run's frame and the deepest kernel's)."""
    return None if prog.mcu == "generic" else STACK[flavour(prog)]
