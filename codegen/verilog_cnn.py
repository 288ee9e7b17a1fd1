"""Verilog for any DAG of the engine ops: one engine per node, streams between them.

Streams carry one element per beat. Layouts (the layout pass, :class:`_Planner`): a
stream of a tensor of per-sample shape ``s`` in layout ``perm`` carries
``x.transpose(perm).reshape(-1)`` per sample. The top input and every (C, ...) tensor a
window engine or a join reads or writes are channels-last, so convolutions and pools run
on line buffers; elementwise engines keep their input's layout; a consumer that needs
another layout gets a reorder engine in front; the top output is always in the IR's flat
order. Reshape (and the Flatten / Squeeze / Unsqueeze the importer turns into it) is free
when the stream's order is the IR's order (e.g. a (C, 1, 1) global-pool output), else a
reorder comes first.

Engines (one module per node; built by the function registered for its op in
:data:`LOWERINGS`, the Verilog target's lowering table, whose keys are every op it
supports; the builder checks the node against what the engine implements and refuses,
naming the node, before any file is written):

* window engines (:mod:`.verilog_window`): Conv, Dense, pools; line buffers
  (``line.v.j2``), PE output and SIMD input channels per cycle;
* join engines (:mod:`.verilog_join`): residual Add, Mul, Max and Min of two activations
  stream (one element of each input per output, no frame memory); Concat buffers each
  input whole;
* gather engines (:mod:`.verilog_join`): Transpose, Resize (nearest, integer factors) and
  reorders, a frame memory read in another order;
* interpolation engines (:mod:`.verilog_interp`): Resize with tap tables (linear, cubic,
  nearest of any scale), a frame memory and one tap product per cycle;
* reduce engines (:mod:`.verilog_reduce`): ReduceSum / Mean / Max / Min over any axes and
  ArgMax at the output, a frame memory walked per output value;
* map engines (:mod:`.verilog_map`): elementwise ops (every table op among them, and Add /
  Mul with a constant operand), no frame memory.

Engine contract: a builder ``f(q, node, name, ...) -> Engine`` returns a frozen
:class:`~.engines.Engine`: ``template`` (a file in ``hls_templates/verilog``), ``ports``
(input port names, one per activation input, in the node's input order), ``n_in`` (words
loaded per frame, all ports), ``n_out``, ``timing()``, ``capacity()``, ``memories()``,
``operators()``, ``multipliers`` and ``frame_memory_words``. The template gets
``Engine.context()`` as ``E`` (with ``name``, ``module`` and ``op`` once the planner placed
it) and declares module ``E.module`` with ports ``clk``,
``rst``, ``<port>_valid/_ready/_data`` per input port and ``out_valid/_ready/_data``.
Handshakes are registered: no ready depends on a valid in the same cycle and no valid on
a ready, so engines and forks compose without combinational loops.

Fan-out: a stream read by several engines (a residual block's skip) goes through an
eager fork (``nnf_fork.v``) that holds each beat until every reader took it. A
frame-buffered join (Concat) accepts each port independently into its own memory, and
every engine completes a frame's outputs from that frame's input alone, so its skip
cannot deadlock the fork (it serializes the block, see :func:`_fork_join_period`). A
streaming join (Add, Mul, Max, Min) takes one element of each port at a time, so the fork passes
an element only when both paths accept it: the skip path gets a FIFO (``nnf_fifo.v``)
in front of the join, sized by :func:`_skip_fifos`:

    C     = max over paths from the fork's stream s to a join port of
            sum over the path's engines of capacity(engine) * n(s) / n(engine input)
    depth = min(ceil(C * n(t) / n(s)) + FIFO_MARGIN, n(t))   (t: the skip port's stream)

``capacity``: a line engine's row-buffer words, a gather engine's (or a Concat port's)
frame, none for a map engine, plus pipeline and output registers (converted by
n_in / n_out); a streaming join's input buffer and registers plus the FIFO on that port.
Every element the long path can absorb before it emits the join's matching element
then fits in the skip FIFO, so the fork never stalls the long path and the block runs
at its slowest engine's rate; a FIFO capped at one frame is still deadlock-free (no path
needs more than a frame in flight) but may throttle the block a little, which
:func:`_fork_join_period` estimates. ``verilog_info.json`` lists the FIFOs (``fifos``:
stream, depth, width, need, why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import Graph
from ..ir.ops import ops_with
from .lower import BackendError, ModelIO, interface
from .naming import sanitize
from .render import render
from .engines import Engine, Fifo, Stream, Timing
from .estimate import annotate as annotate_estimate, bram_bank, design_estimate, place_memories
from .folding import choose
from .registry import Lowerings
from .rtl import AXIS_TOP, TOP, axis_wrapper, bits, type_info, ulit, write_files
from .verilog_interp import resize_engine
from .verilog_join import JOIN_OPS, gather_engine, join_engine, reorder_engine
from .verilog_map import TABLE_OPS, VALUES, map_engine
from .verilog_reduce import REDUCE_OPS, reduce_engine
from .verilog_streams import channels_last, refuse, same_order
from .verilog_window import WINDOW_OPS, window_engine


def elementwise_or_join(q: Graph, node, name: str, layouts: dict | None = None) -> Engine:
    """Add / Mul: with a constant operand an elementwise map engine, of two activations a
    streaming join."""
    if sum(not q.is_const(t) for t in node.inputs) < 2:
        return map_engine(q, node, name, layouts)
    return join_engine(q, node, name, layouts)


def free_view(q: Graph, node, name: str, layouts: dict | None = None) -> None:
    """Reshape: no engine; the planner passes the stream on (reordered first when its
    order is not the IR's)."""
    return None


# what the Verilog target implements: one engine builder per op (the table's keys are
# every op it supports; a new table op is a map engine with no edit here)
LOWERINGS = Lowerings("verilog")
LOWERINGS.lowers_all(WINDOW_OPS, window_engine)
LOWERINGS.lowers_all(TABLE_OPS, map_engine)
LOWERINGS.lowers_all(set(VALUES) - JOIN_OPS, map_engine)
LOWERINGS.lowers_all(JOIN_OPS & set(VALUES), elementwise_or_join)
LOWERINGS.lowers_all(JOIN_OPS - set(VALUES), join_engine)
LOWERINGS.lowers("Resize")(resize_engine)  # integer scales: the gather engine; taps: interpolation
LOWERINGS.lowers("Reshape")(free_view)
# every other op that only moves values (Transpose): a frame memory read in another order
LOWERINGS.lowers_all(ops_with(moves_data=True) - LOWERINGS.ops(), gather_engine)
LOWERINGS.lowers_all(REDUCE_OPS, reduce_engine)


def ops_built_by(*builders) -> frozenset[str]:
    """The ops whose lowering is one of ``builders``."""
    return frozenset(op for op in LOWERINGS.ops() if LOWERINGS[op] in builders)


MAP_OPS = ops_built_by(map_engine)  # Add / Mul with a constant too: see elementwise_or_join
CNN_OPS = LOWERINGS.ops()


@dataclass(frozen=True)
class CnnModel(ModelIO):
    """A quantized graph checked to be in scope: what :func:`write_cnn` renders."""

    graph: Graph = field(repr=False)
    macs: int = 0




@dataclass
class _Plan:
    engines: list[Engine]
    streams: list[Stream]  # index = stream id; 0 = top input, i + 1 = engine i's output
    out_stream: int
    in_perm: tuple  # the top input's layout
    folding: dict = field(default_factory=dict)  # how the MAC engines were folded (folding.choose)


class _Planner:
    """Engines and streams for a graph: every activation tensor is a *view* (stream, layout);
    a stream carries ``x.transpose(layout).reshape(-1)`` of its tensor ``x``. Window
    engines read and write channels-last (line buffers); elementwise engines keep their
    input's layout; joins take one layout for all inputs; a view in the wrong layout goes
    through a reorder engine first. Reshape is free when the view's order is the IR's."""

    def __init__(self, q: Graph, parallelism: str, folds: dict | None = None):
        self.q, self.parallelism, self.folds = q, parallelism, folds or {}
        self.engines: list[Engine] = []
        self.streams: list[dict] = []  # id, width, readers; frozen into Streams by _plan_with
        self.view: dict[str, tuple[int, tuple]] = {}
        self.converted: dict[tuple[str, tuple], int] = {}
        self.used: set[str] = set()

    def preferred(self, rank: int) -> tuple[int, ...]:
        """The layout window engines and joins use: channels-last."""
        return channels_last(rank)

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
            self.converted[key] = self.add(e, name, "Reorder", [sid], tensor, tuple(perm)).out_stream
        return self.converted[key]

    def add(self, e: Engine, name: str, op: str, in_streams: list[int], out_tensor: str, layout: tuple) -> Engine:
        if len(in_streams) != len(e.ports):
            raise BackendError(f"internal: engine {name} has {len(e.ports)} ports for {len(in_streams)} inputs")
        i = len(self.engines)
        e = e.placed(name=name, op=op, module=f"nnf_{name}", index=i, in_streams=tuple(in_streams),
                     out_stream=self.new_stream(out_tensor), tensor=out_tensor, layout=tuple(layout))
        for port, sid in zip(e.ports, in_streams):
            self.streams[sid]["readers"].append((i, port))
        self.engines.append(e)
        return e

    def node(self, n) -> None:
        q = self.q
        acts = [t for t in n.inputs if not q.is_const(t)]
        out = n.outputs[0]
        rank_out = len(q.shape(out))
        if LOWERINGS[n.op] is free_view:
            ident = tuple(range(len(q.shape(acts[0]))))
            self.view[out] = (self.want(acts[0], ident), tuple(range(rank_out)))
            return
        name = sanitize(n.name, self.used, prefix="layer")
        build = LOWERINGS[n.op]
        if build is window_engine:
            perm_in = self.preferred(len(q.shape(acts[0])))
            ins = [self.want(acts[0], perm_in)]
            e = window_engine(q, n, name, self.parallelism, fold=self.folds.get(name))
            perm_out = self.preferred(rank_out)
        else:
            # an elementwise op (a map engine, or Add / Mul with a constant) keeps its
            # input's layout; a gather, a resize or a reduction reads any layout; a join reads one for every input
            elementwise = build is map_engine or (build is elementwise_or_join and len(acts) < 2)
            if elementwise or build in (gather_engine, resize_engine, reduce_engine):
                perms_in = [self.view[acts[0]][1]]
            else:
                perms_in = [self.preferred(len(q.shape(acts[0])))] * len(acts)
            ins = [self.want(t, p) for t, p in zip(acts, perms_in)]
            perm_out = perms_in[0] if elementwise else self.preferred(rank_out)
            e = build(q, n, name, layouts={"in": perms_in, "out": perm_out})
        self.view[out] = (self.add(e, name, n.op, ins, out, perm_out).out_stream, perm_out)


def _plan(q: Graph, parallelism="sequential") -> _Plan:
    """The engines and streams. ``parallelism``: a mode or goal of :mod:`.folding`;
    "balanced" and the goals are met by folding each MAC engine, from
    a first, sequential plan's geometry and element counts; a LUT / flip-flop / block RAM
    budget from :func:`_budget_estimate` of each fold tried (the estimate the design
    reports, from the engines' data: nothing is rendered))."""
    if parallelism not in ("sequential", "parallel"):
        first = _plan_with(q, "sequential", None)

        arch = parallelism.get("arch", "ecp5") if isinstance(parallelism, dict) else "ecp5"

        def estimate(folds: dict) -> dict:
            return _budget_estimate(q, _plan_with(q, "sequential", folds), arch)

        folds, decision = choose(first.engines, parallelism, estimate)
        plan = _plan_with(q, "sequential", folds)
        plan.folding = decision
        return plan
    plan = _plan_with(q, parallelism, None)
    plan.folding = {"mode": parallelism}
    return plan


@dataclass(frozen=True)
class EnginePlan:
    """The engine graph of a quantized graph at a folding goal, as the Verilog target
    builds it (for the HLS C++ of the same form, :mod:`.hls_stream`): engines, streams,
    the top output's stream, the top input's layout, the folding decision and the skip
    FIFOs (``engine``, ``port``, ``depth``, ...)."""

    engines: tuple
    streams: tuple
    out_stream: int
    in_perm: tuple
    folding: dict
    fifos: tuple


def plan_engines(q: Graph, parallelism="balanced", folds: dict | None = None) -> EnginePlan:
    """The engine graph :func:`write_cnn` renders for ``parallelism`` (nothing rendered);
    or, with ``folds`` (engine name -> :class:`~.folding.Fold`), the one of those folds."""
    if folds is not None:
        plan = _plan_with(q, "sequential", folds)
        plan.folding = dict(parallelism) if isinstance(parallelism, dict) else {"mode": parallelism}
    else:
        plan = _plan(q, parallelism)
    return EnginePlan(tuple(plan.engines), tuple(plan.streams), plan.out_stream, tuple(plan.in_perm),
                      dict(plan.folding), tuple(_skip_fifos(plan)))


def _budget_estimate(q: Graph, plan: _Plan, arch: str = "ecp5") -> dict:
    """The resource estimate of ``plan`` without its Verilog (:func:`.estimate.design_estimate`
    of its engines, forks and skip FIFOs: the total its ``verilog_info.json`` reports)."""
    forks = [{"readers": len(s.readers)} for s in plan.streams if len(s.readers) > 1]
    n_out = int(np.prod(q.shape(q.outputs[0])))
    return design_estimate(plan.engines, forks, _skip_fifos(plan), n_out, arch)[1]


def _plan_with(q: Graph, parallelism: str, folds: dict | None) -> _Plan:
    if len(q.inputs) != 1 or len(q.outputs) != 1:
        raise BackendError("hardware targets need exactly one input and one output tensor")
    nodes = q.topo()
    for n in nodes:
        if n.op not in LOWERINGS:
            refuse(n, f"the Verilog backend implements {', '.join(sorted(CNN_OPS))}")
        if len(n.outputs) != 1:
            refuse(n, "has more than one output")
    if all(LOWERINGS[n.op] is free_view for n in nodes):
        raise BackendError("the model has no layer to implement")
    inp, outp = q.inputs[0], q.outputs[0]
    pl = _Planner(q, parallelism, folds)
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
    streams = [Stream(s["id"], s["width"], tuple(s["readers"])) for s in pl.streams]
    return _Plan(pl.engines, streams, out_stream, in_perm)


def lower_cnn(q: Graph) -> CnnModel:
    """Check the whole graph against the scope (every engine's numbers are computed, so
    every refusal happens here, before any file is written)."""
    plan = _plan(q)
    return CnnModel(**interface(q), graph=q, macs=sum(e.macs for e in plan.engines))


def _top_context(q: Graph, plan: _Plan, fifos: list[dict] | None = None) -> dict:
    """Wires of the top: stream ``s<k>`` per value, ``s<k>_<j>`` per reader of a forked one,
    ``<wire>_q`` out of the skip FIFO (``fifos``: :func:`_skip_fifos`) in front of a join port."""
    in_t, out_t = q.qtype(q.inputs[0]), q.qtype(q.outputs[0])
    n_out = int(np.prod(q.shape(q.outputs[0])))
    conns: dict[tuple[int, str], str] = {}
    forks = []
    for s in plan.streams:
        if len(s.readers) == 1:
            conns[s.readers[0]] = f"s{s.id}"
        else:
            outs = []
            for j, r in enumerate(s.readers):
                conns[r] = f"s{s.id}_{j}"
                outs.append(f"s{s.id}_{j}")
            forks.append({"stream": f"s{s.id}", "outs": outs, "n": len(outs), "w": s.width})
    fifo_insts = []
    for f in fifos or []:
        key = (f["engine"], f["port"])
        fifo_insts.append({"name": f"{plan.engines[f['engine']].name}_{f['port']}", "in": conns[key],
                           "out": f"{conns[key]}_q", "depth": f["depth"], "w": f["width"]})
        conns[key] = f"{conns[key]}_q"
    instances = [{"module": e.module, "name": e.name, "out": f"s{e.out_stream}",
                  "ports": [(p, conns[(e.index, p)]) for p in e.ports]} for e in plan.engines]
    ob = bits(n_out)
    return {"top": TOP, "streams": plan.streams, "forks": forks, "fifos": fifo_insts, "instances": instances,
            "in_wire": "s0", "out_wire": conns[(-1, "out")], "n_engines": len(plan.engines),
            "xw_m1": in_t.width - 1, "ow_m1": out_t.width - 1, "n_in": int(np.prod(q.shape(q.inputs[0]))),
            "n_out": n_out, "ob_m1": ob - 1, "o_zero": ulit(ob, 0), "o_one": ulit(ob, 1),
            "o_last": ulit(ob, n_out - 1), "in_type": str(in_t), "out_type": str(out_t)}


# the skip side of a streaming join holds, besides its FIFO, the join's input buffer (2)
# and the fork's current beat (1); a FIFO passes an element on three cycles after taking it
SKIP_EXTRA = 3
FIFO_LATENCY = 3
FIFO_MARGIN = 2


def _capacity(e: Engine, k: int, depths: dict) -> float:
    """Elements of engine ``e``'s input port ``k`` that it can hold (taken, with no output
    yet emitted for them): the FIFO in front of the port plus the engine's own
    :meth:`~.engines.Engine.capacity` (a streaming join's buffers and registers; another
    engine's memory words plus its pipeline and output registers)."""
    return depths.get((e.index, e.ports[k]), 0) + e.capacity(k)


def _sizes(plan: _Plan) -> dict[int, int]:
    """Elements per frame of every stream."""
    sizes = {e.out_stream: e.n_out for e in plan.engines}
    for e in plan.engines:  # the top input: what its readers load from it
        for k, s in enumerate(e.in_streams):
            sizes.setdefault(s, e.port_words(k))
    return sizes


def _split_later(plan: _Plan, s: int, targets: set[int]) -> bool:
    """Whether every path from stream ``s`` to the streams ``targets`` passes through one
    stream after ``s`` (the paths part there, at a later fork, which is sized instead)."""
    for u in range(s + 1, max(targets) + 1):
        seen = {s}  # reached from s without going through u
        for e in plan.engines:
            if e.out_stream != u and any(v in seen for v in e.in_streams):
                seen.add(e.out_stream)
        if not targets & seen:
            return True
    return False


def _skip_fifos(plan: _Plan, override: dict | None = None) -> list[dict]:
    """FIFOs in front of the skip ports of the streaming joins, sized by analysis.

    With a streaming join a fork can pass an element only when every reader accepts it,
    so while the long path absorbs elements of a forked stream ``s`` before emitting the
    join's matching element, the skip side has to hold as many. For each forked stream
    ``s`` and each streaming join reached from ``s`` on two or more ports: the capacity
    of a path from ``s`` to a port is the sum of its engines' capacities
    (:func:`_capacity`, each converted to elements of ``s`` by n(s) / n(engine input)),
    and ``C`` the largest over paths to a port (the long path). Every other port ``p``
    (stream ``t``) whose own path holds less gets a FIFO of
    ``min(ceil(C * n(t) / n(s)) + FIFO_MARGIN, n(t))`` elements (the skip side holds
    that plus ``SKIP_EXTRA``: the join's input buffer and the fork's beat; its own
    path's capacity is not counted). A FIFO of a whole frame ``n(t)`` is always enough:
    every engine emits a frame's outputs from that frame's input alone, so no path needs
    more than a frame of ``s`` in flight. Joins are sized in topological order, so a
    FIFO counts in the capacity of the paths through it; a port reached from several
    forks takes the largest depth. ``override`` ({"<join>.<port>": depth}, private, for
    tests) replaces the analysis's depth."""
    n = _sizes(plan)
    depths: dict[tuple[int, str], int] = {}
    fifos: dict[tuple[int, str], dict] = {}
    forks = [s.id for s in plan.streams if len(s.readers) > 1]
    for j in plan.engines:
        if not j.streaming:
            continue
        for s in forks:
            cap = {s: 0.0}  # the most elements of s a path from s to a stream can hold
            for e in plan.engines[:j.index]:
                reach = [cap[u] + _capacity(e, k, depths) * n[s] / n[u]
                         for k, u in enumerate(e.in_streams) if u in cap]
                if reach:
                    cap[e.out_stream] = max(reach)
            ports = [(k, t) for k, t in enumerate(j.in_streams) if t in cap]
            if len(ports) < 2 or _split_later(plan, s, {t for _, t in ports}):
                continue
            c_long = max(cap[t] for _, t in ports)
            t_long = max(ports, key=lambda kt: cap[kt[1]])[1]
            for k, t in ports:
                if cap[t] >= c_long:
                    continue
                need = int(np.ceil(c_long * n[t] / n[s] - 1e-9)) + FIFO_MARGIN
                depth = min(need, n[t])
                key = (j.index, j.ports[k])
                if key in fifos and fifos[key]["depth"] >= depth:
                    continue
                fifos[key] = {"engine": j.index, "join": j.name, "port": j.ports[k], "stream": t,
                              "fork": s, "long": t_long, "need": need, "depth": depth, "capped": need > n[t],
                              "width": plan.streams[t].width, "frame": n[t],
                              "why": (f"skip of s{s} into {j.name}.{j.ports[k]}: the long path to "
                                      f"s{t_long} holds up to {c_long:.0f} elements of s{s}"
                                      + (f", {c_long * n[t] / n[s]:.0f} of s{t}" if n[t] != n[s] else "")
                                      + f"; + {FIFO_MARGIN} margin"
                                      + (f"; more than a frame: one frame ({n[t]})" if need > n[t] else ""))}
                depths[key] = depth
    for f in fifos.values():
        key = f"{f['join']}.{f['port']}"
        if override and key in override:
            f["depth"] = int(override[key])
            f["why"] += f"; overridden to {f['depth']}"
        if f["depth"] < 2:
            raise BackendError(f"internal: FIFO depth {f['depth']} for {key}")
    return sorted(fifos.values(), key=lambda f: (f["engine"], f["port"]))


def _timing(plan: _Plan, n_in: int, fifos: list[dict] | None = None) -> tuple[int, int, dict[int, Timing]]:
    """(ii, latency, each engine's timing in the graph) estimates: an engine loads no
    faster than its slowest producer streams (a frame-buffered engine's output lasts its
    compute, a map engine's or a streaming join's its producer's; a join's ports load in
    parallel); the latency is the longest path of the engines' ``in_to_out`` (plus
    ``FIFO_LATENCY`` through a skip FIFO). ``fifos``: :func:`_skip_fifos` (computed when not given)."""
    if fifos is None:
        fifos = _skip_fifos(plan)
    via_fifo = {(f["engine"], f["port"]) for f in fifos}
    compute = {0: n_in}
    done = {0: n_in - 1}
    lag = {e.out_stream: e.timing().in_to_out for e in plan.engines}  # at the engine's own pace
    graph: dict[int, Timing] = {}
    for e in plan.engines:
        t = e.timing()
        load = max([e.load_words] + [compute[s] for s in e.in_streams])
        own = t.compute_cycles
        if e.streaming:  # a streaming join: the pace of its slower input
            graph[e.index] = Timing(own, max(load, own) + 3, t.in_to_out)
            compute[e.out_stream] = max(load, own)
            done[e.out_stream] = max(done[s] + (FIFO_LATENCY if (e.index, p) in via_fifo else 0)
                                     for s, p in zip(e.in_streams, e.ports)) + t.in_to_out
            continue
        # a line engine loads while it computes; a frame-buffered engine (gather, Concat,
        # reduce, interpolation) loads, then computes; input faster than a line engine's
        # compute: the outputs lag behind the input
        graph[e.index] = Timing(own, (max(load, own) if e.overlap else load + own) + 3,
                                max(t.in_to_out, own - load + 3) if e.overlap else t.in_to_out)
        # a frame-buffered engine spreads its outputs over its compute, a line engine over its
        # frame; a streaming (map) engine passes its producer's rate on
        if e.overlap or not e.frame_memory_words:
            compute[e.out_stream] = max(own, load) if e.overlap else max([own] + [compute[s] for s in e.in_streams])
        else:
            compute[e.out_stream] = own
        done[e.out_stream] = max(done[s] for s in e.in_streams) + graph[e.index].in_to_out
    ii = max([0] + [t.frame_cycles for t in graph.values()])
    lat = {e.out_stream: graph[e.index].in_to_out for e in plan.engines}
    return max(ii, _fork_join_period(plan, compute, fifos, lag, lat)), done[plan.out_stream], graph


def _fork_join_period(plan: _Plan, stream_cycles: dict[int, int], fifos: list[dict] | None = None,
                      lags: dict[int, int] | None = None, lat: dict[int, int] | None = None) -> int:
    """The period bound of forks joined again.

    * A frame-buffered join (Concat) holds one frame of its skip input until its other
      inputs arrive, and the fork feeding the skip cannot pass the next frame before
      that. So a period holds: the forked stream (``stream_cycles``: how long one frame
      of it lasts), the latency of the longest path from it to the join (each engine's
      ``in_to_out``: a gather engine's whole compute, a line engine's last rows), and the
      join's own compute.
    * A streaming join whose skip FIFO is smaller than the analysis's need (capped at a
      frame, or overridden) lets the fork run at most ``D`` elements of the forked
      stream ``s`` ahead of the join (``D``: the FIFO plus ``SKIP_EXTRA``, in elements
      of ``s``); the long path keeps about ``rate * delay`` of them in flight (``delay``:
      its latency in a steady stream, the sum of the engines' ``lags``: each one's own
      in-to-out at its own pace, not the burst lag of a fast input), so a period holds
      at least ``delay * n(s) / D`` cycles (one frame: the long path's latency). A FIFO
      of the full need never throttles the fork: the long path cannot hold more. (An
      approximation: a frame-buffered engine downstream of the join, stalling it once a frame,
      adds a little; the residual test measures within 6% of the estimate.)

    ``lat``: each engine's in-to-out in the graph (by its out stream; its own by default).
    """
    lags = lags or {e.out_stream: e.timing().in_to_out for e in plan.engines}
    lat = lat or lags
    # longest[s][t]: the largest sum of in_to_out over a path from stream s down to the
    # producer of stream t (s's producer excluded, t's included); streams are in topological order
    longest: dict[int, dict[int, int]] = {}
    for src in range(len(plan.streams)):
        best = {src: 0}
        for e in plan.engines:
            reach = [best[s] for s in e.in_streams if s in best]
            if reach:
                best[e.out_stream] = max(reach) + lat[e.out_stream]
        longest[src] = best
    period = 0
    sizes = _sizes(plan) if fifos else {}
    for f in fifos or []:
        if f["depth"] >= f["need"]:
            continue
        s = f["fork"]
        n_s = sizes[s]
        d_s = (f["depth"] + SKIP_EXTRA) * n_s / f["frame"]
        steady = {s: 0}
        for e in plan.engines:
            reach = [steady[u] for u in e.in_streams if u in steady]
            if reach:
                steady[e.out_stream] = max(reach) + lags[e.out_stream]
        delay = steady[f["long"]] + plan.engines[f["engine"]].timing().in_to_out
        period = max(period, int(np.ceil(delay * n_s / d_s)))
    for e in plan.engines:
        if e.streaming:
            continue
        ins = e.in_streams
        for s in ins:
            if len(plan.streams[s].readers) < 2:
                continue
            for t in ins:
                if t != s and t in longest[s]:
                    period = max(period, stream_cycles[s] + longest[s][t] + e.timing().compute_cycles + 3)
    return period


def write_cnn(model: Graph | CnnModel, outdir: Path, parallelism="balanced",
              _fifo_depths: dict | None = None) -> dict:
    """Render every engine, the forks and the top, then write them with ``verilog_info.json``
    and ``README.txt``. ``parallelism`` folds the MAC engines: a mode or a goal
    (``{"target_cycles": T}``, ``{"max_multipliers": N}``) of :mod:`.folding`.
    ``_fifo_depths`` (private, for tests): {"<join>.<port>": depth} replaces the
    analysis's skip FIFO depths."""
    q = model.graph if isinstance(model, CnnModel) else model
    plan = _plan(q, parallelism)
    files, info = _design_files(q, plan, _skip_fifos(plan, _fifo_depths))
    return write_files(Path(outdir), files, info)


def _design_files(q: Graph, plan: _Plan, fifos: list[dict]) -> tuple[dict[str, str], dict]:
    """Every source of the design, ``README.txt`` and the info (with the resource estimate)."""
    engines = plan.engines
    in_t, out_t = q.qtype(q.inputs[0]), q.qtype(q.outputs[0])
    n_in, n_out = int(np.prod(q.shape(q.inputs[0]))), int(np.prod(q.shape(q.outputs[0])))
    # each memory's placement (block RAM, LUT RAM, logic) made explicit, as estimated
    files = {f"{e.module}.v": place_memories(render("verilog", e.template, E=e.context())) for e in engines}
    top = _top_context(q, plan, fifos)
    if top["forks"]:
        files["nnf_fork.v"] = render("verilog", "fork.v.j2")
    if fifos:  # one module; the shapes of the memories in DP16KD tiles in the ECP5 flow
        shapes = {(f.words, f.width, f.address_bits) for f in (Fifo(g["depth"], g["width"]) for g in fifos)}
        banks = [{"m": m, "w": w, "ab": ab, "B": bram_bank(w, m, ab)} for m, w, ab in sorted(shapes)]
        files["nnf_fifo.v"] = render("verilog", "fifo.v.j2", banks=[b for b in banks if b["B"]])
    files[f"{TOP}.v"] = render("verilog", "graph_top.v.j2", **top)
    ii, latency, graph = _timing(plan, n_in, fifos)
    macs = sum(e.macs for e in engines)
    mults = sum(e.multipliers for e in engines)
    lut_mults = sum(e.lut_multipliers for e in engines)
    info = {
        "top": TOP, "model": sanitize(q.name, prefix="model"), "parallelism": plan.folding["mode"],
        "folding": plan.folding,
        "n_in": n_in, "n_out": n_out, "in_type": type_info(in_t), "out_type": type_info(out_t),
        "input_shape": list(q.shape(q.inputs[0])), "input_order": list(plan.in_perm),
        "stream_order": ("input: x.transpose(input_order).reshape(-1) per sample"
                         + (" (channels-last)" if list(plan.in_perm) != sorted(plan.in_perm) else "")
                         + "; output in the model's flat order; one element per beat"),
        "layers": [_layer_info(e, graph[e.index]) for e in engines],
        "forks": [{"stream": f["stream"], "readers": f["n"]} for f in top["forks"]],
        "fifos": [{"stream": u["in"], "join": f["join"], "port": f["port"], "depth": f["depth"],
                   "width": f["width"], "need": f["need"], "frame": f["frame"], "why": f["why"]}
                  for f, u in zip(fifos, top["fifos"])],
        "totals": {"latency_cycles": latency, "ii_cycles": ii,
                   "multipliers": mults, "lut_multipliers": lut_mults,
                   "macs": macs,
                   # MACs per inference over the multiplier-cycles (blocks and LUT multipliers
                   # alike) spent on one: 1.0 when every multiplier works every cycle at the
                   # design's rate
                   "efficiency": round(macs / (ii * (mults + lut_mults)), 4) if mults + lut_mults else None,
                   "frame_memory_words": sum(e.frame_memory_words for e in engines),
                   "fifo_words": sum(f["depth"] for f in fifos)},
        "timing_notes": "estimates: ii_cycles = the slowest engine's frame: a line engine max(load, "
                        "compute) + 3 (it loads while it computes), a frame-buffered engine (gather, "
                        "Concat, reduce, interpolation) load + compute + 3, where an engine loads no "
                        "faster than its slowest producer streams, a streaming join max(load, n_out) + 3; at least the fork-join "
                        "bound of a frame-buffered join (Concat) or of a skip FIFO smaller than its need; "
                        "latency_cycles = the longest path of the engines' in-to-out cycles (+2 through a "
                        "skip FIFO)",
        "files": sorted(files) + [f"{AXIS_TOP}.v", "verilog_info.json", "README.txt"],
    }
    files[f"{AXIS_TOP}.v"], info["axis"] = axis_wrapper(info, in_t, out_t)
    annotate_estimate(info, engines, plan.folding.get("arch", "ecp5"))  # resource estimate (codegen/estimate.py)
    files["README.txt"] = render("verilog", "graph_readme.txt.j2", info=info)
    return files, info


def _layer_info(e: Engine, t: Timing) -> dict:
    """An engine's entry in ``verilog_info.json`` (``t``: its timing in the graph)."""
    return {"name": e.name, "op": e.op, "module": e.module, "file": f"{e.module}.v",
            "inputs": [f"s{s}" for s in e.in_streams], "output": f"s{e.out_stream}",
            "tensor": e.tensor, "layout": list(e.layout),
            "n_in": e.n_in, "n_out": e.n_out, "taps": e.get("taps", 1), "pe": e.get("PE", 1), "simd": e.get("S", 1),
            "depthwise_lanes": bool(e.get("depthwise")), "row_fold": bool(e.get("flat")),
            "latency_cycles": t.in_to_out, "ii_cycles": t.frame_cycles,
            "multipliers": e.multipliers, "lut_multipliers": e.lut_multipliers,
            "acc_width": e.get("aw"), "pipeline_stages": e.get("pipe", 0),
            "frame_memory_words": e.frame_memory_words, **t.as_dict()}
