"""Build the generated C for a Cortex-M and run it on an emulated core.

:func:`build` compiles a C target folder (``nnforge_model.c`` / ``nnforge_model.h``) with
arm-none-eabi-gcc for one :class:`~nnforge.codegen.mcu.Mcu` and links it with the linker
script ``harness/cortexm.ld``: flash at 0, RAM at 0x20000000, no startup code, the entry
is ``nnforge_run`` so section garbage collection keeps exactly what an inference needs
(the float wrapper and everything only it uses are dropped). :func:`run` loads the ELF's
segments into the `unicorn <https://www.unicorn-engine.org>`_ emulator and calls
``nnforge_run`` once per sample, the way a firmware would, counting the instructions it
executes (in total and per model step, through the ``NNFORGE_STEP_DONE(i)`` hook the
model calls after each step) and the stack it uses.

What the figures mean: an instruction count is architectural (each instruction once,
those an IT block skips included), not cycles; a step's count runs from the previous
step's mark through its own store to the marker word. The stack figure is the deepest
byte written below the top of RAM (the area is painted before the first call). The
emulator's Cortex-M0 accepts Thumb-2 instructions too: that M0+ code is Armv6-M comes
from the compiler's ``-mcpu``, not from the emulation.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..codegen.mcu import Mcu
from .tools import ToolError, run_tool

LINKER_SCRIPT = Path(__file__).resolve().parent / "harness" / "cortexm.ld"
C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
LINK_FLAGS = ("-nostartfiles", "-Wl,--gc-sections", "-Wl,-e,nnforge_run")
LIBS = ("-lm", "-lc", "-lgcc")

FLASH_BASE, FLASH_SIZE = 0x0000_0000, 1 << 20  # as in cortexm.ld
RAM_BASE, RAM_SIZE = 0x2000_0000, 1 << 20
STEP_MMIO = 0x4000_0000  # NNFORGE_STEP_DONE(i) stores i here
IO_BASE, IO_SIZE = 0x6000_0000, 1 << 20  # the input and output arrays of each call
IN_ADDR, OUT_ADDR = IO_BASE, IO_BASE + IO_SIZE // 2
RETURN_SENTINEL = 0x7000_0000  # nnforge_run returns here (lr = this | 1)
STACK_PAINT = 0xA5
STEP_DONE_DEFINE = "-DNNFORGE_STEP_DONE(i)=(*(volatile unsigned *)0x%08xu = (unsigned)(i))" % STEP_MMIO
TIMEOUT_S = 600.0

C_TYPES = {f"{u}int{w}_t": np.dtype(f"<{'u' if u else 'i'}{w // 8}") for u in ("", "u") for w in (8, 16, 32)}


def arm_gcc() -> str:
    """arm-none-eabi-gcc's path: ``NNFORGE_ARM_GCC`` if set, else the one on PATH."""
    override = os.environ.get("NNFORGE_ARM_GCC")
    if override:
        path = shutil.which(override)
        if not path:
            raise ToolError(f"NNFORGE_ARM_GCC={override!r} is not an executable")
        return path
    path = shutil.which("arm-none-eabi-gcc")
    if not path:
        raise ToolError("arm-none-eabi-gcc was not found on PATH (install gcc-arm-none-eabi and "
                        "libnewlib-arm-none-eabi, or set NNFORGE_ARM_GCC to its path)")
    return path


