"""Rewrite rules over the float graph: a pattern, the reason it does not apply, the
replacement, and the algebra in the docstring. :data:`RULES` runs first in
:data:`nnforge.passes.FLOAT_PIPELINE`, in order, once each."""

from __future__ import annotations

RULES: tuple = ()
