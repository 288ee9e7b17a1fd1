"""The quantized graph of a design as a PyTorch module whose forward pass is the golden
model's integer arithmetic (:mod:`.ops`, :mod:`.ste`), with trainable weights.

Each Dense / Conv layer's weights and bias are trained as real-valued shadows, put onto
the design's integer grid in every forward pass (``clamp(round_half_up(w / s))``, identity
gradient inside the range). The scales are the design's (learned only in real-scale
designs, ``scales``: a log factor per layer or per output channel that moves the rescale's
multipliers, :meth:`_Linear.rescale`): ``s`` of output channel ``n`` is the one its rescale implies, ``scale(W)[n] = ratio[n] * scale(y) /
scale(x)`` with ``ratio[n] = rq_mult[n] * 2**-rq_shift`` (a power of two for per-tensor and
per-channel power-of-two weights, any real scale for models quantized elsewhere), and the
bias is stored at the accumulator's scale ``scale(x) * scale(W)[n]``.

Compression stays what it was:

- magnitude-pruned layers keep their zeros (a fixed mask: the weights that are 0 stay 0);
- weight-shared layers train one value per shared integer (the cluster's members move
  together, so a layer never has more distinct weights than before);
- low-rank and channel-pruned layers are ordinary smaller layers.

:meth:`IntegerModule.graph` writes the integers back into a copy of the quantized graph,
with each accumulator width derived again from the new weights
(:func:`nnforge.passes.quantize.set_linear_weights`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..ir import Graph
from ..ir.fixed import real_multiplier
from ..ir.ops import op_def
from ..ir.ops.dense import requant_params, rounding_of
from ..passes.prequant import real_type
from ..passes.quantize import accumulator_width, set_linear_weights
from .ops import lower_node
from .ste import round_clamp


def weight_scales(node, g: Graph) -> np.ndarray:
    """The real value of one weight LSB per output channel of a Dense / Conv ``node``."""
    mult, shift = requant_params(node, g)
    ratio = mult.astype(np.float64) * 2.0 ** -shift
    return ratio * g.qtype(node.outputs[0]).scale / g.qtype(node.inputs[0]).scale


def pruned_layers(compression: list[dict]) -> set[str]:
    return {name for c in compression if c.get("kind") == "magnitude" for name in c.get("layers", {})}


def shared_layers(compression: list[dict]) -> set[str]:
    return {name for c in compression if c.get("kind") == "share" for name in c.get("layers", {})}


SCALE_PACE = 1.0  # a learned scale's learning rate, relative to the weights' share of their range
MIN_PACE = 7  # the learning rate's scale in grid steps is at least a 4-bit grid's (hi = 7)

# how far past the grid's end a shadow may go (in steps): less than half a step, so that it
# still rounds to the end and the layer's range (and so its format) stays what it is
EDGE = 0.49


def _start(w_q: np.ndarray, w_float: np.ndarray | None, s: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The shadow weights to start from, in grid steps: the float model's weight where it
    rounds to the design's integer (its place within the step, so that training does not
    move every weight across a rounding edge at once), else the integer itself."""
    start = np.clip(w_q.astype(np.float64), lo, hi)
    if w_float is None or np.shape(w_float) != w_q.shape:
        return start
    v = np.asarray(w_float, np.float64) / s.reshape((-1,) + (1,) * (w_q.ndim - 1))
    same = np.floor(v + 0.5) == w_q
    return np.clip(np.where(same, v, start), lo - EDGE, hi + EDGE)


def same_structure(a: Graph, b: Graph) -> bool:
    """Whether two quantized graphs have the same nodes (names, ops, inputs) and constant
    shapes: the same design up to its numbers."""
    na, nb = {n.name: n for n in a.topo()}, {n.name: n for n in b.topo()}
    if na.keys() != nb.keys() or a.inputs != b.inputs or a.outputs != b.outputs:
        return False
    if any(na[k].op != nb[k].op or list(na[k].inputs) != list(nb[k].inputs) for k in na):
        return False
    return a.consts.keys() == b.consts.keys() and all(np.shape(a.consts[k]) == np.shape(b.consts[k]) for k in a.consts)


GLOBAL_CAP = 0.95  # global pruning leaves every layer at least 5% of its weights


