"""From the generated Verilog to a real FPGA bitstream with open-source tools only.

Lattice ECP5 and iCE40 go through YoWASP's Yosys (``synth_ecp5`` / ``synth_ice40 -dsp``),
nextpnr (placement, routing, timing at the requested clock) and the packer (``ecppack``
writes a ``.bit``, ``icepack`` a ``.bin``). The designs carry no pin constraints: nextpnr
places the IOs freely, so the bitstream proves the design fits, routes and meets (or
misses) timing on the part; a board needs its pins assigned before the bitstream is used.

AMD parts: the ones nnforge knows (:data:`AMD_PARTS`: Zynq-7000 xc7z020, Artix-7 xc7a35t /
xc7a100t, Zynq UltraScale+ xczu3eg / xczu7ev) are synthesized by Yosys's ``synth_xilinx``,
which reports the LUT6s, flip-flops, DSP48 slices and block RAM tiles the design needs on
that part (no open-source place and route exists for them: no Fmax, no bitstream); every
AMD part name also gets a Vivado Tcl script and an XDC with the clock (written, not run).

Results land in ``OUTDIR/synth/<part>/`` (``synth.json``, ``synth.txt``, the bitstream,
nextpnr's report and the logs), written in a temporary folder beside it and moved into
place only when complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .files import (MARKER, check_replaceable, log_tail, publish_in_output, read_manifest, replace_dir, subfolder,
                    temp_dir)
from ..ir.text import name as _pname
from .progress import QUIET, Progress
from .seeds import Stopped, cores, place_seeds, timing
from .tools import PIP_PACKAGES, ToolError, find_tool
from .timing_path import critical_path
from .verilog import AXIS_PORTS, design_sources
# the parts registry (:mod:`.parts`), re-exported: nnforge.sim.fpga is where users find it
from .parts import (
    AMD_PARTS, AUTO, DEFAULT_SPEED, ECP5, FIT_SHARE, ICE40, PARTS, RESOURCES, VIVADO_PART, XC7, XCUP, XILINX_PREFIXES,
    Family,
    FitError, Part, PartError, amd_part, check_fit, estimate, fit_budget, is_xilinx, known_parts, resolve_part,
    smallest_part)

__all__ = ["AMD_PARTS", "AUTO", "DEFAULT_ROUTER", "DEFAULT_SPEED", "ECP5", "FIT_SHARE", "ICE40", "PARTS", "RESOURCES",
           "ROUTERS", "XC7", "XCUP", "XILINX_PREFIXES", "Family", "FitError", "Part", "PartError", "amd_part",
           "check_fit", "estimate", "fit_budget", "is_xilinx", "known_parts", "resolve_part", "smallest_part",
           "synth", "synth_amd", "synth_script", "text_report", "write_vivado"]

_HEARTBEAT = 30.0  # seconds between "still running" progress lines
# nextpnr's routers: router1 (its default) gives the better Fmax; router2 (congestion-driven)
# routes designs that fill the part's block RAMs (MobileNetV1 at 201 of 208) in minutes where
# router1 did not converge in an hour, at a lower Fmax; the first is the default
ROUTERS = ("router1", "router2")
DEFAULT_ROUTER = ROUTERS[0]
# the placement attribute of a memory the writers put in LUT RAM (codegen/estimate.py)
_LUTRAM_ATTR = re.compile(r'\(\*\s*ram_style\s*=\s*"distributed"\s*\*\)\s*')


# ----------------------------------------------------------------------------- running tools

def _run(cmd: list[str], cwd: Path, what: str, progress: Progress, log: Path | None = None,
         phases: tuple = (), stop=None) -> float:
    """Run a tool in ``cwd`` (stdout and stderr to ``<what>.out``), saying which phase of
    ``phases`` (``(text in its log, description)``) it reached and, now and then, that it is
    still running. Returns its seconds; raises :class:`ToolError` with the log's tail, or
    :class:`Stopped` (the tool killed) once ``stop`` is set."""
    out = cwd / f"{Path(cmd[0]).name}.out"
    t0 = time.monotonic()
    seen, beat = 0, t0
    with open(out, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, text=True)
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if stop is not None and stop.is_set():
                    raise Stopped(what)
                now = time.monotonic()
                if phases and log is not None and seen < len(phases):
                    try:
                        text = log.read_text(errors="replace")
                    except OSError:
                        text = ""
                    while seen < len(phases) and phases[seen][0] in text:
                        progress(f"synth: {what}: {phases[seen][1]}")
                        seen, beat = seen + 1, now
                if now - beat >= _HEARTBEAT:
                    progress(f"synth: {what} still running ({now - t0:.0f} s)")
                    beat = now
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    secs = time.monotonic() - t0
    if proc.returncode != 0:
        raise ToolError(f"{what} failed (exit {proc.returncode}):\n{log_tail(log if log and log.exists() else out, 30)}")
    return secs


def _version(tool: str, *args: str) -> str:
    """The first line of a tool's version output (empty if it has none)."""
    try:
        proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if line and not line.startswith("Preparing to run"):
            m = re.search(r"\(Version ([^)]+)\)", line)  # nextpnr: "... (Version nextpnr-0.11.1)"
            return m.group(1) if m else re.sub(r",? (Release|Clang|Debug).*?\)", ")", line)
    return ""


