"""The one Jinja2 environment every backend renders its templates with."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

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


def render(target: str, template: str, **ctx) -> str:
    return environment(target).get_template(template).render(**ctx)


def render_to(path: Path, target: str, template: str, **ctx) -> Path:
    """Render into the file ``path`` as the text is produced (a layer of 100 M weights is
    never one string in memory)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.writelines(environment(target).get_template(template).generate(**ctx))
    return path
