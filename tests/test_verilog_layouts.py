"""Stream layouts of the map, join and gather engines (codegen/verilog_map.py,
codegen/verilog_join.py) and the reorder engine, unit level (not through the planner).

A stream of a tensor of per-sample shape ``s`` in layout ``perm`` carries
``x.transpose(perm).reshape(-1)``. Python checks run every builder on every layout of
rank-3 tensors against numpy (constants' ROM sequences, concatenation blocks, gather
addresses); then single engines, built with channels-last layouts and rendered alone,
run in Verilator/cocotb behind a small ``nnforge_top`` wrapper (``out_last``, and for a
join one input stream split over its ports: the first ``n0`` beats of a sample to
``p0``, the next ``n1`` to ``p1``) on inputs over the engine's whole input types
(extremes included) plus the golden intermediate tensors of the compiled model, and must
return the golden outputs, in the output layout, exactly."""

import functools
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.codegen.lower import BackendError
from nnforge.codegen.render import render
from nnforge.codegen.verilog_join import gather_engine, join_engine, reorder_engine
from nnforge.codegen.verilog_streams import same_order, stream_strides
from nnforge.codegen.verilog_cnn import elementwise_or_join
from nnforge.codegen.verilog_map import map_engine
from nnforge.ir import FixedType, ops, run_int
from nnforge.sim import verilog as sim_verilog
from nnforge.sim.progress import QUIET
from nnforge.sim.tools import find_tool, run_tool, verilator_env


def _cl(rank):
    """Channels last."""
    return tuple(range(1, rank)) + (0,)


def _stream(a, perm):
    """(N, *shape) samples -> (N, n) streams in layout ``perm``."""
    return np.asarray(a).transpose((0, *(p + 1 for p in perm))).reshape(len(a), -1)


# ----------------------------------------------------------------------------- designs