class _Linear(torch.nn.Module):
    """One Dense / Conv layer's trainable weights: shadows in real units, or one value per
    shared integer; the masks and grids fixed."""

    def __init__(self, node, g: Graph, pruned: bool, shared: bool, w_float: np.ndarray | None,
                 gains: int = 0) -> None:
        super().__init__()
        w_name, b_name = node.inputs[1], node.inputs[2]
        w_q, b_q = g.consts[w_name].astype(np.int64), g.consts[b_name].astype(np.int64)
        w_t = g.qtype(w_name)
        s = weight_scales(node, g)
        self.node = node.name
        # a symmetric grid, as the quantizer makes it (a weight reaching -2^(b-1) would make
        # the compiler pick a coarser step when the design is quantized again), unless the
        # design already uses that integer
        self.lo, self.hi = (w_t.lo if (w_q == w_t.lo).any() else max(w_t.lo, -w_t.hi)), w_t.hi
        self.out_hi = g.qtype(node.outputs[0]).hi
        self.register_buffer("w_scale", torch.as_tensor(s))
        self.register_buffer("x_scale", torch.as_tensor(g.qtype(node.inputs[0]).scale))
        # the bias is trained in units of the output's LSB: b_step accumulator LSBs each
        self.register_buffer("b_step", torch.as_tensor(g.qtype(node.outputs[0]).scale
                                                       / (s * g.qtype(node.inputs[0]).scale)))
        self.register_buffer("mask", torch.as_tensor(w_q != 0) if pruned else None)
        self.bias = torch.nn.Parameter(torch.as_tensor(b_q / self.b_step.numpy()))
        if shared:  # the layer's distinct integers, each one trainable value (integer units)
            values, index = np.unique(w_q, return_inverse=True)
            self.register_buffer("index", torch.as_tensor(index.reshape(w_q.shape)))
            self.values = torch.nn.Parameter(torch.as_tensor(values.astype(np.float64)))
            self.weight = None
        else:
            self.index = self.values = None
            self.weight = torch.nn.Parameter(torch.as_tensor(_start(w_q, w_float, s, self.lo, self.hi)))
        # learned scales (real-scale designs): the log of a factor on each output channel's
        # weight scale (``gains == 1``: one for the layer, a per-tensor design stays one),
        # which moves the rescale's multiplier; the bias keeps its real value
        self.gain = torch.nn.Parameter(torch.zeros(gains, dtype=torch.float64)) if gains else None
        self._node, self._x_t = node, g.qtype(node.inputs[0])
        mult, shift = requant_params(node, g)
        self.register_buffer("ratio", torch.as_tensor(mult.astype(np.float64) * 2.0 ** -shift))

    def integers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weights and the bias on their integer grids (float64 holding integers)."""
        if self.values is not None:
            w = round_clamp(self.values, self.lo, self.hi)[self.index]
        else:
            w = round_clamp(self.weight, self.lo, self.hi)
        if self.mask is not None:
            w = w * self.mask
        b = self.bias * self.b_step
        if self.gain is not None:  # the bias at the accumulator's moved scale
            b = b * torch.exp(-self.gain)
        return w, b + (torch.floor(b + 0.5) - b).detach()  # rounded, straight through

    def rescale(self, w: torch.Tensor, b: torch.Tensor) -> tuple[np.ndarray, int, torch.Tensor] | None:
        """With learned scales: the multipliers and the shift for integers ``w``, ``b`` (the
        compiler's rule, :func:`nnforge.ir.fixed.real_multiplier` within the width the
        accumulator leaves) and the factor ``exp(gain - gain)`` (1, carrying the gains'
        gradient); None without."""
        if self.gain is None:
            return None
        g = self.gain.detach().numpy()
        ratio = np.broadcast_to(self.ratio.numpy() * np.exp(g), self.ratio.shape)
        aw = accumulator_width(self._node, self._x_t, np.rint(w.detach().numpy()).astype(np.int64),
                               np.rint(b.detach().numpy()).astype(np.int64))
        mult, shift = real_multiplier(ratio, max_bits=min(31, 62 - aw))
        return mult, shift, torch.exp(self.gain - self.gain.detach()).expand(len(self.ratio))

    def magnitudes(self) -> torch.Tensor | None:
        """Each weight's real magnitude relative to the layer's largest (0 where pruned;
        ``None`` for shared weights, which keep their shared values)."""
        if self.values is not None:
            return None
        scale = self.w_scale if self.gain is None else self.w_scale * torch.exp(self.gain.detach())
        w = self.weight.detach().abs() * scale.reshape((-1,) + (1,) * (self.weight.ndim - 1))
        if self.mask is not None:
            w = w * self.mask
        top = w.max()
        return w / top if top > 0 else w

    @torch.no_grad()
    def prune_(self, k: int) -> None:
        """Set the ``k`` smallest of the layer's remaining weights (by real magnitude) to 0
        for good: the mask only ever loses weights (gradual magnitude pruning)."""
        w = self.magnitudes()
        if w is None or k <= 0:
            return
        keep = torch.ones_like(self.weight, dtype=torch.bool) if self.mask is None else self.mask.clone()
        order = torch.argsort(torch.where(keep, w, torch.full_like(w, float("inf"))).reshape(-1), stable=True)
        keep.view(-1)[order[:k]] = False
        self.mask = keep
        self.weight.mul_(keep)

    def zeros(self) -> int:
        return 0 if self.mask is None else int((~self.mask).sum())

    def param_groups(self, lr: float) -> list[dict]:
        """Adam's parameter groups: ``lr`` is a share of the range per update, so each
        shadow moves ``lr * hi`` steps of its grid (the bias ``lr * hi`` steps of the
        output's): 8-bit weights learn at the pace of 4-bit ones, relative to their range.
        Grids narrower than 4 bits keep the 4-bit pace in steps (``hi`` at least
        :data:`MIN_PACE`): a 2-bit weight would otherwise need hundreds of updates for one step."""
        w = self.weight if self.values is None else self.values
        groups = [{"params": [w], "lr": lr * max(self.hi, MIN_PACE)},
                  {"params": [self.bias], "lr": lr * max(self.out_hi, MIN_PACE)}]
        if self.gain is not None:  # a log factor: SCALE_PACE * lr of the scale per update
            groups.append({"params": [self.gain], "lr": lr * SCALE_PACE})
        return groups

    @torch.no_grad()
    def clamp_(self) -> None:
        """Keep the shadows within :data:`EDGE` of the grid's ends: a weight pushed past them
        would drift away with no effect on the forward pass, and could no longer come back
        within a few updates (it also keeps the layer's range, so its format, as it is)."""
        (self.weight if self.values is None else self.values).clamp_(self.lo - EDGE, self.hi + EDGE)

    @torch.no_grad()
    def real(self) -> tuple[np.ndarray, np.ndarray]:
        """The shadow weights and bias in real units (not rounded)."""
        w = self.weight if self.values is None else self.values[self.index]
        if self.mask is not None:
            w = w * self.mask
        rows = (-1,) + (1,) * (w.ndim - 1)
        w_real = w.numpy() * self.w_scale.numpy().reshape(rows)
        return w_real, (self.bias * self.b_step).numpy() * self.w_scale.numpy() * float(self.x_scale)


class IntegerModule(torch.nn.Module):
    """``forward(x_int)``: the design's output integers (float64) for integer inputs ``x_int``
    (float64 or int64, batch first), equal to the golden model's on every element;
    ``logits(x_int)``: the same scaled to real values (what a loss sees)."""

    def __init__(self, qgraph: Graph, compression: list[dict] | None = None, float_graph: Graph | None = None,
                 scales: str | None = None) -> None:
        """``scales``: learn the weight scales of the layers with real-scale rescales,
        ``"tensor"`` one per layer, ``"channel"`` one per output channel (None: they stay)."""
        super().__init__()
        g = qgraph.copy()
        self._g = g
        pruned, shared = pruned_layers(compression or []), shared_layers(compression or [])
        self.steps = [(node, lower_node(node, g)) for node in g.topo()]
        self.layers = torch.nn.ModuleDict()
        self._layer_of: dict[str, str] = {}
        float_ops = {n.name: n.op for n in float_graph.topo()} if float_graph is not None else {}
        for node, _ in self.steps:
            if (op_def(node.op).has(linear=True) and all(g.is_const(t) for t in node.inputs[1:])
                    and float_ops.get(node.name, node.op) == node.op):
                # (a layer whose float node is another op the compiler made: an average pool
                # as a depthwise Conv of ones, with real scales; its weights are not the model's)
                key = f"l{len(self.layers)}"
                w_float = float_graph.consts.get(node.inputs[1]) if float_graph is not None else None
                gains = 0
                if scales is not None and node.attrs.get("rq_mult") is not None and rounding_of(node) == "half_up":
                    gains = g.shape(node.inputs[1])[0] if scales == "channel" else 1
                self.layers[key] = _Linear(node, g, node.name in pruned, node.name in shared, w_float, gains)
                self._layer_of[node.name] = key
        trained = {t for n in self._layer_of for t in g.node(n).inputs[1:]}
        self._const_buffers: dict[str, str] = {}  # the other constants, as buffers
        for name in sorted(set(g.consts) - trained):
            self._const_buffers[name] = f"c{len(self._const_buffers)}"
            self.register_buffer(self._const_buffers[name], torch.as_tensor(np.asarray(g.consts[name], np.float64)))
        self.out_scale = g.qtype(g.outputs[0]).scale

    def forward(self, x_int: torch.Tensor) -> torch.Tensor:
        g = self._g
        env = {g.inputs[0]: torch.as_tensor(x_int).to(torch.float64)}
        for name, buf in self._const_buffers.items():
            env[name] = getattr(self, buf)
        rescales = {}
        for node_name, key in self._layer_of.items():
            w, b = self.layers[key].integers()
            node = g.node(node_name)
            env[node.inputs[1]], env[node.inputs[2]] = w, b
            rq = self.layers[key].rescale(w, b)
            if rq is not None:
                rescales[node_name] = rq
        for node, step in self.steps:
            ins = [env[t] for t in node.inputs]
            outs = step(ins, rescales[node.name]) if node.name in rescales else step(ins)
            for t, v in zip(node.outputs, outs, strict=True):
                env[t] = v
        return env[g.outputs[0]]

    @property
    def source(self) -> Graph:
        """The quantized graph the module was built from (not to be changed)."""
        return self._g

    def logits(self, x_int: torch.Tensor) -> torch.Tensor:
        y = self.forward(x_int)
        return y.reshape(len(y), -1) * self.out_scale

    def clamp_(self) -> None:
        for layer in self.layers.values():
            layer.clamp_()

    def param_groups(self, lr: float) -> list[dict]:
        return [group for layer in self.layers.values() for group in layer.param_groups(lr)]

    def prune_(self, sparsity: float, scope: str = "layer") -> None:
        """Prune to ``sparsity``: each trained layer's smallest weights (``scope="layer"``),
        or the network's smallest relative to their layer's largest (``"global"``: a layer
        whose weights matter less loses more of them, none more than :data:`GLOBAL_CAP`)."""
        layers = [layer for layer in self.layers.values() if layer.values is None]
        if scope == "layer":
            for layer in layers:
                layer.prune_(int(round(sparsity * layer.weight.numel())) - layer.zeros())
            return
        total = sum(layer.weight.numel() for layer in layers)
        need = int(round(sparsity * total)) - sum(layer.zeros() for layer in layers)
        if need <= 0:
            return
        # per layer: its remaining weights' magnitudes in ascending order, at most as many
        # as the cap leaves it to lose
        room = []
        for layer in layers:
            m = layer.magnitudes()
            remaining = m[layer.mask] if layer.mask is not None else m.reshape(-1)
            cap = max(0, int(GLOBAL_CAP * layer.weight.numel()) - layer.zeros())
            room.append(torch.sort(remaining).values[:cap])
        pool = torch.cat(room)
        need = min(need, len(pool))
        if need <= 0:
            return
        cut = torch.sort(pool).values[need - 1]
        below = [int((r < cut).sum()) for r in room]
        at = [int((r == cut).sum()) for r in room]
        extra = need - sum(below)  # ties at the cut: the first layers first
        for layer, b, a in zip(layers, below, at):
            take = min(a, extra)
            extra -= take
            layer.prune_(b + take)

    def sparsity(self) -> dict[str, dict]:
        """Per pruned layer (by node name): its weights and how many are 0 (a magnitude-pruning
        record's ``layers``)."""
        out = {}
        for node_name, key in self._layer_of.items():
            layer = self.layers[key]
            if layer.mask is not None:
                out[node_name] = {"weights": int(layer.mask.numel()), "zeros": int((~layer.mask).sum())}
        return out

    @torch.no_grad()
    def float_graph(self, like: Graph) -> Graph:
        """A copy of the float graph ``like`` (the design's tensor names) holding the shadow
        weights in real units: quantized again with the design's formats, it gives the
        module's integers."""
        f = like.copy()
        for node_name, key in self._layer_of.items():
            node = self._g.node(node_name)
            w, b = self.layers[key].real()
            f.consts[node.inputs[1]] = w
            f.consts[node.inputs[2]] = b
        return f

    @torch.no_grad()
    def graph(self) -> Graph:
        """A copy of the quantized graph holding the trained integers."""
        q = self._g.copy()
        for node_name, key in self._layer_of.items():
            layer = self.layers[key]
            w, b = layer.integers()
            rq = layer.rescale(w, b)
            node = q.node(node_name)
            if rq is not None:  # the learned scales: the rescale and the weights' nominal type
                mult, shift, _ = rq
                q.replace_node(node_name, node.with_(attrs={**node.attrs, "rq_mult": tuple(int(v) for v in mult),
                                                            "rq_shift": int(shift)}))
                node = q.node(node_name)
                w_t = q.qtype(node.inputs[1])
                q.set_qtype(node.inputs[1], real_type(w_t.width, float(weight_scales(node, q).max()), w_t.signed,
                                                      w_t.bounds))
            set_linear_weights(q, node, np.rint(w.numpy()).astype(np.int64), np.rint(b.numpy()).astype(np.int64))
        return q
