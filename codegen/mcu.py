"""The microcontrollers the C target writes kernels for: one table, :data:`MCUS`.

``generic`` is the portable C of :mod:`.program` (row-major buffers, one loop nest per
layer). Every other entry gets the channels-last kernels of :mod:`.mcu_program`: the
DSP-extension flavour (``SMLAD``, ``SXTB16``, ``SSAT`` through ``arm_acle.h``, with
portable definitions computing the same integers on any other compiler) where the core
has the extension, the scalar flavour (32-bit multiplies only) where it has not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mcu:
    name: str
    cpu: str  # gcc's -mcpu value ("" for generic)
    dsp: bool  # the DSP extension: dual 16-bit MACs (SMLAD), byte unpacking (SXTB16), saturation
    unicorn: str  # the emulator's CPU model (a unicorn.arm_const name), "" if none
    doc: str = ""

    @property
    def generic(self) -> bool:
        return not self.cpu

    @property
    def gcc_flags(self) -> tuple[str, ...]:
        """arm-none-eabi-gcc's flags for this core (soft-float ABI: the integer path needs no FPU)."""
        return (f"-mcpu={self.cpu}", "-mthumb", "-mfloat-abi=soft") if self.cpu else ()


MCUS: dict[str, Mcu] = {m.name: m for m in (
    Mcu("generic", "", False, "", "portable C99, the model's row-major layout"),
    Mcu("cortex-m4", "cortex-m4", True, "UC_CPU_ARM_CORTEX_M4", "Armv7E-M with the DSP extension"),
    Mcu("cortex-m7", "cortex-m7", True, "UC_CPU_ARM_CORTEX_M7", "Armv7E-M, dual issue; the Cortex-M4 kernels"),
    Mcu("cortex-m33", "cortex-m33", True, "UC_CPU_ARM_CORTEX_M33", "Armv8-M Mainline with the DSP extension"),
    Mcu("cortex-m55", "cortex-m55", True, "", "Armv8.1-M; the DSP-extension kernels (Helium is not used)"),
    Mcu("cortex-m0plus", "cortex-m0plus", False, "UC_CPU_ARM_CORTEX_M0", "Armv6-M, no DSP extension: scalar kernels"),
)}


def mcu(name: str) -> Mcu:
    """The table's entry for ``name``; a ValueError naming the choices otherwise."""
    try:
        return MCUS[name]
    except KeyError:
        raise ValueError(f"unknown MCU {name!r}; choose from {', '.join(MCUS)}") from None
