"""Folding a constant zero Pad into the Conv that reads it."""

from __future__ import annotations

from ..ir import Graph


def fold_pad_into_conv(g: Graph) -> bool:
    """``Conv(Pad(x, p, value=0), W, b, pads=q)`` -> ``Conv(x, W, b, pads=q + p)``.

    A Conv already pads its input with zeros, so padding ``x`` by ``p`` zeros and then by
    ``q`` zeros is padding it by ``p + q`` once: per spatial axis ``i`` (per-sample axis
    ``i + 1``), ``begin'_i = q_i + p_{1+i}`` and ``end'_i = q_{nd+i} + p_{r+1+i}`` with ``r``
    the per-sample rank. Folded only when the Pad's value is 0, it pads no channel, every
    reader of its output is a Conv reading it as ``x`` and it is not a graph output; the
    Pad is then removed. Any other Pad stays (float only; quantization refuses it).
    """
    changed = False
    for pad in [n for n in g.topo() if n.op == "Pad"]:
        out = pad.outputs[0]
        readers = g.consumers(out)
        p = tuple(int(v) for v in pad.attr("pads"))
        r = len(p) // 2
        if (float(pad.attr("value", 0.0)) != 0.0 or p[0] or p[r] or not readers or out in g.outputs
                or any(c.op != "Conv" or c.inputs[0] != out or out in c.inputs[1:] for c in readers)):
            continue
        nd = r - 1
        for conv in readers:
            q = tuple(conv.attr("pads") or (0,) * (2 * nd))
            new = tuple(q[i] + p[1 + i] for i in range(nd)) + tuple(q[nd + i] + p[r + 1 + i] for i in range(nd))
            g.replace_node(conv.name, conv.with_(inputs=(pad.inputs[0], *conv.inputs[1:]),
                                                 attrs={**conv.attrs, "pads": new}))
        g.remove_node(pad.name)
        changed = True
    if changed:
        g.prune()
    return changed
