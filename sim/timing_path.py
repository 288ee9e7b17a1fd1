"""The critical path of a placed and routed design in words.

nextpnr's JSON report (``--report``) lists, per clock, the worst path as steps (clock to
output, routing, logic, setup) between cells named after the netlist: the instance of the
engine (``u_<layer>``, the name in ``verilog_info.json``'s layers, forks and FIFOs) and the
register or operator inside it (``xr_0_3`` an operand register, ``acc0`` an accumulator, a
``MULT18X18D`` a multiplier block, a ``CCU2C`` a carry chain). :func:`critical_path` keeps
the path and names its start, end and what lies between, so that a report says which engine
and which kind of signal limits the clock.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# what a register (or a net) of the templates is, by its name inside the engine; first match
_ROLES = (
    (r"(xr|wr|x|w_m|we|xe)(_\d+)*$", "multiplier operand register"),
    (r"dsp(_\d+)*(_p)?$", "registered multiplier block"),
    (r"prod(_\d+)*$", "multiplier"),
    (r"(t0|pr)(_\d+)*$", "product register"),
    (r"t\d+(_\d+)*$", "adder tree"),
    (r"accm\d*$", "per-channel multiply"),
    (r"(acc|nxt)\d*$", "accumulator"),
    (r"(res|y|qv|ax|q|lt|gt|out_data)\d*$", "requantization (rounding adder, shift, clamp) into the output register"),
    (r"(en|en_c\d+|en_m|en_f|hold_v|vq|vm|vr|left|res_left|res_free|res_load|out_fire|vf|v2)$",
     "the stall enable / output handshake"),
    (r"wr_[vadj]$", "row / frame memory (write)"),
    (r"(x_q|x_o|x_b|w_q|w_o|w_b|b_q|b_b|m_q|m_b|wrom|brom|mrom)\d*$", "memory read"),
    (r"(xmem|mem|fmem)\w*$", "row / frame memory (write)"),
    (r"(rd_|a1_|tap_|lrow|lwait|need|oldest|cbase|lcnt|slot|[lr]slot|room|free|rows_in|ox|oy|ky|kx|ci_|mo_|mg_|xbase|xa)\w*$",
     "line buffer addressing"),
    (r"(waddr|raddr|wp|rp|used|gcnt|scnt|step)\w*$", "address / count register"),
)
_PRIMS = (("MULT18X18D", "MULT18X18D multiplier"), ("CCU2C", "carry chain"), ("DP16KD", "block RAM"),
          ("DPR16X4", "LUT RAM"), ("TRELLIS_IO", "IO pin"), ("SB_MAC16", "DSP"), ("SB_RAM40", "block RAM"))


def _base(cell: str) -> tuple[str, str]:
    """(instance, signal) of a nextpnr cell or net name: ``u_conv2.xr_0_3_TRELLIS_FF_Q_5`` ->
    (``u_conv2``, ``xr_0_3``); a name with no instance is the top's."""
    inst, _, rest = cell.partition(".") if cell.startswith("u_") else ("", "", cell)
    rest = rest.rsplit(".", 1)[-1] if rest.startswith("g_") else rest  # a generate scope (dense chain)
    sig = re.split(r"_(TRELLIS|MULT18X18D|CCU2C|LUT4|DP16KD|DPR16X4|PFUMX|L6MUX|SB_)", rest)[0]
    sig = re.sub(r"(\.\d+)+$", "", re.sub(r"\[\d+\]$", "", sig).split("$")[0])  # a memory's block: xmem6.0.12
    return inst, sig


def role(signal: str) -> str:
    """What a template signal is (see ``_ROLES``), or its own name."""
    for pat, what in _ROLES:
        if re.fullmatch(pat, signal):
            return what
    return signal


def _engines(info: dict) -> dict[str, str]:
    """Instance name -> ``module (op)`` of every engine, fork and FIFO of the design."""
    out = {}
    for ly in info.get("layers", []):
        op = ly.get("op") or "Dense"
        out[f"u_{ly['name']}"] = f"{ly.get('module', ly['name'])} ({op})"
    for f in info.get("fifos", []):
        out[f"u_fifo_{f['join']}_{f['port']}"] = f"nnf_fifo (skip FIFO into {f['join']}.{f['port']})"
    for f in info.get("forks", []):
        out[f"u_fork_{f['stream']}"] = f"nnf_fork (stream {f['stream']})"
    return out