def _package_versions(names) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for n in sorted(set(names)):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


# ----------------------------------------------------------------------------- the flow

def _sources(src_dir: Path, axis: bool) -> tuple[Path, dict, list[Path]]:
    """The Verilog folder (``src_dir`` itself or its ``verilog/``), its checked info and
    sources (:func:`nnforge.sim.verilog.design_sources`); in an output folder with a marker,
    only sources its manifest lists under ``verilog/``."""
    src_dir = Path(src_dir)
    if not (src_dir / "verilog_info.json").exists() and (src_dir / "verilog" / "verilog_info.json").exists():
        src_dir = src_dir / "verilog"
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir}: no such folder")
    if not (src_dir / "verilog_info.json").exists():
        raise ToolError(f"{src_dir} holds no Verilog design (no verilog/verilog_info.json); "
                        "compile with --targets verilog first")
    listed = None
    if src_dir.name == "verilog" and os.path.lexists(src_dir.parent / MARKER):
        listed = {rel[len("verilog/"):] for rel in read_manifest(src_dir.parent) if rel.startswith("verilog/")}
    info, srcs = design_sources(src_dir, axis, listed)
    return src_dir, info, srcs


def _stat_counts(stat: dict, top: str) -> dict:
    mods = stat.get("modules", {})
    m = mods.get(f"\\{top}") or mods.get(top) or stat.get("design", {})
    return {"cells": {k: int(v) for k, v in m.get("num_cells_by_type", {}).items()},
            "port_bits": int(m.get("num_port_bits", 0))}


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%", re.M)


def _fit_error_from_log(log: Path, part: Part) -> FitError | None:
    """nextpnr's "no BELs remaining" or a utilisation over 100% as a :class:`FitError`."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    table = {}
    start = text.rfind("Device utilisation:")
    if start >= 0:
        for bel, used, avail, _ in _UTIL_LINE.findall(text[start:start + 4000]):
            table.setdefault(bel, (int(used), int(avail)))
    m = re.search(r"no BELs remaining to implement cell type '(\w+)'", text)
    over = [bel for bel, (u, a) in table.items() if u > a]
    bel = m.group(1) if m else (over[0] if over else None)
    if bel is None:
        return None
    resource = part.family.bels.get(bel, bel)
    used, avail = table.get(bel, (0, part.resources.get(resource, 0)))
    return FitError(part, resource, used, part.resources.get(resource, avail), "" if used else "more")


def _clock_name(net: str, ports: set[str]) -> str:
    """nextpnr's clock net (``$glbnet$clk$TRELLIS_IO_IN``, ``clk$SB_IO_IN_$glb_clk``) as the port."""
    for tok in net.split("$"):
        if tok in ports:
            return tok
    return net


