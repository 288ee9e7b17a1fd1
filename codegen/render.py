"""The one Jinja2 environment every backend renders its templates with, and what a
template calls (:func:`calls`, :func:`branches_calling`): a backend emits a runtime helper
exactly where its templates call it, read from the templates, not listed by hand."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

TEMPLATES = Path(__file__).resolve().parent.parent / "hls_templates"


@lru_cache(maxsize=None)
def environment(target: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / target)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _call(fn: str) -> re.Pattern:
    """A call of ``fn`` in template text (a Jinja expression may precede it: ``{{ prefix }}fn(``)."""
    return re.compile(rf"\b{re.escape(fn)}\s*\(")


@lru_cache(maxsize=None)
def calls(target: str, template: str, fn: str) -> bool:
    """True when ``template`` of ``target``, or a template it imports or includes, calls
    the function ``fn``."""
    env = environment(target)
    todo, seen = [template], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = env.loader.get_source(env, name)[0]
        if _call(fn).search(source):
            return True
        todo += [t for t in meta.find_referenced_templates(env.parse(source)) if t]
    return False


@lru_cache(maxsize=None)
def branches_calling(target: str, template: str, fn: str, attr: str = "kind") -> frozenset[str]:
    """The values ``k`` of the branches ``{% if s.<attr> == "k" %}`` / ``{% elif ... %}`` of
    ``template`` (one template with a branch per step kind) whose text calls ``fn``."""
    env = environment(target)
    found = set()
    for node in env.parse(env.loader.get_source(env, template)[0]).find_all(nodes.If):
        test = node.test
        if not (isinstance(test, nodes.Compare) and isinstance(test.expr, nodes.Getattr)
                and test.expr.attr == attr and len(test.ops) == 1 and test.ops[0].op == "eq"
                and isinstance(test.ops[0].expr, nodes.Const)):
            continue
        text = "".join(d.data for b in node.body for d in [b, *b.find_all(nodes.TemplateData)]
                       if isinstance(d, nodes.TemplateData))
        if _call(fn).search(text):
            found.add(test.ops[0].expr.value)
    return frozenset(found)


def render(target: str, template: str, **ctx) -> str:
    return environment(target).get_template(template).render(**ctx)


def render_to(path: Path, target: str, template: str, **ctx) -> Path:
    """Render into the file ``path`` as the text is produced (a layer of 100 M weights is
    never one string in memory)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.writelines(environment(target).get_template(template).generate(**ctx))
    return path
