"""The FPGA parts nnforge knows, one fact in one place: each family's tools, the Yosys
cells it counts and the words its reports use; each part's resources (from the vendors'
data sheets), names and aliases; the ``--fit`` budget of a part; and what a synthesized
netlist needs of a part, from Yosys's cell counts (:func:`estimate`, :func:`check_fit`).

Lattice ECP5 and iCE40 go through Yosys, nextpnr and the packers (:mod:`.fpga`). AMD parts
(:data:`AMD_PARTS`) through Yosys ``synth_xilinx`` only: no open-source tool places and
routes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .tools import ToolError

# the resources reported, in order, and what they are called in the text report
RESOURCES = ("LUT", "FF", "BRAM", "DSP", "IO", "SPRAM", "URAM")
DEFAULT_SPEED = 6
AUTO = ("ecp5-25k", "ecp5-45k", "ecp5-85k")  # --fpga auto: the smallest of these that fits


class PartError(ValueError):
    """An FPGA part name nnforge does not know."""


class FitError(ToolError):
    """The design needs more of a resource than the part has."""

    def __init__(self, part: "Part", resource: str, used: int, available: int, detail: str = "") -> None:
        self.part, self.resource, self.used, self.available = part.name, resource, used, available
        what = part.family.labels.get(resource, resource)
        super().__init__(f"the design does not fit {part.name}: it needs {detail or used} {what}, "
                         f"the part has {available}")


@dataclass(frozen=True)
class Family:
    name: str
    synth: str            # the Yosys synthesis command
    nextpnr: str          # tool names for find_tool
    packer: str
    config: str           # nextpnr's option for the textual configuration the packer reads
    bitstream: str        # suffix of the bitstream
    bels: dict            # nextpnr BEL type -> resource
    cells: dict           # Yosys cell type (after synthesis) -> resource, counted one each
    labels: dict          # resource -> words for reports
    lutram: bool = True   # has LUT RAM (a memory the writers placed there can be built)
    defines: tuple = ()   # Verilog macros the synthesis reads the sources with (see synth_script)
    vendor: str = "lattice"
    # AMD: Yosys cells counted as LUTs (Vivado's "Slice LUTs": logic and LUT memory), each
    # with the LUTs it takes, and block RAM cells with the 36 kbit tiles each takes
    luts: dict = field(default_factory=dict)
    tiles: dict = field(default_factory=dict)


ECP5 = Family(
    name="ecp5", synth="synth_ecp5", nextpnr="nextpnr-ecp5", packer="ecppack", config="--textcfg",
    bitstream=".bit",
    bels={"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP", "TRELLIS_IO": "IO"},
    cells={"TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP"},
    labels={"LUT": "LUT4s", "FF": "flip-flops", "BRAM": "DP16KD block RAMs (18 kbit)",
            "DSP": "MULT18X18D multipliers", "IO": "IO pins"},
    # the templates' products then use the MULT18X18D's own operand and product registers,
    # and the frame memories in block RAM (row buffer banks, gather and reduce frames) the
    # DP16KD's own output registers
    defines=("NNF_ECP5_DSP", "NNF_ECP5_BRAM"),
)
ICE40 = Family(
    name="ice40", synth="synth_ice40 -dsp", nextpnr="nextpnr-ice40", packer="icepack", config="--asc",
    bitstream=".bin",
    bels={"ICESTORM_LC": "LUT", "ICESTORM_RAM": "BRAM", "ICESTORM_DSP": "DSP", "SB_IO": "IO",
          "ICESTORM_SPRAM": "SPRAM"},
    cells={"SB_RAM40_4K": "BRAM", "SB_MAC16": "DSP", "SB_SPRAM256KA": "SPRAM"},
    labels={"LUT": "logic cells (LUT4 + FF)", "FF": "flip-flops", "BRAM": "EBR block RAMs (4 kbit)",
            "DSP": "SB_MAC16 DSPs", "IO": "IO pins", "SPRAM": "SPRAM blocks (256 kbit)"},
    lutram=False,
)
# AMD: Vivado counts a RAM32M / RAM64M (a SLICEM's four LUTs) as 4 LUTs, a dual-port 32 or
# 64 deep RAM as 2, a single-port one and a shift register (SRL16E, SRLC32E) as 1
_AMD_LUTS = {**{f"LUT{k}": 1 for k in range(1, 7)}, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
             "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8, "RAM32X1S": 1, "RAM64X1S": 1,
             "RAM128X1S": 2, "RAM256X1S": 4, "SRL16E": 1, "SRLC32E": 1}
_AMD_FFS = ("FDRE", "FDSE", "FDCE", "FDPE")
_AMD_LABELS = {"LUT": "LUT6s (logic and LUT RAM)", "FF": "flip-flops", "BRAM": "block RAM tiles (36 kbit)",
               "DSP": "DSP48 slices", "URAM": "UltraRAM blocks"}
XC7 = Family(
    name="xc7", synth="synth_xilinx -family xc7 -flatten", nextpnr="", packer="", config="", bitstream="",
    bels={}, cells={"DSP48E1": "DSP", **{f: "FF" for f in _AMD_FFS}},
    labels={**_AMD_LABELS, "DSP": "DSP48E1 slices"}, vendor="amd", luts=_AMD_LUTS,
    tiles={"RAMB36E1": 1.0, "RAMB18E1": 0.5},
)
XCUP = Family(
    name="xcup", synth="synth_xilinx -family xcup -flatten", nextpnr="", packer="", config="", bitstream="",
    bels={}, cells={"DSP48E2": "DSP", "URAM288": "URAM", **{f: "FF" for f in _AMD_FFS}},
    labels={**_AMD_LABELS, "DSP": "DSP48E2 slices"}, vendor="amd", luts=_AMD_LUTS,
    tiles={"RAMB36E2": 1.0, "RAMB18E2": 0.5},
)


@dataclass(frozen=True)
class Part:
    name: str                       # canonical: ecp5-25k, ice40-up5k
    family: Family
    device: str                     # the vendor's device name
    package: str
    resources: dict                 # resource -> available
    nextpnr_args: tuple             # device selection for nextpnr
    speed: int | None = None        # ECP5 speed grade (6, 7, 8)
    aliases: tuple = field(default=(), compare=False)
    vivado: str = ""                # AMD: the Vivado part name (device, package, speed grade)

    @property
    def folder(self) -> str:
        """The results folder's name: the part, with the speed grade when not the default
        (AMD: the Vivado part name)."""
        if self.vivado:
            return self.vivado
        return self.name if self.speed in (None, DEFAULT_SPEED) else f"{self.name}-{self.speed}"

    def describe(self) -> str:
        if self.vivado:
            return f"{self.name} ({self.vivado})"
        speed = f", speed grade {self.speed}" if self.speed is not None else ""
        return f"{self.name} ({self.device}, {self.package}{speed})"


def _ecp5(size: str, luts: int, ebr: int, mults: int, ios: int) -> Part:
    return Part(name=f"ecp5-{size}k", family=ECP5, device=f"LFE5U-{size}F", package="CABGA381",
                resources={"LUT": luts, "FF": luts, "BRAM": ebr, "DSP": mults, "IO": ios},
                nextpnr_args=(f"--{size}k",), speed=DEFAULT_SPEED,
                aliases=(f"lfe5u-{size}f", f"lfe5u-{size}", f"ecp5-{size}", f"ecp5{size}k", f"{size}k"))


# LUT4s and flip-flops (one per LUT), DP16KD, MULT18X18D (two per ALU54B slice) and the
# user IOs of the CABGA381 package, from Lattice's ECP5 data sheet (nextpnr agrees on the
# first four); the UP5K in its 48-pin QFN (sg48).
PARTS: dict[str, Part] = {p.name: p for p in (
    _ecp5("25", 24288, 56, 28, 197),
    _ecp5("45", 43848, 108, 72, 203),
    _ecp5("85", 83640, 208, 156, 205),
    Part(name="ice40-up5k", family=ICE40, device="iCE40UP5K", package="sg48",
         resources={"LUT": 5280, "FF": 5280, "BRAM": 30, "DSP": 8, "IO": 39, "SPRAM": 4},
         nextpnr_args=("--up5k",), aliases=("up5k", "ice40up5k", "ice40-up5k-sg48", "ice40up5k-sg48")),
)}


def _amd(device: str, family: Family, vivado: str, luts: int, bram36: int, dsps: int, board: str,
         uram: int = 0) -> Part:
    res = {"LUT": luts, "FF": 2 * luts, "BRAM": bram36, "DSP": dsps}
    if uram:
        res["URAM"] = uram
    return Part(name=device, family=family, device=device, package=vivado[len(device):].lstrip("-").split("-")[0],
                resources=res, nextpnr_args=(), aliases=(board,), vivado=vivado)


# AMD parts (LUT6s, flip-flops: two per LUT, 36 kbit block RAM tiles, DSP48 slices, UltraRAM)
# from AMD's data sheets (DS190 Zynq-7000, DS180 7 series, DS891 Zynq UltraScale+); the
# Vivado part of the board named, unless the part name given says another package or grade
AMD_PARTS: dict[str, Part] = {p.name: p for p in (
    _amd("xc7z020", XC7, "xc7z020clg400-1", 53200, 140, 220, "pynq-z2"),
    _amd("xc7a35t", XC7, "xc7a35ticsg324-1l", 20800, 50, 90, "arty-a7-35"),
    _amd("xc7a100t", XC7, "xc7a100tcsg324-1", 63400, 135, 240, "arty-a7-100"),
    _amd("xczu3eg", XCUP, "xczu3eg-sbva484-1-i", 70560, 216, 360, "ultra96"),
    _amd("xczu7ev", XCUP, "xczu7ev-ffvc1156-2-e", 230400, 312, 1728, "zcu104", uram=96),
)}

# an AMD part's Vivado name (what a Vivado or Vitis HLS script may be given)
VIVADO_PART = re.compile(r"xc[0-9a-z]+(-[0-9a-z]+)*")

# Vivado parts: 7-series, UltraScale(+), Zynq UltraScale+, Alveo, Versal
XILINX_PREFIXES = ("xc7", "xcku", "xcvu", "xczu", "xcau", "xcu", "xcvc", "xcve", "xcvp", "xcvm", "xcvh")


# ``--fit``: the share of a part's LUT4s and flip-flops a design may need by the resource
# estimate (codegen/estimate.py, within about 10% of Yosys), leaving room for its error and
# for placement and routing
FIT_SHARE = 0.8


def fit_budget(part: Part) -> dict[str, int | str]:
    """The folding budget (:meth:`nnforge.design.Design.write` keywords) of ``--fit PART``:
    the part's multiplier blocks, ``FIT_SHARE`` of its LUTs and flip-flops, and (ECP5 and
    AMD, whose block RAMs the estimate counts) its block RAMs. iCE40's 4 kbit EBRs are not
    budgeted: ``nnforge synth`` reports a design that needs more. An AMD part's budget is
    checked on the estimate for its architecture (``arch``: LUT6s, 36 kbit tiles), and its
    Vivado name is the HLS script's part (``part``)."""
    budget = {"max_multipliers": part.resources["DSP"], "max_luts": int(part.resources["LUT"] * FIT_SHARE),
              "max_ffs": int(part.resources["FF"] * FIT_SHARE)}
    if part.family is ECP5 or part.family.vendor == "amd":
        budget["max_bram"] = part.resources["BRAM"]
    if part.family.vendor == "amd":
        budget.update(arch="amd", part=part.vivado)
    return budget


