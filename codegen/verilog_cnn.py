"""Verilog for any DAG of the engine ops: one engine per node, streams between them.

Streams carry one element per beat. Layouts (the layout pass, :class:`_Planner`): a
stream of a tensor of per-sample shape ``s`` in layout ``perm`` carries
``x.transpose(perm).reshape(-1)`` per sample. By default (``layout="hwc"``) the top
input and every (C, ...) tensor a window engine reads or writes are channels-last, so
convolutions and pools run on line buffers; elementwise engines keep their input's
layout; a consumer that needs another layout gets a reorder engine in front; the top
output is always in the IR's flat order. Reshape (and the Flatten / Squeeze / Unsqueeze
the importer turns into it) is free when the stream's order is the IR's order (e.g. a
(C, 1, 1) global-pool output), else a reorder comes first. ``layout="chw"`` keeps every
stream in the IR's order with whole-frame window engines instead.

Engines (one module per node; built by the function registered for its op in
:data:`ENGINES`, which checks the node against what the engine implements and refuses,
naming the node, before any file is written):

* window engines (:mod:`.verilog_window`): Conv, Dense, pools; line buffers
  (``line.v.j2``) or a frame memory (``window.v.j2``), SIMD input channels per cycle;
* join engines (:mod:`.verilog_join`): residual Add of two activations, Mul, Concat;
* gather engines (:mod:`.verilog_join`): Transpose, Resize (nearest) and reorders, a frame
  memory read in another order;
* map engines (:mod:`.verilog_map`): elementwise ops, no frame memory.

Engine contract: a builder ``f(q, node, name, ...) -> dict`` returns at least ``template``
(a file in ``hls_templates/verilog``), ``ports`` (input port names, one per activation
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
port independently, and every engine completes a frame's outputs from that frame's
input alone, so the skip path cannot deadlock the fork: the long path never waits on
the short one. (It does serialize a residual block: the skip memory holds one frame,
so the block's period includes the long path's latency; see :func:`_fork_join_period`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import Graph
from .lower import BackendError, ModelIO, interface
from .naming import sanitize
from .render import render
from .verilog import AXIS_TOP, TOP, _bits, _type_info, _ulit, axis_wrapper, write_files
from .verilog_join import GATHER_OPS, JOIN_OPS, gather_engine, join_engine, refuse, reorder_engine, same_order
from .verilog_map import MAP_OPS, map_engine
from .verilog_window import WINDOW_OPS, window_engine

ENGINES = {**{op: window_engine for op in WINDOW_OPS}, **{op: join_engine for op in JOIN_OPS},
           **{op: gather_engine for op in GATHER_OPS}}
ENGINES.update({op: map_engine for op in MAP_OPS})
CNN_OPS = frozenset(ENGINES) | {"Reshape"}


@dataclass(frozen=True)
class CnnModel(ModelIO):
    """A quantized graph checked to be in scope: what :func:`write_cnn` renders."""

    graph: Graph = field(repr=False)
    macs: int = 0




@dataclass
class _Plan:
    engines: list[dict]
    streams: list[dict]  # index = stream id; 0 = top input, i + 1 = engine i's output
    out_stream: int
    in_perm: tuple  # the top input's layout


def channels_last(rank: int) -> tuple[int, ...]:
    """The stream layout of a (C, ...) tensor with the channels innermost."""
    return tuple(range(1, rank)) + (0,) if rank >= 2 else tuple(range(rank))


class _Planner:
    """Engines and streams for a graph: every activation tensor is a *view* (stream, layout);
    a stream carries ``x.transpose(layout).reshape(-1)`` of its tensor ``x``. Window
    engines read and write channels-last (line buffers); elementwise engines keep their
    input's layout; joins take one layout for all inputs; a view in the wrong layout goes
    through a reorder engine first. Reshape is free when the view's order is the IR's."""

    def __init__(self, q: Graph, parallelism: str, layout: str):
        self.q, self.parallelism, self.layout = q, parallelism, layout
        self.engines: list[dict] = []
        self.streams: list[dict] = []
        self.view: dict[str, tuple[int, tuple]] = {}
        self.converted: dict[tuple[str, tuple], int] = {}
        self.used: set[str] = set()

    def preferred(self, rank: int) -> tuple[int, ...]:
        """The layout window engines and joins use: channels-last, or the IR's order."""
        return channels_last(rank) if self.layout == "hwc" else tuple(range(rank))

    def new_stream(self, tensor: str) -> int:
        self.streams.append({"id": len(self.streams), "width": self.q.qtype(tensor).width, "readers": []})
        return len(self.streams) - 1

    def want(self, tensor: str, perm: tuple) -> int:
        """A stream of ``tensor`` in layout ``perm``, reordering it if needed."""
        sid, have = self.view[tensor]
        shape = tuple(self.q.shape(tensor))
        if same_order(shape, have, perm):
            return sid
        key = (tensor, tuple(perm))
        if key not in self.converted:
            name = sanitize(f"reorder_{tensor}", self.used, prefix="layer")
            e = reorder_engine(self.q, tensor, name, have, tuple(perm))
            self.add(e, name, "Reorder", [sid], tensor)
            self.engines[-1].update(tensor=tensor, layout=tuple(perm))
            self.converted[key] = self.engines[-1]["out_stream"]
        return self.converted[key]

    def add(self, e: dict, name: str, op: str, in_streams: list[int], out_tensor: str) -> None:
        if len(in_streams) != len(e["ports"]):
            raise BackendError(f"internal: engine {name} has {len(e['ports'])} ports for {len(in_streams)} inputs")
        i = len(self.engines)
        e.update(name=name, op=op, module=f"nnf_{name}", index=i, in_streams=in_streams,
                 out_stream=self.new_stream(out_tensor))
        for port, sid in zip(e["ports"], in_streams):
            self.streams[sid]["readers"].append((i, port))
        self.engines.append(e)

    def node(self, n) -> None:
        q = self.q
        acts = [t for t in n.inputs if not q.is_const(t)]
        out = n.outputs[0]
        rank_out = len(q.shape(out))
        if n.op == "Reshape":
            ident = tuple(range(len(q.shape(acts[0]))))
            self.view[out] = (self.want(acts[0], ident), tuple(range(rank_out)))
            return
        name = sanitize(n.name, self.used, prefix="layer")
        build = ENGINES[n.op]
        if build is window_engine:
            perm_in = self.preferred(len(q.shape(acts[0])))
            ins = [self.want(acts[0], perm_in)]
            e = window_engine(q, n, name, self.parallelism, self.layout)
            perm_out = self.preferred(rank_out)
        else:
            # an elementwise op (a map engine, or Add / Mul with a constant) keeps its
            # input's layout; a gather reads any layout; a join reads one for every input
            elementwise = build is map_engine or (n.op in ("Add", "Mul") and len(acts) < 2)
            if elementwise or build is gather_engine:
                perms_in = [self.view[acts[0]][1]]
            else:
                perms_in = [self.preferred(len(q.shape(acts[0])))] * len(acts)
            ins = [self.want(t, p) for t, p in zip(acts, perms_in)]
            perm_out = perms_in[0] if elementwise else self.preferred(rank_out)
            e = build(q, n, name, layouts={"in": perms_in, "out": perm_out})
        self.add(e, name, n.op, ins, out)
        e.update(tensor=out, layout=tuple(perm_out))
        self.view[out] = (e["out_stream"], perm_out)