def _place_and_route(work: Path, part: Part, top: str, clock_mhz: float, seed: int, router: str,
                     progress: Progress, stop=None, label: str = "") -> tuple[dict, float]:
    fam = part.family
    cmd = [find_tool(fam.nextpnr), *part.nextpnr_args, "--package", part.package]
    if part.speed is not None:
        cmd += ["--speed", str(part.speed)]
    cmd += ["--json", "netlist.json", fam.config, "config.txt", "--top", top, "--freq", f"{clock_mhz:g}",
            "--seed", str(seed), "--report", "nextpnr_report.json", "--timing-allow-fail",
            "-l", "nextpnr.log", "-q"]
    cmd += ["--router", router]
    if fam is ICE40:
        cmd.append("--pcf-allow-unconstrained")  # no pin file: nextpnr places the IOs
    (work / "nextpnr.log").unlink(missing_ok=True)
    phases = (("Packing", "packing"), ("Running main analytical placer", "placing"),
              ("Routing..", "routing"), ("Routing complete", "routed; timing analysis"))
    progress(f"synth: nextpnr placing and routing on {part.describe()} at {clock_mhz:g} MHz (seed {seed}, {router})")
    try:
        secs = _run(cmd, work, fam.nextpnr + label, progress, log=work / "nextpnr.log", phases=phases, stop=stop)
    except ToolError:
        fit = _fit_error_from_log(work / "nextpnr.log", part)
        if fit is not None:
            raise fit from None
        raise
    return json.loads((work / "nextpnr_report.json").read_text()), secs


def _utilisation(report: dict, part: Part, need: dict) -> dict:
    used = {r: None for r in RESOURCES}
    for bel, row in report.get("utilization", {}).items():
        r = part.family.bels.get(bel)
        if r is not None:
            used[r] = int(row.get("used", 0))
    if used["FF"] is None:  # nextpnr-ice40 counts logic cells; Yosys counted the flip-flops
        used["FF"] = need["FF"]
    out = {}
    for r in RESOURCES:
        avail = part.resources.get(r)
        if avail is None:
            continue
        u = used[r] if used[r] is not None else need.get(r, 0)
        out[r] = {"used": u, "available": avail, "percent": round(100.0 * u / avail, 1) if avail else 0.0,
                  "what": part.family.labels[r]}
    return out


