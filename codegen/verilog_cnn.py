"""Verilog for any DAG of the engine ops: one engine per node, streams between them.

Every stream (top input, between engines, top output) carries one element per beat in
the IR's flat per-sample order (CHW), so the top accepts exactly ``x_int.reshape(N, -1)``
and returns the golden flat output. Reshape (and the Flatten / Squeeze / Unsqueeze the
importer turns into it) is an alias: no hardware.

Engines (one module per node; built by the function registered for its op in
:data:`ENGINES`, which checks the node against what the engine implements and refuses,
naming the node, before any file is written):

* window engines (:mod:`.verilog_window`): Conv, Dense, pools over a frame memory;
* join engines (:mod:`.verilog_join`): residual Add of two activations, Concat;
* gather engines (:mod:`.verilog_join`): Transpose, Resize (nearest), a frame memory read
  in another order;
* map engines (:mod:`.verilog_map`): elementwise ops, no frame memory.

Engine contract: a builder ``f(q, node, name) -> dict`` returns at least ``template`` (a
file in ``hls_templates/verilog``), ``ports`` (input port names, one per activation
input, in the node's input order), ``n_in`` (words loaded per frame, all ports),
``n_out``, ``timing`` (``compute_cycles``, ``frame_cycles``, ``in_to_out``),
``multipliers`` and ``frame_memory_words``. The template gets the dict as ``E`` (plus
``name``, ``module`` and ``op``) and declares module ``E.module`` with ports ``clk``,
``rst``, ``<port>_valid/_ready/_data`` per input port and ``out_valid/_ready/_data``.
Handshakes are registered: no ready depends on a valid in the same cycle and no valid on
a ready, so engines and forks compose without combinational loops.

Fan-out: a stream read by several engines (a residual block's skip) goes through an
eager fork (``nnf_fork.v``) that holds each beat until every reader took it. Every
engine with more than one input buffers each input in its own memory and accepts each
port independently, and every engine consumes a whole frame before it finishes one, so
the skip path cannot deadlock the fork: the long path never waits on the short one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import Graph
from .lower import BackendError, ModelIO, interface
from .naming import sanitize
from .render import render
from .verilog import TOP, _bits, _type_info, _ulit, write_files
from .verilog_join import GATHER_OPS, JOIN_OPS, gather_engine, join_engine
from .verilog_window import WINDOW_OPS, window_engine

ENGINES = {**{op: window_engine for op in WINDOW_OPS}, **{op: join_engine for op in JOIN_OPS},
           **{op: gather_engine for op in GATHER_OPS}}
try:  # elementwise engines
    from .verilog_map import MAP_OPS, map_engine
    ENGINES.update({op: map_engine for op in MAP_OPS})
except ImportError:  # pragma: no cover
    pass
CNN_OPS = frozenset(ENGINES) | {"Reshape"}


@dataclass(frozen=True)
class CnnModel(ModelIO):
    """A quantized graph checked to be in scope: what :func:`write_cnn` renders."""

    graph: Graph = field(repr=False)
    macs: int = 0


def _refuse(node, why: str):
    raise BackendError(f"target 'verilog' cannot implement node {sanitize(node.name)!r} (op {node.op}): {why}")


@dataclass
class _Plan:
    engines: list[dict]
    streams: list[dict]  # index = stream id; 0 = top input, i + 1 = engine i's output
    out_stream: int


def _plan(q: Graph, parallelism: str = "sequential") -> _Plan:
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    nodes = q.topo()
    for n in nodes:
        if n.op not in CNN_OPS:
            _refuse(n, f"the Verilog backend implements {', '.join(sorted(CNN_OPS))}")
        if len(n.outputs) != 1:
            _refuse(n, "has more than one output")
    inp, outp = q.inputs[0], q.outputs[0]
    root: dict[str, str] = {inp: inp}
    for n in nodes:
        acts = [t for t in n.inputs if not q.is_const(t)]
        if n.op == "Reshape":
            root[n.outputs[0]] = root[acts[0]]
        else:
            root[n.outputs[0]] = n.outputs[0]
    if root[outp] == inp:
        raise BackendError("the model has no layer to implement")
    compute = [n for n in nodes if n.op != "Reshape"]
    used: set[str] = set()
    stream_of = {inp: 0}
    engines, streams = [], [{"id": 0, "width": q.qtype(inp).width, "readers": []}]
    for i, n in enumerate(compute):
        name = sanitize(n.name, used, prefix="layer")
        build = ENGINES[n.op]
        e = build(q, n, name, parallelism) if build is window_engine else build(q, n, name)
        acts = [t for t in n.inputs if not q.is_const(t)]
        if len(acts) != len(e["ports"]):
            raise BackendError(f"internal: engine {name} has {len(e['ports'])} ports for {len(acts)} inputs")
        e.update(name=name, op=n.op, module=f"nnf_{name}", index=i,
                 in_streams=[stream_of[root[t]] for t in acts], out_stream=i + 1)
        for port, s in zip(e["ports"], e["in_streams"]):
            streams[s]["readers"].append((i, port))
        stream_of[n.outputs[0]] = i + 1
        streams.append({"id": i + 1, "width": q.qtype(n.outputs[0]).width, "readers": []})
        engines.append(e)
    out_stream = stream_of[root[outp]]
    streams[out_stream]["readers"].append((-1, "out"))
    for s in streams:
        if not s["readers"]:
            raise BackendError(f"target 'verilog': stream {s['id']} has no reader (a dead value; run the passes)")
    return _Plan(engines, streams, out_stream)


def lower_cnn(q: Graph) -> CnnModel:
    """Check the whole graph against the scope (every engine's numbers are computed, so
    every refusal happens here, before any file is written)."""
    plan = _plan(q)
    return CnnModel(**interface(q), graph=q, macs=sum(e.get("macs", 0) for e in plan.engines))


def _top_context(q: Graph, plan: _Plan) -> dict:
    """Wires of the top: stream ``s<k>`` per value, ``s<k>_<j>`` per reader of a forked one."""
    in_t, out_t = q.qtype(q.inputs[0]), q.qtype(q.outputs[0])
    n_out = int(np.prod(q.shape(q.outputs[0])))
    conns: dict[tuple[int, str], str] = {}
    forks = []
    for s in plan.streams:
        if len(s["readers"]) == 1:
            conns[s["readers"][0]] = f"s{s['id']}"
        else:
            outs = []
            for j, r in enumerate(s["readers"]):
                conns[r] = f"s{s['id']}_{j}"
                outs.append(f"s{s['id']}_{j}")
            forks.append({"stream": f"s{s['id']}", "outs": outs, "n": len(outs), "w": s["width"]})
    instances = [{"module": e["module"], "name": e["name"], "out": f"s{e['out_stream']}",
                  "ports": [(p, conns[(e["index"], p)]) for p in e["ports"]]} for e in plan.engines]
    ob = _bits(n_out)
    return {"top": TOP, "streams": plan.streams, "forks": forks, "instances": instances,
            "in_wire": "s0", "out_wire": conns[(-1, "out")], "n_engines": len(plan.engines),
            "xw_m1": in_t.width - 1, "ow_m1": out_t.width - 1, "n_in": int(np.prod(q.shape(q.inputs[0]))),
            "n_out": n_out, "ob_m1": ob - 1, "o_zero": _ulit(ob, 0), "o_one": _ulit(ob, 1),
            "o_last": _ulit(ob, n_out - 1), "in_type": str(in_t), "out_type": str(out_t)}


def _timing(plan: _Plan, n_in: int) -> tuple[int, int]:
    """(ii, latency) estimates: an engine loads no faster than its slowest producer
    streams (a frame engine's output lasts its compute, a map engine's its producer's);
    the latency is the longest path of the engines' ``in_to_out``."""
    compute = {0: n_in}
    done = {0: n_in - 1}
    ii = 0
    for e in plan.engines:
        load = max([e["n_in"]] + [compute[s] for s in e["in_streams"]])
        e["timing"]["frame_cycles"] = load + e["timing"]["compute_cycles"] + 3
        ii = max(ii, e["timing"]["frame_cycles"])
        # a frame engine spreads its outputs over its compute; a streaming (map) engine
        # passes its producer's rate on
        own = e["timing"]["compute_cycles"]
        compute[e["out_stream"]] = own if e["frame_memory_words"] else max([own] + [compute[s] for s in e["in_streams"]])
        done[e["out_stream"]] = max(done[s] for s in e["in_streams"]) + e["timing"]["in_to_out"]
    return max(ii, _fork_join_period(plan, n_in)), done[plan.out_stream]


def _fork_join_period(plan: _Plan, n_in: int) -> int:
    """A join holds one frame of its skip input until its other inputs arrive, and the
    fork feeding the skip cannot pass the next frame before that: the producer of a
    forked stream, every engine on the longest path from it to the join, and the join
    itself take turns, one frame each. The period is at least the sum of their compute."""
    comp = {0: n_in}  # by stream: the cycles its producer spends on one frame
    for e in plan.engines:
        comp[e["out_stream"]] = e["timing"]["compute_cycles"] + 3
    # longest[s][t]: the largest sum of comp over a path from stream s's producer down to
    # the producer of stream t (s excluded, t included); streams are in topological order
    longest: dict[int, dict[int, int]] = {}
    for src in range(len(plan.streams)):
        best = {src: 0}
        for e in plan.engines:
            reach = [best[s] for s in e["in_streams"] if s in best]
            if reach:
                best[e["out_stream"]] = max(reach) + comp[e["out_stream"]]
        longest[src] = best
    period = 0
    for e in plan.engines:
        ins = e["in_streams"]
        for s in ins:
            if len(plan.streams[s]["readers"]) < 2:
                continue
            for t in ins:
                if t != s and t in longest[s]:
                    period = max(period, comp[s] + longest[s][t] + comp[e["out_stream"]])
    return period


def write_cnn(model: Graph | CnnModel, outdir: Path, parallelism: str = "balanced") -> dict:
    """Render every engine, the forks and the top, then write them with ``verilog_info.json``
    and ``README.txt``. ``parallelism`` sets the SIMD lanes of the MAC engines
    (:func:`.verilog_window.choose_simd`)."""
    q = model.graph if isinstance(model, CnnModel) else model
    plan = _plan(q, parallelism)
    engines = plan.engines
    in_t, out_t = q.qtype(q.inputs[0]), q.qtype(q.outputs[0])
    n_in, n_out = int(np.prod(q.shape(q.inputs[0]))), int(np.prod(q.shape(q.outputs[0])))
    files = {f"{e['module']}.v": render("verilog", e["template"], E=e) for e in engines}
    top = _top_context(q, plan)
    if top["forks"]:
        files["nnf_fork.v"] = render("verilog", "fork.v.j2")
    files[f"{TOP}.v"] = render("verilog", "graph_top.v.j2", **top)
    ii, latency = _timing(plan, n_in)
    info = {
        "top": TOP, "model": sanitize(q.name, prefix="model"), "parallelism": parallelism,
        "n_in": n_in, "n_out": n_out, "in_type": _type_info(in_t), "out_type": _type_info(out_t),
        "stream_order": "CHW (the IR's flat per-sample order), one element per beat",
        "layers": [{"name": e["name"], "op": e["op"], "module": e["module"], "file": f"{e['module']}.v",
                    "inputs": [f"s{s}" for s in e["in_streams"]], "output": f"s{e['out_stream']}",
                    "n_in": e["n_in"], "n_out": e["n_out"], "taps": e.get("taps", 1), "pe": 1, "simd": e.get("S", 1),
                    "latency_cycles": e["timing"]["in_to_out"], "ii_cycles": e["timing"]["frame_cycles"],
                    "multipliers": e["multipliers"], "acc_width": e.get("aw"),
                    "frame_memory_words": e["frame_memory_words"], **e["timing"]} for e in engines],
        "forks": [{"stream": f["stream"], "readers": f["n"]} for f in top["forks"]],
        "totals": {"latency_cycles": latency, "ii_cycles": ii,
                   "multipliers": sum(e["multipliers"] for e in engines),
                   "macs": sum(e.get("macs", 0) for e in engines),
                   "frame_memory_words": sum(e["frame_memory_words"] for e in engines)},
        "timing_notes": "estimates: ii_cycles = the slowest engine's load (no faster than its slowest "
                        "producer computes) + compute + 3 per frame (an engine does not load while it "
                        "computes); latency_cycles = the longest path of the engines' compute + 3",
        "files": sorted(files) + ["verilog_info.json", "README.txt"],
    }
    files["README.txt"] = render("verilog", "graph_readme.txt.j2", info=info)
    return write_files(Path(outdir), files, info)