def _plan(q: Graph, parallelism: str = "sequential", layout: str = "hwc") -> _Plan:
    if layout not in ("hwc", "chw"):
        raise ValueError(f"unknown layout {layout!r}; choose hwc or chw")
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    nodes = q.topo()
    for n in nodes:
        if n.op not in CNN_OPS:
            refuse(n, f"the Verilog backend implements {', '.join(sorted(CNN_OPS))}")
        if len(n.outputs) != 1:
            refuse(n, "has more than one output")
    if all(n.op == "Reshape" for n in nodes):
        raise BackendError("the model has no layer to implement")
    inp, outp = q.inputs[0], q.outputs[0]
    pl = _Planner(q, parallelism, layout)
    in_perm = pl.preferred(len(q.shape(inp)))
    pl.view[inp] = (pl.new_stream(inp), in_perm)
    for n in nodes:
        pl.node(n)
    out_stream = pl.want(outp, tuple(range(len(q.shape(outp)))))  # the top output in the IR's order
    if out_stream == 0:
        raise BackendError("the model has no layer to implement")
    pl.streams[out_stream]["readers"].append((-1, "out"))
    for s in pl.streams:
        if not s["readers"]:
            raise BackendError(f"target 'verilog': stream {s['id']} has no reader (a dead value; run the passes)")
    return _Plan(pl.engines, pl.streams, out_stream, in_perm)


def lower_cnn(q: Graph, layout: str = "hwc") -> CnnModel:
    """Check the whole graph against the scope (every engine's numbers are computed, so
    every refusal happens here, before any file is written)."""
    plan = _plan(q, layout=layout)
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
        own = e["timing"]["compute_cycles"]
        # a line engine loads while it computes; a frame engine loads, then computes
        e["timing"]["frame_cycles"] = (max(load, own) if e.get("overlap") else load + own) + 3
        if e.get("overlap"):  # input faster than the compute: the outputs lag behind the input
            e["timing"]["in_to_out"] = max(e["timing"]["in_to_out"], own - load + 3)
        ii = max(ii, e["timing"]["frame_cycles"])
        # a frame engine spreads its outputs over its compute, a line engine over its
        # frame; a streaming (map) engine passes its producer's rate on
        if e.get("overlap") or not e["frame_memory_words"]:
            compute[e["out_stream"]] = max(own, load) if e.get("overlap") else max([own] + [compute[s] for s in e["in_streams"]])
        else:
            compute[e["out_stream"]] = own
        done[e["out_stream"]] = max(done[s] for s in e["in_streams"]) + e["timing"]["in_to_out"]
    return max(ii, _fork_join_period(plan, compute)), done[plan.out_stream]