def _publish(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final`` (``<out>/synth/<part>``), replacing an
    earlier result whole; in a compile output folder its files join the folder's manifest."""
    root = final.parent.parent
    if (root / MARKER).exists():
        publish_in_output(tmp, final, root)
        return
    if final.exists():
        if not ((final / "synth.json").exists() or (final / "vivado.tcl").exists()):
            raise FileExistsError(f"{final} exists and is not an nnforge synth output; refusing to replace it")
    replace_dir(tmp, final)


def _check_destination(final: Path) -> None:
    """Refuse, before any tool runs, a result folder ``final`` (``<out>/synth/<part>``)
    that :func:`_publish` would refuse at the end: in a compile output folder one holding
    files nnforge did not write there (or a link), elsewhere one that is not an earlier
    nnforge synth output."""
    root = final.parent.parent
    if (root / MARKER).exists():
        check_replaceable(root, under=final.relative_to(root).as_posix())
    elif final.is_symlink() or (final.exists() and not (
            (final / "synth.json").exists() or (final / "vivado.tcl").exists())):
        raise FileExistsError(f"{final} exists and is not an nnforge synth output; refusing to replace it")


def _write_result(work: Path, final: Path, result: dict) -> None:
    """``synth.json`` and ``synth.txt`` of ``result`` into ``work``, then ``work`` to ``final``."""
    (work / "synth.json").write_text(json.dumps(result, indent=2) + "\n")
    (work / "synth.txt").write_text(text_report(result))
    _publish(work, final)


def synth(src_dir, part: str, outdir=None, clock_mhz: float = 100.0, seed: int = 1,
          progress: Progress = QUIET, *, axis: bool = False, speed: int | None = None,
          router: str = DEFAULT_ROUTER, seeds: int = 1, jobs: int | None = None) -> dict:
    """Synthesize, place and route the design in ``src_dir`` (a compile output folder or
    its ``verilog/``) for ``part`` and write its bitstream; ``part="auto"`` takes the
    smallest ECP5 (25k, 45k, 85k) it fits. The core ``nnforge_top`` is the top, or with
    ``axis`` its AXI4-Stream wrapper. AMD/Xilinx parts get a Vivado script instead
    (:func:`write_vivado`). Results go to ``outdir/synth/<part>/`` (``outdir`` defaults
    to the compile output folder); the report (also ``synth.json``) is returned. ``router``:
    nextpnr's router (``ROUTERS``). ``seeds``: seeds ``seed`` .. ``seed + seeds - 1``, ``jobs``
    at a time (default: one per core), as :func:`.seeds.place_seeds` chooses."""
    if clock_mhz <= 0:
        raise ValueError("the clock must be a positive frequency in MHz")
    for what, n in (("seeds", seeds), ("jobs", 1 if jobs is None else jobs)):
        if n < 1:
            raise ValueError(f"{what} must be at least 1")
    jobs, seed_list = jobs or cores(), list(range(seed, seed + seeds))
    if router not in ROUTERS:
        raise ValueError(f"unknown router {router!r}: {' or '.join(ROUTERS)}")
    amd = amd_part(part)
    if amd is not None and speed is not None:
        raise PartError(f"{amd.name} has no speed grade option (name it in the part: {amd.vivado})")
    xilinx = amd is not None or is_xilinx(part)
    auto = part.strip().lower() == "auto"
    if not xilinx:
        candidates = [resolve_part(p, speed) for p in AUTO] if auto else [resolve_part(part, speed)]
    src, info, srcs = _sources(Path(src_dir), axis)
    out_root = Path(outdir) if outdir is not None else (src.parent if src.name == "verilog" else src)
    if amd is not None:
        return synth_amd(src, info, srcs, amd, out_root, part, clock_mhz=clock_mhz, axis=axis, progress=progress)
    if xilinx:
        return write_vivado(src, part, out_root, clock_mhz=clock_mhz, axis=axis, progress=progress)
    fam = candidates[0].family
    top = info["top"]
    clock_port = AXIS_PORTS["clk"] if axis else "clk"
    tools = {t: find_tool(t) for t in ("yosys", fam.nextpnr, fam.packer)}  # all found before any work

    synth_root = subfolder(out_root, "synth")
    work = temp_dir(synth_root)
    t_start = time.monotonic()
    try:
        yosys_s, need = _synthesize(work, srcs, fam, top, tools["yosys"], progress)
        chosen, report, pnr_s, seed, runs, tried = _first_fit(work, candidates, need, top, clock_mhz, seed_list,
                                                              router, progress, auto, jobs)
        fmax, met = _fmax(report, clock_port, clock_mhz, pnr_s, progress)
        path = critical_path(report, info, work / "netlist.json")
        if path is not None:
            progress(f"synth: critical path: {path['summary']}")

        bitfile = f"{top}{fam.bitstream}"
        progress(f"synth: {fam.packer} -> {bitfile}")
        pack_s = _run([tools[fam.packer], "config.txt", bitfile], work, fam.packer, progress)

        result = {
            "part": chosen.name,
            "requested": part,
            "family": fam.name,
            "device": chosen.device,
            "package": chosen.package,
            "speed": chosen.speed,
            "top": top,
            "axis": axis,
            "sources": [p.name for p in srcs],
            "source_dir": str(src),
            "clock_port": clock_port,
            "clock_mhz": float(clock_mhz),
            "seed": seed,
            "router": router,
            "seeds": runs,  # one record per seed when several were placed
            "fmax_mhz": fmax,
            "timing_met": met,
            "critical_path": path,
            "utilization": _utilisation(report, chosen, need),
            # Yosys's counts of the synthesized netlist (ECP5 LUT: LUT4 equivalents as the
            # estimate counts them, nextpnr's placed count adds packing's cells; iCE40 LUT:
            # the least logic cells, see estimate)
            "synthesized": {r: need[r] for r in ("LUT", "FF", "BRAM", "DSP") if need.get(r) is not None},
            "seconds": {"yosys": round(yosys_s, 2), "nextpnr": round(pnr_s, 2), "pack": round(pack_s, 2),
                        "total": round(time.monotonic() - t_start, 2)},
            "bitstream": {"file": bitfile, "bytes": (work / bitfile).stat().st_size},
            "tools": {
                "yosys": _version(tools["yosys"], "-V"),
                "nextpnr": _version(tools[fam.nextpnr], "--version"),
                "packages": _package_versions(PIP_PACKAGES[t] for t in tools),
            },
        }
        if auto:
            result["tried"] = tried
        final = synth_root / chosen.folder
        result["dir"] = str(final)
        result["bitstream"]["path"] = str(final / bitfile)
        for f in [*(work / p.name for p in srcs), work / "netlist.json", work / "config.txt", *work.glob("*.out")]:
            f.unlink(missing_ok=True)  # copies, the netlist (large) and the text configuration
        _write_result(work, final, result)
        progress(f"synth: results in {final}")
        return result
    finally:
        _discard(work, synth_root)


def synth_script(fam: Family, names: str, top: str, netlist: str = "netlist.json") -> str:
    """The Yosys script of ``nnforge synth``: read the sources ``names`` with the family's
    macros (``fam.defines``) and synthesize for ``top``. With macros, the sources instantiate
    the family's primitives (an ECP5 MULT18X18D with its own registers, a DP16KD with its
    output register): the synthesis
    command's own ``hierarchy -check`` (after it has read the primitives) checks the design,
    and its closing check stage runs without its second ``hierarchy -check``, which would
    rebuild the flattened top from the parsed sources."""
    read = " ".join(["read_verilog", *(f"-D{d}" for d in fam.defines), names])
    if not fam.defines:
        return f"{read}; hierarchy -check -top {top}; {fam.synth} -top {top} -json {netlist}"
    return (f"{read}; {fam.synth} -top {top} -run :check; autoname; check -noinit; "
            f"blackbox =A:whitebox; write_json {netlist}")


def _synthesize(work: Path, srcs: list[Path], fam, top: str, yosys: str, progress: Progress) -> tuple[float, dict]:
    """Yosys synthesis for the family in ``work``: its seconds and the resources it needs."""
    # yowasp tools see only their working directory: copies under relative names; a
    # family without LUT RAM places the memories the writers put there itself
    for p in srcs:
        if fam.lutram:
            shutil.copy(p, work / p.name)
        else:
            (work / p.name).write_text(_LUTRAM_ATTR.sub("", p.read_text()))
    names = " ".join(p.name for p in srcs)
    script = f"{synth_script(fam, names, top)}; tee -q -o yosys_stat.json stat -json"
    progress(f"synth: yosys {fam.synth} on {len(srcs)} files (top {top})")
    yosys_s = _run([yosys, "-q", "-l", "yosys.log", "-p", script], work, "yosys", progress,
                   log=work / "yosys.log")
    counts = _stat_counts(json.loads((work / "yosys_stat.json").read_text()), top)
    need = estimate(counts, fam)
    progress(f"synth: yosys done in {yosys_s:.1f} s: " + ", ".join(
        f"{need[r]} {fam.labels[r]}" for r in RESOURCES if r in fam.labels and (need[r] or r not in ("SPRAM", "URAM"))))
    return yosys_s, need


def _first_fit(work: Path, candidates: list, need: dict, top: str, clock_mhz: float, seeds: list[int],
               router: str, progress: Progress, auto: bool, jobs: int):
    """Place and route on the first candidate part the design fits (:func:`.seeds.place_seeds`):
    the part, nextpnr's report, its seconds, the seed chosen, the seeds' records and what
    was tried; the last part's error when none fits."""
    tried, last_err = [], None
    for cand in candidates:
        err = check_fit(need, cand)
        if err is None:
            try:
                run = lambda d, s, stop, label, c=cand: _place_and_route(  # noqa: E731
                    d, c, top, clock_mhz, s, router, progress, stop=stop, label=label)
                report, pnr_s, seed, runs = place_seeds(run, work, seeds, clock_mhz, progress, jobs, fatal=(FitError,),
                                                        tool=cand.family.nextpnr)
            except FitError as e:
                err = e
        if err is not None:
            tried.append({"part": cand.name, "fits": False, "reason": str(err)})
            if auto:
                progress(f"synth: {err}")
            last_err = err
            continue
        tried.append({"part": cand.name, "fits": True})
        return cand, report, pnr_s, seed, runs, tried
    raise last_err


def _fmax(report: dict, clock_port: str, clock_mhz: float, pnr_s: float, progress: Progress) -> tuple[dict, bool]:
    """The achieved frequency of each clock (MHz) and whether all meet ``clock_mhz``."""
    fmax = {}
    for net, row in report.get("fmax", {}).items():
        fmax[_clock_name(net, {clock_port})] = round(float(row.get("achieved", 0.0)), 2)
    worst, met = timing(report, clock_mhz)  # as the seeds' runs were judged
    progress(f"synth: placed and routed in {pnr_s:.1f} s; Fmax {worst:.2f} MHz "
             f"({'meets' if met else 'misses'} the {clock_mhz:g} MHz target)")
    return fmax, met


def _discard(work: Path, synth_root: Path) -> None:
    """Remove an unfinished working folder, and ``synth/`` if that leaves it empty."""
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)
    try:
        synth_root.rmdir()
    except OSError:
        pass  # holds earlier results