@lru_cache(maxsize=None)
def _newlib_missing(gcc: str) -> str | None:
    proc = subprocess.run([gcc, "-mthumb", "-mcpu=cortex-m0plus", "-print-file-name=libc.a"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isabs(proc.stdout.strip()):
        return f"{gcc} has no C library (install libnewlib-arm-none-eabi)"
    return None


def available() -> str | None:
    """None when arm-none-eabi-gcc (with newlib) and the unicorn package are installed,
    otherwise why not."""
    if importlib.util.find_spec("unicorn") is None:
        return "the 'unicorn' Python package is not installed (pip install unicorn)"
    try:
        gcc = arm_gcc()
    except ToolError as e:
        return str(e)
    return _newlib_missing(gcc)


# --- a small ELF32 (little-endian) reader -----------------------------------------------

@dataclass(frozen=True)
class Segment:
    vaddr: int
    data: bytes  # the file bytes; memsz - len(data) more bytes are zero
    memsz: int


@dataclass(frozen=True)
class Elf:
    segments: tuple[Segment, ...]
    sections: dict[str, tuple[int, int]]  # allocated sections: name -> (address, size)
    symbols: dict[str, tuple[int, int]]  # name -> (address, size), the Thumb bit cleared
    functions: frozenset[str]


def read_elf(path: Path) -> Elf:
    raw = Path(path).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise ToolError(f"{path} is not a little-endian ELF32 file")
    (phoff, shoff, _flags, _eh, phentsize, phnum, shentsize, shnum,
     shstrndx) = struct.unpack_from("<IIIHHHHHH", raw, 28)
    segments = []
    for i in range(phnum):
        p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _f, _a = struct.unpack_from(
            "<8I", raw, phoff + i * phentsize)
        if p_type == 1 and p_memsz:  # PT_LOAD
            segments.append(Segment(p_vaddr, raw[p_offset:p_offset + p_filesz], p_memsz))
    shdrs = [struct.unpack_from("<10I", raw, shoff + i * shentsize) for i in range(shnum)]

    def cstr(table: int, off: int) -> str:
        start = shdrs[table][4] + off
        return raw[start:raw.index(b"\0", start)].decode()

    sections, symbols, functions = {}, {}, set()
    for sh in shdrs:
        name = cstr(shstrndx, sh[0])
        if sh[2] & 2 and name:  # SHF_ALLOC
            sections[name] = (sh[3], sh[5])
        if sh[1] == 2:  # SHT_SYMTAB
            for off in range(sh[4], sh[4] + sh[5], 16):
                st_name, value, size, info, _other, shndx = struct.unpack_from("<IIIBBH", raw, off)
                kind = info & 0xF
                if not st_name or kind not in (0, 1, 2) or shndx == 0:  # NOTYPE / OBJECT / FUNC, defined
                    continue
                name_s = cstr(sh[6], st_name)
                if name_s.startswith("$"):  # the mapping symbols $t, $d
                    continue
                if kind == 2:
                    value &= ~1
                    functions.add(name_s)
                symbols.setdefault(name_s, (value, size))
    return Elf(tuple(segments), sections, symbols, frozenset(functions))


# --- build ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Build:
    """One linked image of a model for one core."""

    elf: Path
    mcu: Mcu
    symbols: dict[str, tuple[int, int]]  # name -> (address, size)
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)
    functions: frozenset[str] = frozenset()
    in_dtype: np.dtype = np.dtype("i1")
    out_dtype: np.dtype = np.dtype("i1")
    n_in: int = 0
    n_out: int = 0

    def _size(self, *names: str) -> int:
        return sum(self.sections.get(n, (0, 0))[1] for n in names)

    @property
    def code_bytes(self) -> int:
        """Bytes of machine code linked: every function an inference reaches, the C
        library's and the compiler runtime's helpers (memcpy, 64-bit division ...) included."""
        return self._size(".text")

    @property
    def code_by_function(self) -> dict[str, int]:
        """Bytes of each function linked; aliases of one function (``__aeabi_lmul`` and
        ``__muldi3``) are one entry, their names joined by " = "."""
        names: dict[tuple[int, int], list[str]] = {}
        for n in sorted(self.functions):
            names.setdefault(self.symbols[n], []).append(n)
        return {" = ".join(ns): size for (_addr, size), ns in sorted(names.items())}

    @property
    def rodata_bytes(self) -> int:
        return self._size(".rodata")

    @property
    def ram_bytes(self) -> int:
        """Static RAM: .data + .bss (the stack comes on top, see :attr:`McuRun.stack_bytes`)."""
        return self._size(".data", ".bss")


def _header_info(header: str) -> tuple[np.dtype, np.dtype, int, int]:
    def typedef(name: str) -> np.dtype:
        m = re.search(r"typedef\s+(\w+)\s+%s\s*;" % name, header)
        if not m or m.group(1) not in C_TYPES:
            raise ToolError(f"nnforge_model.h: no integer typedef of {name}")
        return C_TYPES[m.group(1)]

    def define(name: str) -> int:
        m = re.search(r"#define\s+%s\s+\(?(\d+)\)?" % name, header)
        if not m:
            raise ToolError(f"nnforge_model.h: no #define {name}")
        return int(m.group(1))

    return typedef("nnforge_in_t"), typedef("nnforge_out_t"), define("NNFORGE_IN_SIZE"), define("NNFORGE_OUT_SIZE")


def build(src_dir: Path, build_dir: Path, mcu: Mcu, opt: str = "-O2", extra: tuple[str, ...] = ()) -> Build:
    """Compile and link ``src_dir``'s nnforge_model.c for ``mcu`` into ``build_dir``."""
    if not mcu.cpu:
        raise ValueError(f"MCU {mcu.name!r} names no Arm core to compile for")
    src_dir, build_dir = Path(src_dir), Path(build_dir)
    source, header = src_dir / "nnforge_model.c", src_dir / "nnforge_model.h"
    for f in (source, header):
        if not f.is_file():
            raise FileNotFoundError(f"{f} does not exist (write the design with targets=['c'])")
    build_dir.mkdir(parents=True, exist_ok=True)
    elf = build_dir / "nnforge_model.elf"
    cmd = [arm_gcc(), *C_FLAGS, opt, *mcu.gcc_flags, STEP_DONE_DEFINE, *extra, str(source),
           *LINK_FLAGS, "-T", str(LINKER_SCRIPT), f"-Wl,-Map,{build_dir / 'nnforge_model.map'}",
           "-o", str(elf), *LIBS]
    run_tool(cmd, what=f"arm-none-eabi-gcc ({mcu.name})")
    info = read_elf(elf)
    in_dtype, out_dtype, n_in, n_out = _header_info(header.read_text())
    return Build(elf, mcu, info.symbols, info.sections, info.functions, in_dtype, out_dtype, n_in, n_out)


# --- run --------------------------------------------------------------------------------

@dataclass
class McuRun:
    outputs: np.ndarray  # (n, n_out) int64
    instructions: list[int] = field(default_factory=list)  # executed by each nnforge_run call
    step_instructions: list[int] = field(default_factory=list)  # per model step, first sample
    stack_bytes: int = 0  # high-water mark over all samples


def thumb_offsets(code: bytes) -> tuple[int, ...]:
    """Byte offsets of the instructions in a run of Thumb code (a halfword whose top five
    bits are 0b11101, 0b11110 or 0b11111 starts a 32-bit instruction)."""
    offsets, i = [], 0
    while i + 1 < len(code):
        offsets.append(i)
        i += 4 if (code[i + 1] >> 3) >= 0b11101 else 2
    return tuple(offsets)


class _Counter:
    """Executed instructions, counted per translated block: the emulator reports each
    block it runs (address, size) and the block's Thumb instructions are counted once
    and cached. Every instruction of a block counts, including those an IT block skips
    (the core spends an issue slot on them too). A step marker (a store to STEP_MMIO)
    is placed at the store instruction within its block."""

    def __init__(self, uc):
        self.uc = uc
        self.marks: list[int] = []
        self.keep: list = []  # C callbacks, alive as long as the hooks
        cache: dict[int, tuple[int, int]] = {}  # block address -> (size, instructions)
        state = self.state = [0, 0, 0]  # instructions so far, the running block's address and size

        def on_block(_uc, address, size, _data):  # a closure: the cheapest Python call there is
            hit = cache.get(address)
            if hit is None or hit[0] != size:
                hit = cache[address] = (size, len(thumb_offsets(self._read(address, size))))
            state[0] += hit[1]
            state[1] = address
            state[2] = size

        self.on_block = on_block

    @property
    def total(self) -> int:
        return self.state[0]

    def reset(self) -> None:
        self.state[0] = 0
        self.marks = []

    def _read(self, address: int, size: int) -> bytes:
        return bytes(self.uc.mem_read(address, size))

    def on_step(self, uc, _access, _address, _size, _value, _data):
        from unicorn.arm_const import UC_ARM_REG_PC
        total, address, size = self.state
        offs = thumb_offsets(self._read(address, size))
        rel = uc.reg_read(UC_ARM_REG_PC) - address
        self.marks.append(total - len(offs) + sum(1 for o in offs if o <= rel))

    def attach(self, fast: bool = True) -> None:
        """Install the hooks. The block hook is called millions of times: where the
        binding allows it goes straight to a C callback (about twice as fast as through
        ``Uc.hook_add``'s wrapper); otherwise, or with ``fast=False``, through hook_add."""
        import unicorn
        self.uc.hook_add(unicorn.UC_HOOK_MEM_WRITE, self.on_step, begin=STEP_MMIO, end=STEP_MMIO + 3)
        if not (fast and self._attach_direct()):
            self.uc.hook_add(unicorn.UC_HOOK_BLOCK, self.on_block)

    def _attach_direct(self) -> bool:
        import ctypes

        import unicorn
        try:
            from unicorn.unicorn_py3 import unicorn as binding
            cfunc = binding.HOOK_CODE_CFUNC(self.on_block)
            handle = binding.uc_hook_h()
            status = binding.uclib.uc_hook_add(self.uc._uch, ctypes.byref(handle), unicorn.UC_HOOK_BLOCK, cfunc,
                                               None, ctypes.c_uint64(1), ctypes.c_uint64(0))
        except (ImportError, AttributeError, ctypes.ArgumentError):
            return False
        self.keep.append(cfunc)
        return status == 0


def load(b: Build):
    """A fresh emulated core of ``b.mcu`` with the image loaded (flash, RAM, the I/O area)."""
    import unicorn
    from unicorn import arm_const

    if not b.mcu.unicorn:
        raise ValueError(f"the emulator has no model of {b.mcu.name}")
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.ctl_set_cpu_model(getattr(arm_const, b.mcu.unicorn))
    for base, size in ((FLASH_BASE, FLASH_SIZE), (RAM_BASE, RAM_SIZE), (IO_BASE, IO_SIZE),
                       (STEP_MMIO, 0x1000), (RETURN_SENTINEL, 0x1000)):
        uc.mem_map(base, size)
    uc.mem_write(RETURN_SENTINEL, b"\xfe\xe7")  # b . (never reached: emulation stops there)
    uc.hook_add(unicorn.UC_HOOK_INTR, lambda u, _intno, _d: u.emu_stop())  # a fault, SVC, BKPT: stop
    for seg in read_elf(b.elf).segments:
        inside = any(base <= seg.vaddr and seg.vaddr + seg.memsz <= base + size
                     for base, size in ((FLASH_BASE, FLASH_SIZE), (RAM_BASE, RAM_SIZE)))
        if not inside:
            raise ToolError(f"{b.elf.name}: a segment at 0x{seg.vaddr:x} ({seg.memsz} bytes) is outside flash / RAM")
        uc.mem_write(seg.vaddr, seg.data)
    return uc


def _stack_region(b: Build) -> tuple[int, int]:
    bottom = b.symbols.get("__nnf_image_end", (RAM_BASE, 0))[0]
    return bottom, RAM_BASE + RAM_SIZE - bottom


def call(uc, entry: int, timeout_s: float = TIMEOUT_S) -> None:
    """Run the function at ``entry`` as ``f(in, out)`` with the I/O area's two halves as
    arguments, from a fresh stack at the top of RAM, until it returns."""
    import unicorn
    from unicorn import arm_const as a

    uc.reg_write(a.UC_ARM_REG_R0, IN_ADDR)
    uc.reg_write(a.UC_ARM_REG_R1, OUT_ADDR)
    uc.reg_write(a.UC_ARM_REG_LR, RETURN_SENTINEL | 1)
    uc.reg_write(a.UC_ARM_REG_SP, RAM_BASE + RAM_SIZE)
    try:
        uc.emu_start(entry | 1, RETURN_SENTINEL, timeout=int(timeout_s * 1e6))
    except unicorn.UcError as e:
        pc = uc.reg_read(a.UC_ARM_REG_PC)
        raise ToolError(f"emulated nnforge_run stopped at pc=0x{pc:08x}: {e}") from None
    pc = uc.reg_read(a.UC_ARM_REG_PC)
    if pc & ~1 != RETURN_SENTINEL:
        raise ToolError(f"emulated nnforge_run stopped at pc=0x{pc:08x} without returning "
                        f"(an exception, or the {timeout_s:.0f} s limit)")


def run(b: Build, x_int: np.ndarray, count: bool = True, fast_hook: bool = True) -> McuRun:
    """Call ``nnforge_run`` on each row of ``x_int`` (integers in the model's element
    order) on the emulated core; returns the outputs and the measured costs."""
    x = np.asarray(x_int)
    n = len(x)
    x = x.reshape(n, -1).astype(np.int64)
    if x.shape[1] != b.n_in:
        raise ValueError(f"inputs have {x.shape[1]} values per sample, the model reads {b.n_in}")
    info = np.iinfo(b.in_dtype)
    if x.size and (x.min() < info.min or x.max() > info.max):
        raise ValueError(f"inputs outside the model's input type {b.in_dtype} [{info.min}, {info.max}]")
    if b.n_in * b.in_dtype.itemsize > IO_SIZE // 2 or b.n_out * b.out_dtype.itemsize > IO_SIZE // 2:
        raise ValueError("model input or output larger than the emulator's I/O area")
    uc = load(b)
    stack_lo, stack_n = _stack_region(b)
    uc.mem_write(stack_lo, bytes([STACK_PAINT]) * stack_n)
    counter = _Counter(uc)
    if count:
        counter.attach(fast_hook)
    entry = b.symbols["nnforge_run"][0]
    outputs = np.zeros((n, b.n_out), dtype=np.int64)
    result = McuRun(outputs)
    for i, row in enumerate(x):
        uc.mem_write(IN_ADDR, row.astype(b.in_dtype).tobytes())
        uc.mem_write(OUT_ADDR, bytes([STACK_PAINT]) * (b.n_out * b.out_dtype.itemsize))
        counter.reset()
        call(uc, entry)
        raw = bytes(uc.mem_read(OUT_ADDR, b.n_out * b.out_dtype.itemsize))
        outputs[i] = np.frombuffer(raw, dtype=b.out_dtype)
        if count:
            result.instructions.append(counter.total)
            if i == 0:
                result.step_instructions = [int(d) for d in np.diff([0, *counter.marks])]
    stack = np.frombuffer(bytes(uc.mem_read(stack_lo, stack_n)), dtype=np.uint8)
    used = np.flatnonzero(stack != STACK_PAINT)
    result.stack_bytes = int(stack_n - used[0]) if used.size else 0
    if used.size and used[0] == 0:
        raise ToolError(f"the stack overflowed the {stack_n} bytes of RAM above the image")
    return result