def known_parts() -> str:
    return ", ".join([*PARTS, "auto", *AMD_PARTS, "or another AMD part's Vivado name (a script only)"])


def amd_part(name: str) -> Part | None:
    """The known AMD part ``name`` is (its device name or board alias, or a Vivado part
    name of that device: ``xc7z020clg484-1`` is the xc7z020 in another package), or None."""
    key = name.strip().lower()
    for p in AMD_PARTS.values():
        if key == p.name or key in p.aliases or key == p.vivado:
            return p
        rest = key[len(p.name):]
        dash = "-" if p.family is XCUP else ""  # xczu3eg-sbva484-1-e, but xc7z020clg400-1
        if key.startswith(p.name) and re.fullmatch(dash + r"[a-z]+\d+(-[0-9a-z]+)*", rest):
            return replace(p, vivado=key, package=rest.lstrip("-").split("-")[0])
    return None


def is_xilinx(name: str) -> bool:
    return name.strip().lower().startswith(XILINX_PREFIXES)


def resolve_part(name: str, speed: int | None = None) -> Part:
    """The part called ``name`` (canonical name or alias, any case; an ECP5 name may end in
    the speed grade, ``ecp5-25k-8``, or be Lattice's ordering code, ``LFE5U-25F-6BG381C``)."""
    key = name.strip().lower()
    grade = None
    m = re.fullmatch(r"(lfe5u-\d+f)-(\d)bg381[ci]?", key) or re.fullmatch(r"(.+?)-([678])", key)
    if m and _lookup(m.group(1)) is not None and _lookup(m.group(1)).family is ECP5:
        key, grade = m.group(1), int(m.group(2))
    part = _lookup(key) or amd_part(key)
    if part is None:
        raise PartError(f"unknown FPGA part {name!r}; known: {known_parts()}")
    if speed is not None and grade is not None and speed != grade:
        raise PartError(f"part {name!r} names speed grade {grade} but speed {speed} was asked for")
    grade = speed if speed is not None else grade
    if grade is not None:
        if part.family is not ECP5:
            raise PartError(f"{part.name} has no speed grade option")
        if grade not in (6, 7, 8):
            raise PartError(f"ECP5 speed grade must be 6, 7 or 8, not {grade}")
        part = replace(part, speed=grade)
    return part