def _named(sig: str) -> str:
    """``role (signal)``, or ``register signal`` when the role is not known."""
    what = role(sig)
    return f"register {sig}" if what == sig else f"{what} ({sig})"


def _fanout(netlist: Path | None, net: str) -> int | None:
    """Cell inputs the net ``net`` (a nextpnr net name, Yosys's netname) drives, or None."""
    if netlist is None or not netlist.exists():
        return None
    try:
        data = json.loads(netlist.read_text())
    except (OSError, ValueError):
        return None
    for mod in data.get("modules", {}).values():
        nn = mod.get("netnames", {}).get(net)
        if nn is None:
            continue
        bits = set(nn["bits"])
        return sum(1 for c in mod.get("cells", {}).values()
                   for port, conn in c.get("connections", {}).items()
                   if c.get("port_directions", {}).get(port) == "input" and bits & set(conn))
    return None


def critical_path(report: dict, info: dict, netlist: Path | None = None) -> dict | None:
    """The worst register-to-register path of nextpnr's report, described: ``summary``
    (one line of words), ``engine``, ``start`` / ``end`` (signal, role), ``through`` (the
    primitives crossed), ``ns`` / ``logic_ns`` / ``routing_ns``, ``fanout`` (an enable or
    reset's loads, when the path ends on one) and ``steps`` (nextpnr's, trimmed)."""
    paths = [p for p in report.get("critical_paths", [])
             if "<async>" not in (p.get("from", ""), p.get("to", "")) and p.get("path")]
    if not paths:
        return None
    path = max(paths, key=lambda p: sum(s.get("delay", 0.0) for s in p["path"]))["path"]
    engines = _engines(info)
    first, last = path[0]["from"], path[-1]["to"]
    inst_s, sig_s = _base(first.get("cell", ""))
    inst_e, sig_e = _base(last.get("cell", ""))
    through = []
    for s in path:
        if s.get("type") == "logic":
            for key, what in _PRIMS:
                if key in s["from"].get("cell", "") and what not in through:
                    through.append(what)
    logic = sum(s["delay"] for s in path if s.get("type") in ("logic", "clk-to-q", "setup"))
    total = sum(s["delay"] for s in path)
    end_port = last.get("port", "")
    fanout = None
    if end_port in ("CE", "LSR", "CE0"):
        net = next((s.get("net", "") for s in reversed(path) if s.get("net")), "")
        fanout = _fanout(netlist, net)
    start = (sig_s, role(sig_s))
    end = (sig_e, role(sig_e))

    def where(inst: str) -> str:
        return engines.get(inst, inst or "top")

    engine = where(inst_s) if inst_s == inst_e or not inst_e else f"{where(inst_s)} -> {where(inst_e)}"
    mid = f" -> {', '.join(through)}" if through else ""
    if end_port in ("CE", "CE0", "LSR"):
        net = _base(next((s.get("net", "") for s in reversed(path) if s.get("net")), ""))[1]
        loads = f" {fanout}" if fanout else ""
        what = "reset" if end_port == "LSR" else "clock enable"
        summary = f"{engine}: {_named(start[0])}{mid} -> the {what} of {net}, fanning out to{loads} register inputs"
        end = (net, "the stall enable / output handshake")
    else:
        summary = f"{engine}: {_named(start[0])}{mid} -> {_named(end[0])}"
    summary += f"; {total:.2f} ns ({logic:.2f} ns logic, {total - logic:.2f} ns routing)"
    steps = [{"type": s.get("type"), "ns": round(s.get("delay", 0.0), 3), "from": s["from"].get("cell"),
              "to": s["to"].get("cell"), "net": s.get("net", "")} for s in path]
    return {"summary": summary, "engine": engine, "start": list(start), "end": list(end), "through": through,
            "ns": round(total, 3), "logic_ns": round(logic, 3), "routing_ns": round(total - logic, 3),
            "fanout": fanout, "steps": steps}