# ----------------------------------------------------------------------------- reports

def text_report(r: dict) -> str:
    """The human-readable report of :func:`synth` (``synth.txt``)."""
    if r.get("vendor") == "amd" and r.get("ran") == "yosys":
        lines = [f"{r['part']} ({r['vivado_part']}): Yosys synth_xilinx; top {_pname(r['top'])}"
                 + (" (AXI4-Stream wrapper)" if r["axis"] else "")]
        if not r["fits"]:
            lines.append(f"  {r['fit_error']}")
        lines.append("utilisation (synthesized by Yosys, not placed):")
        for row in r["utilization"].values():
            lines.append(f"  {row['what']:<28} {row['used']:>7} / {row['available']:<7} {row['percent']:5.1f}%")
        syn = r["synthesized"]
        lines.append(f"  block RAM: {syn['RAMB36']} RAMB36 + {syn['RAMB18']} RAMB18 (half a tile each)")
        lines += [f"timing: {r['timing_note']}",
                  f"Vivado script (written, not run): {r['script']}",
                  f"  clock: {r['xdc']} ({r['clock_port']} at {r['clock_mhz']:g} MHz, period {r['period_ns']:.3f} ns)",
                  f"  run:   {r['command']}"]
        if r.get("hls_script"):
            lines.append(f"  the HLS C++ has its own Vitis HLS script: {r['hls_script']}")
        t = r["tools"]
        lines.append(f"time: yosys {r['seconds']['yosys']:.1f} s; tools: {t['yosys']}; "
                     + ", ".join(f"{k} {v}" for k, v in t["packages"].items()))
        return "\n".join(lines) + "\n"
    if r.get("vendor") == "amd":
        lines = [f"AMD/Xilinx {r['part']}: Vivado script written, not run (nnforge does not need Vivado)",
                 f"  script: {r['script']}", f"  clock:  {r['xdc']} ({r['clock_port']} at {r['clock_mhz']:g} MHz, "
                 f"period {r['period_ns']:.3f} ns)", f"  top:    {r['top']} ({len(r['sources'])} Verilog files)",
                 f"  run:    {r['command']}"]
        if r.get("hls_script"):
            lines.append(f"  the HLS C++ has its own Vitis HLS script: {r['hls_script']}")
        return "\n".join(lines) + "\n"
    speed = f", speed grade {r['speed']}" if r.get("speed") is not None else ""
    lines = [f"{r['part']}: {r['device']} {r['package']}{speed}; top {_pname(r['top'])}"
             + (" (AXI4-Stream wrapper)" if r["axis"] else "")]
    for t in r.get("tried", []):
        if not t["fits"]:
            lines.append(f"  auto: {t['reason']}")
    status = "met" if r["timing_met"] else "NOT met"
    lines.append(f"clock {r['clock_port']}: target {r['clock_mhz']:g} MHz, achieved "
                 + ", ".join(f"{k} {v:.2f} MHz" for k, v in r["fmax_mhz"].items()) + f": timing {status}"
                 + (f" (seed {r['seed']}, {r['router']})" if r.get("router") else ""))
    if r.get("seeds"):
        lines.append("seeds placed: " + ", ".join(
            f"{x['seed']} stopped (a lower seed met the clock)" if x.get("stopped")
            else f"{x['seed']} failed ({x['error']})" if "error" in x
            else f"{x['seed']} {x['fmax_mhz']:.2f} MHz" for x in r["seeds"]))
    if r.get("critical_path"):
        lines.append(f"critical path: {r['critical_path']['summary']}")
    lines.append("utilisation (placed):")
    for row in r["utilization"].values():
        lines.append(f"  {row['what']:<28} {row['used']:>7} / {row['available']:<7} {row['percent']:5.1f}%")
    if r.get("synthesized"):
        lines.append("synthesized (Yosys): " + ", ".join(f"{k} {v:,}" for k, v in r["synthesized"].items()))
    s = r["seconds"]
    lines.append(f"time: yosys {s['yosys']:.1f} s, nextpnr {s['nextpnr']:.1f} s, pack {s['pack']:.1f} s "
                 f"(total {s['total']:.1f} s)")
    lines.append(f"bitstream: {r['bitstream']['path']} ({r['bitstream']['bytes']:,} bytes)")
    t = r["tools"]
    lines.append(f"tools: {t['yosys']}; {t['nextpnr']}; "
                 + ", ".join(f"{k} {v}" for k, v in t["packages"].items()))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- AMD / Xilinx

