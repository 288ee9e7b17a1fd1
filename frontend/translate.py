"""ONNX op -> IR translators, registered by decorator.

A translator is ``fn(imp, onode) -> None``: it reads the ONNX node through the importer
``imp`` (``imp.activation_input(onode, i)``, ``imp.const(name)``, ``imp.attrs(onode)``)
and emits IR nodes with ``imp.emit(onode, op, inputs, attrs)``. The set of ONNX ops the
frontend accepts is this table's keys (plus whatever folds to constants).

``TRANSLATORS`` holds the ops of the default ONNX domain; ops of other domains (QONNX's
``Quant``, onnxruntime's ``com.microsoft`` QOperator ops) are registered with
``domains=`` and live in ``DOMAIN_TRANSLATORS``, keyed by (domain, op type).

``exact=`` states what the op computes on integer (or narrow float) model inputs, which
the float interpreter holds exactly in float32 (:mod:`.exact`): ``VALUES`` when its
results are some of its inputs' values (or constants of their type), ``ARITHMETIC`` for
integer arithmetic that is exact while every result stays within its type. An op without
it is refused on such inputs.
"""

from __future__ import annotations

from typing import Callable

DEFAULT_DOMAINS = ("", "ai.onnx")

TRANSLATORS: dict[str, Callable] = {}
DOMAIN_TRANSLATORS: dict[tuple[str, str], Callable] = {}

VALUES = "values"
ARITHMETIC = "arithmetic"
EXACT: dict[str, str] = {}  # ONNX op type -> VALUES | ARITHMETIC


def _register(table: dict, key, fn: Callable, what: str) -> None:
    if key in table and table[key] is not fn:
        raise ValueError(f"ONNX op {what} has two translators")
    table[key] = fn


def translates(*op_types: str, domains: tuple[str, ...] = DEFAULT_DOMAINS,
               exact: str | None = None) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(imp, onode)`` as the translator of the ONNX ``op_types``
    (of the default domain, or of each of ``domains``); ``exact``: see the module notes."""
    if exact not in (None, VALUES, ARITHMETIC):
        raise ValueError(f"exact must be {VALUES!r} or {ARITHMETIC!r}, not {exact!r}")

    def register(fn: Callable) -> Callable:
        for op in op_types:
            if exact is not None:
                EXACT[op] = exact
            for domain in domains:
                if domain in DEFAULT_DOMAINS:
                    _register(TRANSLATORS, op, fn, op)
                else:
                    _register(DOMAIN_TRANSLATORS, (domain, op), fn, f"{op} (domain {domain})")
        return fn
    return register


def translator_for(onode) -> Callable | None:
    """The translator of ONNX node ``onode`` (by its domain and op type), or None."""
    if onode.domain in DEFAULT_DOMAINS:
        return TRANSLATORS.get(onode.op_type)
    return DOMAIN_TRANSLATORS.get((onode.domain, onode.op_type))