def _fork_join_period(plan: _Plan, stream_cycles: dict[int, int]) -> int:
    """A join holds one frame of its skip input until its other inputs arrive, and the
    fork feeding the skip cannot pass the next frame before that. So a period holds: the
    forked stream (``stream_cycles``: how long one frame of it lasts), the latency of the
    longest path from it to the join (each engine's ``in_to_out``: a frame engine's whole
    compute, a line engine's last rows), and the join's own compute."""
    lat = {e["out_stream"]: e["timing"]["in_to_out"] for e in plan.engines}
    # longest[s][t]: the largest sum of in_to_out over a path from stream s down to the
    # producer of stream t (s's producer excluded, t's included); streams are in topological order
    longest: dict[int, dict[int, int]] = {}
    for src in range(len(plan.streams)):
        best = {src: 0}
        for e in plan.engines:
            reach = [best[s] for s in e["in_streams"] if s in best]
            if reach:
                best[e["out_stream"]] = max(reach) + lat[e["out_stream"]]
        longest[src] = best
    period = 0
    for e in plan.engines:
        ins = e["in_streams"]
        for s in ins:
            if len(plan.streams[s]["readers"]) < 2:
                continue
            for t in ins:
                if t != s and t in longest[s]:
                    period = max(period, stream_cycles[s] + longest[s][t] + e["timing"]["compute_cycles"] + 3)
    return period


def write_cnn(model: Graph | CnnModel, outdir: Path, parallelism: str = "balanced", layout: str = "hwc") -> dict:
    """Render every engine, the forks and the top, then write them with ``verilog_info.json``
    and ``README.txt``. ``parallelism`` sets the SIMD lanes of the MAC engines
    (:func:`.verilog_window.choose_simd`); ``layout`` "hwc" streams (C, ...) tensors
    channels-last through line-buffer engines, "chw" in the IR's order through frame
    engines."""
    q = model.graph if isinstance(model, CnnModel) else model
    plan = _plan(q, parallelism, layout)
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
        "input_shape": list(q.shape(q.inputs[0])), "input_order": list(plan.in_perm),
        "stream_order": ("input: x.transpose(input_order).reshape(-1) per sample"
                         + (" (channels-last)" if list(plan.in_perm) != sorted(plan.in_perm) else "")
                         + "; output in the model's flat order; one element per beat"),
        "layers": [{"name": e["name"], "op": e["op"], "module": e["module"], "file": f"{e['module']}.v",
                    "inputs": [f"s{s}" for s in e["in_streams"]], "output": f"s{e['out_stream']}",
                    "tensor": e["tensor"], "layout": list(e["layout"]),
                    "n_in": e["n_in"], "n_out": e["n_out"], "taps": e.get("taps", 1), "pe": 1, "simd": e.get("S", 1),
                    "latency_cycles": e["timing"]["in_to_out"], "ii_cycles": e["timing"]["frame_cycles"],
                    "multipliers": e["multipliers"], "acc_width": e.get("aw"),
                    "frame_memory_words": e["frame_memory_words"], **e["timing"]} for e in engines],
        "forks": [{"stream": f["stream"], "readers": f["n"]} for f in top["forks"]],
        "totals": {"latency_cycles": latency, "ii_cycles": ii,
                   "multipliers": sum(e["multipliers"] for e in engines),
                   "macs": sum(e.get("macs", 0) for e in engines),
                   "frame_memory_words": sum(e["frame_memory_words"] for e in engines)},
        "timing_notes": "estimates: ii_cycles = the slowest engine's frame: a line engine max(load, "
                        "compute) + 3 (it loads while it computes), a frame engine load + compute + 3, where "
                        "an engine loads no faster than its slowest producer streams; at least the fork-join "
                        "bound of residual blocks; latency_cycles = the longest path of the engines' "
                        "in-to-out cycles",
        "files": sorted(files) + [f"{AXIS_TOP}.v", "verilog_info.json", "README.txt"],
    }
    files[f"{AXIS_TOP}.v"], info["axis"] = axis_wrapper(info, in_t, out_t)
    files["README.txt"] = render("verilog", "graph_readme.txt.j2", info=info)
    return write_files(Path(outdir), files, info)