def synth_amd(src: Path, info: dict, srcs: list[Path], part: Part, out_root: Path, requested: str,
              clock_mhz: float = 100.0, axis: bool = False, progress: Progress = QUIET) -> dict:
    """Yosys ``synth_xilinx`` for a known AMD ``part`` (:data:`AMD_PARTS`): the LUT6s,
    flip-flops, DSP48 slices and block RAM tiles the synthesized netlist takes on it, and
    the Vivado script and XDC (:func:`write_vivado`'s) beside them, in
    ``out_root/synth/<Vivado part>/``. Nothing is placed: no open-source tool places and
    routes these parts, so timing is Vivado's (the script)."""
    fam = part.family
    top = info["top"]
    yosys = find_tool("yosys")
    synth_root = subfolder(out_root, "synth")
    final = synth_root / part.folder
    _check_destination(final)  # before minutes of synthesis
    work = temp_dir(synth_root)
    t_start = time.monotonic()
    try:
        yosys_s, need = _synthesize(work, srcs, fam, top, yosys, progress)
        util = {}
        for r, avail in part.resources.items():
            u = need.get(r, 0)
            util[r] = {"used": u, "available": avail, "percent": round(100.0 * u / avail, 1), "what": fam.labels[r]}
        over = check_fit(need, part)
        result = {
            **_vivado_files(work, src, srcs, info, part.vivado, final, clock_mhz, axis, out_root),
            "part": part.name, "requested": requested, "family": fam.name, "device": part.device,
            "vivado_part": part.vivado, "ran": "yosys", "fits": over is None, "fit_error": None if over is None else str(over),
            "utilization": util,
            "synthesized": {k: need[k] for k in ("LUT", "FF", "BRAM", "RAMB18", "RAMB36", "DSP")},
            "fmax_mhz": None, "timing_met": None,
            "timing_note": "not placed: no open-source place and route exists for AMD parts; run the Vivado "
                           "script for timing and a bitstream",
            "tools": {"yosys": _version(yosys, "-V"), "packages": _package_versions([PIP_PACKAGES["yosys"]])},
        }
        result["seconds"] = {"yosys": round(yosys_s, 2), "total": round(time.monotonic() - t_start, 2)}
        result["dir"] = str(final)
        for f in [*(work / p.name for p in srcs), work / "netlist.json", *work.glob("*.out")]:
            f.unlink(missing_ok=True)
        _write_result(work, final, result)
    finally:
        _discard(work, synth_root)
    progress(f"synth: results in {final}")
    return result


