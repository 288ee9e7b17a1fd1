"""The resource estimate for an AMD 7 series or UltraScale+ part (Yosys ``synth_xilinx``,
as ``nnforge synth --fpga xc7z020`` runs it), from the ECP5 estimate of the same Verilog
(:mod:`.estimate`): :func:`amd_estimate` per engine, :func:`amd_address_products` the
DSP48s of its address arithmetic; :func:`amd_bram`, :func:`amd_lutram` and
:func:`amd_placement` count a memory as Yosys's memory mapping places it."""

from __future__ import annotations

# The estimate for an AMD 7 series or UltraScale+ part (Yosys ``synth_xilinx``, as ``nnforge
# synth --fpga xc7z020`` runs it) from the ECP5 one of the same Verilog: the same
# multipliers (a DSP48 slice takes a 25 x 18 product, an ECP5 MULT18X18D 18 x 18: the
# writers' products fit both); each memory the writers placed in block RAM counted in
# RAMB18 / RAMB36 blocks as Yosys maps it (:func:`amd_bram`), in LUT RAM as its RAM32M /
# RAM64M cells (:func:`amd_lutram`); the other LUT4 equivalents and the flip-flops scaled
# by factors fitted on the bundled examples and the MLPerf Tiny shapes (``AMD_LUT6_PER_LUT4``:
# a LUT6 holds more logic than a LUT4 and a carry chain takes one LUT per bit, not two per
# two bits; ``AMD_FF_PER_FF``: Yosys moves shift-register chains into SRL16E LUTs)
AMD_LUT6_PER_LUT4 = 0.45
AMD_LUT6_PER_LUT4_DENSE = 0.38  # the Dense chain's layers (dense.v.j2): wide adder trees, fewer muxes
# a ROM held in logic (weights, biases): as many LUT6s as the ECP5 estimate's LUT4s, a LUT
# per 16 live bits (Yosys's xilinx mapping of a ROM's decoder is no denser on random words)
AMD_ROM_LUT6_PER_LUT4 = 1.0
AMD_FF_PER_FF = 0.85
# Yosys's memory mapping for the 7 series (its xilinx library, read by memory_libmap): the
# block RAM modes, in the order it tries them (a tie keeps the first): (address bits of
# the narrowest width, widths, cost, kind; a mode that takes only its narrowest width:
# widths of one); a RAMB18 is half a RAMB36 tile
AMD_BRAM_MODES = ((16, (1,), 513, "cascade"), (15, (1, 2, 4, 9, 18, 36), 257, "ramb36"),
                  (14, (1, 2, 4, 9, 18), 129, "ramb18"), (15, (1, 2, 4, 9, 18, 36, 72), 257, "ramb36"),
                  (14, (1, 2, 4, 9, 18, 36), 129, "ramb18"))
# its LUT RAM cells for one write and one read address: (address bits, width, cost, the
# share of the cost that scales with the bits used, cell, LUTs a cell, a cell per bit)
AMD_LUTRAM_MODES = ((7, 1, 8, 8, "RAM128X1D", 4, True), (6, 2, 8, 8, "RAM64X1D", 2, True),
                    (5, 4, 8, 8, "RAM32M", 4, False), (6, 1, 7, 7, "RAM64M", 4, False),
                    (5, 2, 7, 7, "RAM32M", 4, False), (6, 3, 8, 7, "RAM64M", 4, False),
                    (5, 6, 8, 7, "RAM32M", 4, False))


