"""Per-target lowering registries: which IR ops a target implements, and how.

Each target keeps one :class:`Lowerings` table and registers one function per op with
``@LOWERINGS.lowers("Conv")`` (several ops may share a function). "What does this target
support" is the table's keys; :meth:`Lowerings.check` refuses a graph with an op outside
it, naming the node, before any file is written. Ops sharing a trait (every table op,
say) are registered by :meth:`Lowerings.lowers_all` over the names the op registry
derives, so a new table op is supported by every target without editing it.
"""

from __future__ import annotations

from typing import Callable, Iterable

from .errors import BackendError
from .naming import sanitize


def registrar(table: dict[str, Callable], what: str) -> Callable[..., Callable[[Callable], Callable]]:
    """The decorator of a per-engine table (op -> function, e.g. a map engine's values):
    ``@registrar(TABLE, "...")("Max", "Min")`` registers the function under each op, and
    refuses a second function for an op, as :meth:`Lowerings.lowers` does for a target."""
    def named(*ops: str) -> Callable[[Callable], Callable]:
        def register(fn: Callable) -> Callable:
            for op in ops:
                if table.get(op, fn) is not fn:
                    raise ValueError(f"{what}: op {op} has two functions")
                table[op] = fn
            return fn
        return register
    return named


class UnsupportedOp(BackendError):
    """An op the target has no lowering for (nothing has been written)."""


class Lowerings:
    def __init__(self, target: str) -> None:
        self.target = target
        self._fns: dict[str, Callable] = {}

    def lowers(self, *ops: str) -> Callable[[Callable], Callable]:
        """Decorator: register the function as this target's lowering of ``ops``."""
        def register(fn: Callable) -> Callable:
            self.lowers_all(ops, fn)
            return fn
        return register

    def lowers_all(self, ops: Iterable[str], fn: Callable) -> None:
        for op in ops:
            if op in self._fns and self._fns[op] is not fn:
                raise ValueError(f"target {self.target}: op {op} has two lowerings")
            self._fns[op] = fn

    def __contains__(self, op: str) -> bool:
        return op in self._fns

    def __getitem__(self, op: str) -> Callable:
        try:
            return self._fns[op]
        except KeyError:
            raise UnsupportedOp(f"target {self.target!r} cannot implement op {op}; "
                                f"supported ops: {', '.join(sorted(self._fns))}") from None

    def ops(self) -> frozenset[str]:
        return frozenset(self._fns)

    def check(self, graph) -> None:
        """Refuse the first node whose op this target cannot implement."""
        for node in graph.topo():
            if node.op not in self._fns:
                raise UnsupportedOp(f"target {self.target!r} cannot implement node {sanitize(node.name)!r} "
                                    f"(op {node.op}); supported ops: {', '.join(sorted(self._fns))}")