def _vivado_files(work: Path, src: Path, srcs: list[Path], info: dict, name: str, final: Path, clock_mhz: float,
                  axis: bool, out_root: Path) -> dict:
    """Write ``vivado.tcl`` and ``nnforge.xdc`` for part ``name`` into ``work`` (to be moved
    to ``final``); the report's fields every AMD result has (the design, the clock, the
    scripts)."""
    from ..codegen.render import render

    clock_port = AXIS_PORTS["clk"] if axis else "clk"
    period = 1000.0 / clock_mhz
    # sources relative to the script's folder: the output folder can be moved whole
    rel = ["{" + os.path.relpath(p.resolve(), final.resolve()).replace(os.sep, "/") + "}" for p in srcs]
    hls = out_root / "hls" / "run_hls.tcl"
    ctx = {"part": name, "top": info["top"], "sources": rel, "xdc": "nnforge.xdc", "clock_port": clock_port,
           "period_ns": f"{period:.3f}", "clock_mhz": f"{clock_mhz:g}",
           "versal": name.startswith(("xcvc", "xcve", "xcvp", "xcvm", "xcvh"))}
    (work / "vivado.tcl").write_text(render("verilog", "vivado.tcl.j2", **ctx, file="tcl"))
    (work / "nnforge.xdc").write_text(render("verilog", "vivado.tcl.j2", **ctx, file="xdc"))
    return {"vendor": "amd", "top": info["top"], "axis": axis, "sources": [p.name for p in srcs],
            "source_dir": str(src), "clock_port": clock_port, "clock_mhz": float(clock_mhz),
            "period_ns": round(period, 3), "script": str(final / "vivado.tcl"), "xdc": str(final / "nnforge.xdc"),
            "command": f"cd {final} && vivado -mode batch -source vivado.tcl",
            "hls_script": str(hls) if hls.exists() else None}


def write_vivado(src_dir, part: str, outdir, clock_mhz: float = 100.0, axis: bool = False,
                 progress: Progress = QUIET) -> dict:
    """Write ``outdir/synth/<part>/vivado.tcl`` (Vivado non-project RTL flow: read the
    sources, synthesize, place, route, report utilisation and timing, write the bitstream)
    and ``nnforge.xdc`` (the clock). Nothing is run."""
    name = part.strip().lower()
    if not VIVADO_PART.fullmatch(name) or not is_xilinx(name):
        raise PartError(f"{part!r} is not an AMD/Xilinx part name Vivado knows (e.g. xc7a35tcpg236-1); "
                        f"known: {known_parts()}")
    src, info, srcs = _sources(Path(src_dir), axis)
    out_root = Path(outdir)
    synth_root = subfolder(out_root, "synth")
    final = synth_root / name
    work = temp_dir(synth_root)
    try:
        result = {**_vivado_files(work, src, srcs, info, name, final, clock_mhz, axis, out_root),
                  "part": name, "requested": part, "ran": False, "dir": str(final)}
        _write_result(work, final, result)
    finally:
        _discard(work, synth_root)
    progress(f"synth: wrote {final / 'vivado.tcl'} (Vivado was not run)")
    return result