def _lookup(key: str) -> Part | None:
    for p in PARTS.values():
        if key == p.name or key in p.aliases:
            return p
    return None


def estimate(counts: dict, family: Family) -> dict[str, int]:
    """What the synthesized netlist needs at least, by resource, from Yosys's cell counts:
    exact for block RAMs, multipliers, IOs and (ECP5) flip-flops; a lower bound for LUTs
    (a carry cell is two LUTs, a 16x4 distributed RAM four)."""
    cells = counts["cells"]
    need = {r: 0 for r in RESOURCES}
    for cell, n in cells.items():
        if cell in family.cells:
            need[family.cells[cell]] = need.get(family.cells[cell], 0) + n
    need["IO"] = counts["port_bits"]
    if family.vendor == "amd":  # LUTs as Vivado counts them; block RAM tiles (a RAMB18 is half)
        need["LUT"] = sum(family.luts.get(c, 0) * n for c, n in cells.items())
        tiles = sum(family.tiles.get(c, 0.0) * n for c, n in cells.items())
        need["BRAM"] = int(tiles) if tiles == int(tiles) else tiles
        need["RAMB18"] = sum(n for c, n in cells.items() if c.startswith("RAMB18"))
        need["RAMB36"] = sum(n for c, n in cells.items() if c.startswith("RAMB36"))
        need.pop("SPRAM", None)
        return need
    ffs = sum(n for c, n in cells.items() if c == "TRELLIS_FF" or c.startswith("SB_DFF"))
    need["FF"] = ffs
    if family is ECP5:
        need["LUT"] = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 4 * cells.get("TRELLIS_DPR16X4", 0)
    else:  # an iCE40 logic cell holds one LUT4, one flip-flop and one carry
        need["LUT"] = max(cells.get("SB_LUT4", 0), ffs, cells.get("SB_CARRY", 0))
    return need


def check_fit(need: dict[str, int], part: Part) -> FitError | None:
    """The first resource ``need`` exceeds on ``part`` (as an error to raise), or None."""
    for r in RESOURCES:
        avail = part.resources.get(r)
        if avail is not None and need.get(r, 0) > avail:
            detail = f"at least {need[r]}" if r == "LUT" else ""
            return FitError(part, r, need[r], avail, detail)
    return None


def smallest_part(need: dict[str, int], candidates=AUTO) -> Part | None:
    """The first of ``candidates`` (smallest first) whose resources cover ``need``."""
    for name in candidates:
        part = resolve_part(name)
        if check_fit(need, part) is None:
            return part
    return None