def _amd_geometry(width: int, depth: int, rom: bool, abits: int, unit: int, cost: float, scaled: float,
                  level: int) -> tuple[float, int, int]:
    """Yosys's cost of a ``width`` x ``depth`` memory in cells of ``unit`` bits at width
    level ``level`` (2**(abits - level) words a cell): the memory is cut in ``mult_a``
    address slices laid side by side in the data bits (a RAM's slice padded to its write
    granularity, 9 bits from 9-bit words on), read through a multiplexer. (cost, cells,
    slices)."""
    grain = 1 if rom else (unit if unit < 9 else 9)
    slices = -(-depth // (1 << (abits - level)))
    cells = -(-slices * (-(-width // grain) * grain) // unit)
    c = (cost - scaled) * cells + scaled * slices * width / unit + 0.5 * (slices - 1) * width + 2
    if not rom and slices > 1:
        c += 0.5 * slices  # the write enables' decoder
    return c, cells, slices


def _amd_block(width: int, depth: int, rom: bool):
    """Yosys's block RAM mapping: (cost, kind, cells, slices) of the cheapest mode (the
    cheapest width within a mode as Yosys compares them: against the best cost so far
    truncated to an integer)."""
    best = None
    for abits, widths, cost, kind in AMD_BRAM_MODES:
        mode, bar = None, 0
        for level, unit in enumerate(widths):
            c, cells, slices = _amd_geometry(width, depth, rom, abits, unit, cost, 0, level)
            if mode is None or c < bar:
                mode, bar = (c, kind, cells, slices), int(c)
        if best is None or mode[0] < best[0]:
            best = mode
    return best


def amd_bram(width: int, depth: int, rom: bool = False) -> dict[str, int]:
    """RAMB18 and RAMB36 blocks of a ``width`` x ``depth`` memory placed in block RAM, and
    the flip-flops beside them (the read register is the block's own; a memory of several
    address slices registers its read multiplexer's select)."""
    _, kind, cells, slices = _amd_block(width, depth, rom)
    return {"ramb18": cells if kind == "ramb18" else 0,
            "ramb36": cells * (2 if kind == "cascade" else 1) if kind != "ramb18" else 0,
            "ffs": (slices - 1).bit_length()}


def _amd_lutram(width: int, depth: int) -> tuple[float, int]:
    """Yosys's LUT RAM mapping of a simple dual-port RAM: (cost, LUTs of its cells)."""
    best = None
    for abits, unit, cost, scaled, _, luts, per_bit in AMD_LUTRAM_MODES:
        c, cells, slices = _amd_geometry(width, depth, False, abits, unit, cost, scaled, 0)
        n = slices * width if per_bit else cells
        if best is None or c < best[0]:
            best = (c, n * luts)
    return best


def amd_lutram(width: int, depth: int) -> int:
    """LUTs of a ``width`` x ``depth`` simple dual-port RAM in LUT RAM (RAM64M / RAM32M
    cells of 4 LUTs, as Yosys picks them); its read register stays in flip-flops."""
    return _amd_lutram(width, depth)[1]


def amd_placement(width: int, depth: int) -> str:
    """Where Yosys puts a RAM without a placement attribute on an AMD part: the cheaper of
    block RAM and LUT RAM by its costs."""
    return "lutram" if _amd_lutram(width, depth)[0] < _amd_block(width, depth, False)[0] else "bram"


def amd_address_products(e) -> int:
    """DSP48s an engine's address arithmetic takes on an AMD part: a window engine whose
    lanes are channels (not a row fold) finds a cell's word as column x (channels per
    bank) + channel (``line.v.j2`` ``xoff``); Yosys ``synth_xilinx`` builds a product by a
    constant other than a power of two in a DSP48 (``synth_ecp5`` in LUTs)."""
    g, fold = getattr(e, "geometry", None), getattr(e, "fold", None)
    if g is None or fold is None or fold.flat or e.template != "line.v.j2":
        return 0
    cb = max(1, g.c // fold.simd)
    return 1 if cb > 1 and cb & (cb - 1) else 0


def amd_estimate(est: dict, lut6_per_lut4: float = AMD_LUT6_PER_LUT4) -> dict:
    """One part's ECP5 estimate (an engine's, a fork's, a FIFO's, the top's) as an AMD
    part's (see ``AMD_LUT6_PER_LUT4``)."""
    out = {"multipliers": est.get("multipliers", 0), "dsp": est.get("dsp", 0), "bram_bits": 0, "bram": 0.0,
           "ramb18": 0, "ramb36": 0, "lutram": 0, "ffs": 0, "luts": 0}
    lut_mem, ffs, rom_luts = 0, est.get("ffs", 0), 0.0
    for m in est.get("memories", {}).values():
        rom_luts += m.get("logic_luts", 0.0) * m["copies"]
        placement = m["placement"]
        if m.get("free") and placement != "logic":
            placement = amd_placement(m["width"], m["depth"])
            if placement != m["placement"]:  # the read register: a block RAM's own, else flip-flops
                ffs += m["width"] if placement == "lutram" else -m["width"]
        if placement == "bram":
            blocks = amd_bram(m["width"], m["depth"], m["rom"])
            out["ramb18"] += blocks["ramb18"] * m["copies"]
            out["ramb36"] += blocks["ramb36"] * m["copies"]
            ffs += blocks["ffs"] * m["copies"]
            out["bram_bits"] += m["width"] * m["depth"] * m["copies"]
        elif placement == "lutram":
            lut_mem += amd_lutram(m["width"], m["depth"]) * m["copies"]
    out["bram"] = out["ramb36"] + out["ramb18"] / 2
    out["lutram"] = lut_mem
    logic = max(0.0, est.get("luts", 0) - 4 * est.get("lutram", 0) - rom_luts)
    out["luts"] = int(round(lut6_per_lut4 * logic + AMD_ROM_LUT6_PER_LUT4 * rom_luts)) + lut_mem
    out["ffs"] = int(round(AMD_FF_PER_FF * ffs))
    if "memories" in est:
        out["memories"] = est["memories"]
    return out