def _model(nodes, inits, in_shape, out_shape):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@functools.lru_cache(maxsize=None)
def _design2d():
    """x (3, 4, 5) -> BN -> LeakyRelu -> Add(per-channel k) -> Relu -> Mul(per-channel k);
    Conv of x; Add(mu, bn) of two activations; Concat of channels with the Conv; nearest
    Resize (1, 2, 3); Transpose (1, 2, 0)."""
    rng = np.random.default_rng(0)
    c, h, w = 3, 4, 5
    inits = {"bn_s": rng.uniform(.5, 2, c), "bn_b": rng.normal(0, .3, c), "bn_m": rng.normal(0, .3, c),
             "bn_v": rng.uniform(.5, 2, c), "kc": rng.normal(0, .5, (c, 1, 1)), "km": rng.normal(0, 1, (c, 1, 1)),
             "cw": rng.normal(0, .3, (4, c, 3, 3)), "cb": rng.normal(0, .1, 4), "sc": np.array([1, 1, 2, 3])}
    nodes = [helper.make_node("BatchNormalization", ["x", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]),
             helper.make_node("LeakyRelu", ["bn"], ["lr"], alpha=0.1),
             helper.make_node("Add", ["lr", "kc"], ["ad"]),
             helper.make_node("Relu", ["ad"], ["re"]),
             helper.make_node("Mul", ["re", "km"], ["mu"]),
             helper.make_node("Conv", ["x", "cw", "cb"], ["cv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["mu", "bn"], ["s2"]),
             helper.make_node("Concat", ["s2", "cv"], ["cat"], axis=1),
             helper.make_node("Resize", ["cat", "", "sc"], ["rs"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Transpose", ["rs"], ["y"], perm=[0, 2, 3, 1])]
    model = _model(nodes, inits, (c, h, w), (8, 15, 7))
    return nnforge.compile(model, calibration=rng.normal(0, 1, (64, c, h, w)).astype(np.float32), bits=6)


@functools.lru_cache(maxsize=None)
def _design1d():
    """x (4, 6) -> Conv1d (3 channels) -> BN (a 1-D signal)."""
    rng = np.random.default_rng(1)
    c, n = 4, 6
    inits = {"cw": rng.normal(0, .4, (3, c, 3)), "cb": rng.normal(0, .1, 3), "bn_s": rng.uniform(.5, 2, 3),
             "bn_b": rng.normal(0, .3, 3), "bn_m": rng.normal(0, .3, 3), "bn_v": rng.uniform(.5, 2, 3)}
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["cv"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("LeakyRelu", ["cv"], ["lr"], alpha=0.2),
             helper.make_node("BatchNormalization", ["lr", "bn_s", "bn_b", "bn_m", "bn_v"], ["y"])]
    model = _model(nodes, inits, (c, n), (3, n))
    return nnforge.compile(model, calibration=rng.normal(0, 1, (64, c, n)).astype(np.float32), bits=7)


def _node(design, op, nth=0):
    found = [n for n in design.qgraph.topo() if n.op == op]
    return found[nth]


def _producer(design, tensor):
    return next(n for n in design.qgraph.topo() if tensor in n.outputs)


def _acts(q, node):
    return [t for t in node.inputs if not q.is_const(t)]


def _samples(t: FixedType, shape, rng, n_rand=4):
    """Integers of ``t``: all lo, all hi, the two corners mixed, then random."""
    x = rng.integers(t.lo, t.hi + 1, (3 + n_rand, *shape))
    x[0], x[1] = t.lo, t.hi
    x[2] = rng.choice([t.lo, t.hi], shape)
    return x


def _golden(design, node, rng):
    """(inputs per activation, output): the golden intermediate tensors of the model on
    inputs with its extremes, then samples over each activation's whole type, run
    through the node's integer reference (which must agree with the model's)."""
    q = design.qgraph
    t = design.input_type
    x = rng.integers(t.lo, t.hi + 1, (4, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    env = run_int(q, x, keep=True)
    acts = _acts(q, node)
    real = [env[a] for a in acts]
    ref = ops.int_ref(node, q, [env[i] for i in node.inputs])[0]
    assert np.array_equal(ref, env[node.outputs[0]])
    synth = [_samples(q.qtype(a), tuple(q.shape(a)), rng) for a in acts]
    ins = [np.concatenate([r, s]) for r, s in zip(real, synth)]
    full = {a: v for a, v in zip(acts, ins)}
    y = ops.int_ref(node, q, [full[i] if i in full else q.consts[i].astype(np.int64) for i in node.inputs])[0]
    return ins, np.asarray(y, dtype=np.int64)


# ----------------------------------------------------------------------------- simulation of one engine

def _wrapper(e, in_w, sizes, out_w, n_out):
    """``nnforge_top``: the engine behind the testbench's ports; one input stream split
    over the engine's ports (``sizes[k]`` beats per sample each, in port order)."""
    v = ["`default_nettype none", "module nnforge_top (", "    input  wire clk,", "    input  wire rst,",
         "    input  wire in_valid,", "    output wire in_ready,", f"    input  wire [{in_w - 1}:0] in_data,",
         "    output wire out_valid,", "    input  wire out_ready,", f"    output wire [{out_w - 1}:0] out_data,",
         "    output wire out_last", ");"]
    conn = []
    if e["ports"] == ["in"]:
        conn.append(".in_valid(in_valid), .in_ready(in_ready), .in_data(in_data)")
    else:
        n_in = sum(sizes)
        v += ["    reg [31:0] icnt;", "    always @(posedge clk) begin",
              "        if (rst) icnt <= 32'd0;",
              f"        else if (in_valid & in_ready) icnt <= (icnt == 32'd{n_in - 1}) ? 32'd0 : icnt + 32'd1;",
              "    end"]
        base, ready = 0, []
        for k, (p, n) in enumerate(zip(e["ports"], sizes)):
            lo = f"(icnt >= 32'd{base}) & " if base else ""
            v += [f"    wire sel{k} = {lo}(icnt < 32'd{base + n});", f"    wire {p}_ready;"]
            conn.append(f".{p}_valid(in_valid & sel{k}), .{p}_ready({p}_ready), "
                        f".{p}_data(in_data[{e['P'][k]['w'] - 1}:0])")
            ready.append(f"(sel{k} & {p}_ready)")
            base += n
        v.append(f"    assign in_ready = {' | '.join(ready)};")
    v += [f"    {e['module']} u_engine (.clk(clk), .rst(rst), {', '.join(conn)},",
          "        .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data));",
          "    reg [31:0] ocnt;", "    always @(posedge clk) begin", "        if (rst) ocnt <= 32'd0;",
          f"        else if (out_valid & out_ready) ocnt <= (ocnt == 32'd{n_out - 1}) ? 32'd0 : ocnt + 32'd1;",
          "    end", f"    assign out_last = (ocnt == 32'd{n_out - 1});", "endmodule", "`default_nettype wire", ""]
    return "\n".join(v)


def _simulate(e, ins, in_types, out_t, tmp_path, backpressure=0.0):
    """Render ``e`` alone (lint-clean), wrap it, stream the per-port streams ``ins``
    ((N, n_k) each, concatenated per sample) and return the (N, n_out) outputs."""
    e = e.context()
    src = tmp_path / "v"
    src.mkdir()
    text = render("verilog", e["template"], E=e)
    (src / f"{e['module']}.v").write_text(text)
    run_tool([find_tool("verilator"), "--lint-only", "-Wall", "--top-module", e["module"], f"{e['module']}.v"],
             cwd=src, env=verilator_env(), what="verilator --lint-only -Wall")
    sizes = [s.shape[1] for s in ins]
    assert sum(sizes) == e["n_in"]
    in_w = max(t.width for t in in_types)
    (src / "nnforge_top.v").write_text(_wrapper(e, in_w, sizes, out_t.width, e["n_out"]))
    frame = e["n_in"] + e["n_out"] + 10
    info = {"top": "nnforge_top", "files": [f"{e['module']}.v", "nnforge_top.v"], "layers": [],
            "n_in": e["n_in"], "n_out": e["n_out"], "in_type": {"width": in_w}, "out_type": {"width": out_t.width},
            "totals": {"ii_cycles": frame, "latency_cycles": frame}}
    (src / "verilog_info.json").write_text(json.dumps(info))
    if len(in_types) == 1:
        x, in_t = ins[0], in_types[0]
    else:  # bit patterns of every port's type side by side: one unsigned stream
        x = np.concatenate([s & ((1 << t.width) - 1) for s, t in zip(ins, in_types)], axis=1)
        in_t = FixedType(in_w, 0, False)
    hw = SimpleNamespace(n_in=e["n_in"], n_out=e["n_out"], in_t=in_t, out_t=out_t)
    res = sim_verilog.run(hw, src, tmp_path / "b", x, QUIET, backpressure=backpressure)
    assert res.extra["out_last_ok"]
    return res.y


def _named(e, node, name):
    return e.placed(name=name, op=node.op, module=f"nnf_{name}")


def _check_node(design, node, in_perms, out_perm, build, tmp_path, backpressure=0.0, seed=0):
    q = design.qgraph
    rng = np.random.default_rng(seed)
    ins, y = _golden(design, node, rng)
    e = _named(build(q, node, "dut", {"in": list(in_perms), "out": out_perm}), node, "dut")
    acts = _acts(q, node)
    got = _simulate(e, [_stream(a, p) for a, p in zip(ins, in_perms)], [q.qtype(a) for a in acts],
                    q.qtype(node.outputs[0]), tmp_path, backpressure)
    want = _stream(y, out_perm)
    assert got.shape == want.shape and np.array_equal(got, want), int((got != want).sum())


# ----------------------------------------------------------------------------- python-level checks

PERMS3 = list(itertools.permutations(range(3)))


def _rom_sequence(e, n):
    """The constants (ROM words, as printed) the map engine uses for stream elements 0..n-1."""
    if not e["roms"]:
        return []
    i = np.arange(n)
    return [np.asarray(r["words"])[(i // e["R"]) % e["D"]] for r in e["roms"]]


def _same_numbers(e):
    """The map engine's numbers that do not depend on the layout (widths, requantization)."""
    return {k: v for k, v in e.items() if k not in ("rule", "roms", "R", "D") and k[:2] not in ("r_", "d_", "rb", "db")}


@pytest.mark.parametrize("op,nth", [("BatchNormalization", 0), ("Add", 0), ("Mul", 0), ("LeakyRelu", 0), ("Relu", 0)])
def test_map_constants_follow_the_layout(op, nth):
    d = _design2d()
    q = d.qgraph
    node = _node(d, op, nth)
    shape = tuple(q.shape(node.outputs[0]))
    n = int(np.prod(shape))
    ident = map_engine(q, node, "m").context()
    assert map_engine(q, node, "m", {"in": [(0, 1, 2)], "out": (0, 1, 2)}).context() == ident
    assert map_engine(q, node, "m", {"in": [None], "out": None}).context() == ident
    seq_id = _rom_sequence(ident, n)
    for perm in PERMS3:
        e = map_engine(q, node, "m", {"in": [perm], "out": perm}).context()
        for a, b in zip(seq_id, _rom_sequence(e, n)):
            assert np.array_equal(a.reshape(shape).transpose(perm).reshape(-1), b), perm
        assert _same_numbers(e) == _same_numbers(ident)
    if op in ("BatchNormalization", "Add", "Mul"):  # per-channel: every channel in turn, channels last
        assert (ident["R"], ident["D"]) == (shape[1] * shape[2], shape[0])
        e = map_engine(q, node, "m", {"in": [_cl(3)], "out": _cl(3)}).context()
        assert (e["R"], e["D"]) == (1, shape[0])
        assert "layout (1, 2, 0)" in e["rule"]


def test_map_position_constant_patterns():
    """Constants of other broadcast shapes find their (R, D) in the stream order."""
    d = _design2d()
    q = d.qgraph
    node = _node(d, "Mul")
    kname = next(t for t in node.inputs if q.is_const(t))
    saved = q.consts[kname]
    rng = np.random.default_rng(5)
    try:
        cases = [((1, 4, 5), _cl(3), (3, 20)), ((1, 4, 1), _cl(3), (15, 4)), ((1, 1, 5), _cl(3), (3, 5)),
                 ((3, 4, 5), _cl(3), (1, 60)), ((1, 1, 1), _cl(3), (60, 1)), ((3, 4, 1), (2, 0, 1), (1, 12)),
                 ((3, 1, 1), (2, 0, 1), (4, 3)), ((1, 4, 5), (1, 0, 2), (1, 60))]
        for kshape, perm, rd in cases:
            k = rng.integers(-5, 6, kshape)
            k.flat[0] = 7  # never constant
            if kshape == (1, 1, 1):
                k[...] = 3
            q.consts[kname] = k.astype(saved.dtype)
            e = map_engine(q, node, "m", {"in": [perm], "out": perm}).context()
            assert (e["R"], e["D"]) == rd, (kshape, perm)
            if e["D"] > 1:
                words = _rom_sequence(e, 60)[0]
                ref = map_engine(q, node, "m").context()
                want = _rom_sequence(ref, 60)[0].reshape(3, 4, 5).transpose(perm).reshape(-1)
                assert np.array_equal(words, want)
    finally:
        q.consts[kname] = saved


def test_concat_blocks_follow_the_layout():
    d = _design2d()
    q = d.qgraph
    node = _node(d, "Concat")
    acts = _acts(q, node)
    rng = np.random.default_rng(2)
    parts = [rng.integers(0, 100, (2, *q.shape(a))) for a in acts]
    cat = np.concatenate(parts, axis=1)
    for perm in PERMS3:
        e = join_engine(q, node, "c", {"in": [perm, perm], "out": perm}).context()
        streams = [_stream(p, perm) for p in parts]
        out, rp = [], [0] * len(parts)
        for _ in range(e["outer"]):
            for k, b in enumerate(e["blocks"]):
                out.append(streams[k][:, rp[k]:rp[k] + b])
                rp[k] += b
        assert np.array_equal(np.concatenate(out, axis=1), _stream(cat, perm)), perm
        assert e["n_in"] == sum(s.shape[1] for s in streams)
    e = join_engine(q, node, "c", {"in": [_cl(3)] * 2, "out": _cl(3)}).context()
    assert e["blocks"] == [3, 4] and e["outer"] == 20  # one block per input per pixel
    assert join_engine(q, node, "c").context() == join_engine(q, node, "c", {"in": [(0, 1, 2)] * 2, "out": (0, 1, 2)}).context()


def _gather_addresses(e):
    """The input-stream address of every output beat, as the gather template counts."""
    addr = np.zeros(1, dtype=np.int64)
    for dm in e["dims"]:
        axis = (np.arange(dm["D"] * dm["R"]) // dm["R"]) * dm["S"]
        addr = (addr[:, None] + axis[None, :]).reshape(-1)
    return addr


@pytest.mark.parametrize("op", ["Transpose", "Resize", "Reorder"])
def test_gather_addresses_all_layouts(op):
    d = _design2d()
    q = d.qgraph
    rng = np.random.default_rng(3)
    if op == "Reorder":
        t = "cv"
        x = rng.integers(0, 1000, (2, *q.shape(t)))
        y = x
    else:
        node = _node(d, op)
        t = node.inputs[0]
        x = rng.integers(0, 1000, (2, *q.shape(t)))
        y = ops.int_ref(node, q, [x])[0]
        assert gather_engine(q, node, "g").context() == gather_engine(
            q, node, "g", {"in": [(0, 1, 2)], "out": (0, 1, 2)}).context()
    for pin, pout in itertools.product(PERMS3, PERMS3):
        if op == "Reorder":
            e = reorder_engine(q, t, "g", pin, pout).context()
        else:
            e = gather_engine(q, node, "g", {"in": [pin], "out": pout}).context()
        a = _gather_addresses(e)
        assert len(a) == e["n_out"] and a.max() < e["n_in"]
        assert np.array_equal(_stream(x, pin)[:, a], _stream(y, pout)), (pin, pout)


def test_stream_strides():
    assert stream_strides((3, 4, 5), (0, 1, 2)) == [20, 5, 1]
    assert stream_strides((3, 4, 5), (1, 2, 0)) == [1, 15, 3]
    assert stream_strides((3, 6), (1, 0)) == [1, 3]
    assert same_order((3, 1, 1), (0, 1, 2), (1, 2, 0)) and same_order((1, 4, 5), (0, 1, 2), (1, 2, 0))
    assert not same_order((3, 4, 1), (0, 1, 2), (1, 2, 0))


def test_reorder_engine_contract():
    d = _design1d()
    q = d.qgraph
    e = reorder_engine(q, "cv", "ro", (0, 1), (1, 0)).context()
    n = 3 * 6
    assert e["template"] == "gather.v.j2" and e["ports"] == ["in"] and e["op"] == "Reorder"
    assert e["n_in"] == e["n_out"] == n and e["frame_memory_words"] == n
    assert e["multipliers"] == 0 and e["macs"] == 0
    assert e["timing"] == {"compute_cycles": n, "frame_cycles": 2 * n + 3, "in_to_out": n + 4}
    assert e["in_type"] == e["out_type"] == str(q.qtype("cv"))
    assert "Reorder" in render("verilog", e["template"], E=e).splitlines()[0]
    with pytest.raises(BackendError, match="not a permutation"):
        reorder_engine(q, "cv", "ro", (0, 1, 2), (1, 0)).context()


def test_refusals():
    d = _design2d()
    q = d.qgraph
    cl, ident = _cl(3), (0, 1, 2)
    for op in ("BatchNormalization", "Relu", "Add", "Mul"):  # Add/Mul with a constant: through the join dispatch too
        node = _node(d, op)
        for f in (map_engine, elementwise_or_join) if op in ("Add", "Mul") else (map_engine,):
            with pytest.raises(BackendError, match="keeps the layout"):
                f(q, node, "m", {"in": [cl], "out": ident})
    add2 = _node(d, "Add", 1)
    assert len(_acts(q, add2)) == 2
    with pytest.raises(BackendError, match="one layout"):
        join_engine(q, add2, "j", {"in": [cl, ident], "out": cl}).context()
    e = join_engine(q, add2, "j", {"in": [cl, cl], "out": cl}).context()
    assert e["n_in"] == 120 and "layout (1, 2, 0)" in e["rule"]
    cat = _node(d, "Concat")
    with pytest.raises(BackendError, match="one layout"):
        join_engine(q, cat, "j", {"in": [cl, cl], "out": ident}).context()
    with pytest.raises(BackendError, match="2 activation inputs"):
        join_engine(q, cat, "j", {"in": [cl], "out": cl}).context()
    with pytest.raises(BackendError, match="not a permutation"):
        gather_engine(q, _node(d, "Transpose"), "g", {"in": [(0, 1)], "out": cl}).context()
    with pytest.raises(BackendError, match="not a permutation"):
        map_engine(q, _node(d, "Relu"), "m", {"in": [(0, 0, 1)], "out": (0, 0, 1)}).context()


# ----------------------------------------------------------------------------- Verilator: single engines

@pytest.mark.parametrize("op,nth,bp", [("BatchNormalization", 0, 0.0), ("Add", 0, 0.3), ("Mul", 0, 0.0)])
def test_map_channels_last_exact(op, nth, bp, tmp_path):
    d = _design2d()
    _check_node(d, _node(d, op, nth), [_cl(3)], _cl(3), map_engine, tmp_path, bp)


def test_map_bn_1d_channels_last_exact(tmp_path):
    d = _design1d()
    _check_node(d, _node(d, "BatchNormalization"), [_cl(2)], _cl(2), map_engine, tmp_path, 0.2)


def test_concat_channels_last_exact(tmp_path):
    d = _design2d()
    _check_node(d, _node(d, "Concat"), [_cl(3)] * 2, _cl(3), join_engine, tmp_path, 0.3)


@pytest.mark.parametrize("op,pin,pout", [("Transpose", _cl(3), _cl(3)), ("Resize", _cl(3), _cl(3)),
                                         ("Resize", (0, 1, 2), _cl(3)), ("Transpose", _cl(3), (0, 1, 2))])
def test_gather_channels_last_exact(op, pin, pout, tmp_path):
    d = _design2d()
    _check_node(d, _node(d, op), [pin], pout, gather_engine, tmp_path, 0.2 if op == "Resize" else 0.0)


@pytest.mark.parametrize("dim,to_cl", [(2, True), (2, False), (1, True), (1, False)])
def test_reorder_exact(dim, to_cl, tmp_path):
    d = _design2d() if dim == 2 else _design1d()
    q = d.qgraph
    t = "cv"
    rank = len(q.shape(t))
    ident = tuple(range(rank))
    pin, pout = (ident, _cl(rank)) if to_cl else (_cl(rank), ident)
    rng = np.random.default_rng(dim)
    x = rng.integers(d.input_type.lo, d.input_type.hi + 1, (3, *d.input_shape))
    x[0], x[1] = d.input_type.lo, d.input_type.hi
    real = run_int(q, x, keep=True)[t]  # the golden intermediate tensor
    v = np.concatenate([real, _samples(q.qtype(t), tuple(q.shape(t)), rng)])
    e = reorder_engine(q, t, f"reorder_{dim}d", pin, pout)
    got = _simulate(e, [_stream(v, pin)], [q.qtype(t)], q.qtype(t), tmp_path, 0.25 if to_cl else 0.0)
    assert np.array_equal(got, _stream(v, pout))
