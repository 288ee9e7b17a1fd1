"""The page around the charts: one self-contained HTML file (inline CSS, inline SVG, one
small inline script, nothing fetched), and readers of untrusted JSON values.

The script: a ``window.onerror`` handler installed first counts errors into
``document.body.dataset.errors`` (``"0"`` to start with); on load, the charts
(``svg.chart``) whose bounding box has a width and a height are counted into
``document.body.dataset.charts``; hovering an element with ``data-key`` highlights every
element with the same key (a configuration's point in each chart and its table row). The
page's data (``<script type="application/json" id="page-data">``) is JSON with ``<``, ``>``
and ``&`` escaped, so no name can close the script element."""

from __future__ import annotations

import json
import math

from ..ir.text import printable
from .svg import esc, fmt, num

ERRORS_SCRIPT = ("window.onerror=function(){var b=document.body;"
                 "b.dataset.errors=String((+b.dataset.errors||0)+1);};")

PAGE_SCRIPT = """(function(){
var data=JSON.parse(document.getElementById('page-data').textContent);
document.body.dataset.declared=String(data.charts.length);
window.addEventListener('load',function(){
  var n=0,c=document.querySelectorAll('svg.chart');
  for(var i=0;i<c.length;i++){var b=c[i].getBBox();if(b.width>0&&b.height>0)n++;}
  document.body.dataset.charts=String(n);
});
function mark(e,on){
  var t=e.target.closest?e.target.closest('[data-key]'):null;
  if(!t)return;
  var k=t.getAttribute('data-key'),all=document.querySelectorAll('[data-key]');
  for(var i=0;i<all.length;i++)if(all[i].getAttribute('data-key')===k)all[i].classList.toggle('hl',on);
}
document.addEventListener('mouseover',function(e){mark(e,true);});
document.addEventListener('mouseout',function(e){mark(e,false);});
})();"""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 color:#1f2328;background:#f4f5f7;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:1.55rem;margin:0 0 2px}
h2{font-size:1.2rem;margin:30px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:.95rem;margin:0 0 6px;overflow-wrap:anywhere}
p{margin:6px 0;max-width:75em}
.sub{color:#57606a;margin:0 0 14px}
figure{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:12px 0;padding:12px 14px;min-width:0}
figcaption{color:#57606a;font-size:.84rem;margin-top:6px;max-width:75em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:0 14px}
svg.chart{display:block;max-width:100%;height:auto;font-size:11px}
svg.chart text{fill:#30363d}
.chart .label{font-size:12px;fill:#1f2328}
.chart .axis line{stroke:#8c959f;stroke-width:1}
.chart line.grid{stroke:#eaeef2}
.chart .marker{stroke:#c4413f;stroke-width:1.5;stroke-dasharray:5 3}
.chart .mark{fill:#c4413f}
.chart .outside{fill:#c4413f;fill-opacity:.08}
.chart .step,.chart .front{fill:none;stroke-width:1.8}
.chart .alarm{fill:#b3261e;font-weight:600}
.chart .note{fill:#57606a}
.chart .pt circle.other{fill-opacity:.6;stroke:#1f3b5a;stroke-width:.6}
.chart .pt circle.marked{stroke:#222;stroke-width:1}
.chart .pt.hl circle{stroke:#000;stroke-width:2.5}
.chart .row:hover rect{opacity:.8}
.notice{background:#fff8e1;border:1px solid #eed58a;padding:8px 12px;border-radius:6px;margin:10px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.84rem;background:#fff}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f4}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.detail td{overflow-wrap:anywhere;padding-left:24px}
tr:target,tr.hl{background:#fff3c4}
tr.failed td{color:#8a1f17}
tr.pareto td{font-weight:600}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dt{color:#57606a}
dd{margin:0;overflow-wrap:anywhere}
"""


def json_for_script(data) -> str:
    """``data`` as JSON to embed in a ``<script>`` element: non-finite numbers become null,
    ``< > &`` and every non-ASCII character are ``\\u`` escapes."""
    text = json.dumps(_finite(data), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def page(title: str, subtitle: str, body: str, data: dict) -> str:
    """The whole HTML document, ASCII only (anything else as character references).
    ``data`` is embedded as the page's JSON; its ``charts`` lists the chart names."""
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f'<title>{esc(title)}</title><style>{CSS}</style></head>\n'
           f'<body data-errors="0"><script>{ERRORS_SCRIPT}</script>\n<main>\n'
           f'<h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>\n{body}\n</main>\n'
           f'<script type="application/json" id="page-data">{json_for_script(data)}</script>\n'
           f'<script>{PAGE_SCRIPT}</script>\n</body></html>\n')
    return doc.encode("ascii", "xmlcharrefreplace").decode("ascii")


def figure(title: str, svg: str, caption: str) -> str:
    return f'<figure><h3>{esc(title)}</h3>{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def notice(text: str) -> str:
    return f'<p class="notice">{esc(text)}</p>'


def section(title: str, anchor: str, *parts: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>\n'


def summary_list(pairs: list[tuple[str, str]]) -> str:
    return '<dl class="summary">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs) + "</dl>"


def table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), row_attrs=None,
          details: list[str] | None = None) -> str:
    """A table of text cells; the columns in ``numeric`` right-aligned; ``row_attrs``: per
    row, ``(id, class)`` (either may be empty); ``details``: per row, a text shown in a row
    of its own under it (spanning the table), or "" for none."""
    out = ['<div class="scroll"><table><thead><tr>', *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        rid, cls = row_attrs[i] if row_attrs else ("", "")
        attrs = (f' id="{esc(rid)}"' if rid else "") + (f' class="{esc(cls)}"' if cls else "")
        out.append(f"<tr{attrs}>")
        out += [('<td class="num">' if j in numeric else "<td>") + f"{esc(cell)}</td>"
                for j, cell in enumerate(row)]
        out.append("</tr>")
        if details and details[i]:
            out.append(f'<tr class="detail{(" " + esc(cls)) if cls else ""}"><td colspan="{len(headers)}">'
                       f'{esc(details[i])}</td></tr>')
    out.append("</tbody></table></div>")
    return "".join(out)


# ---- reading untrusted JSON values ---------------------------------------------------------

def obj(v) -> dict:
    """``v`` when it is an object, else an empty one."""
    return v if isinstance(v, dict) else {}


def objs(v, limit: int = 10000) -> list[dict]:
    """The objects of the list ``v`` (at most ``limit``); anything else gives none."""
    return [x for x in v[:limit] if isinstance(x, dict)] if isinstance(v, list) else []


MAX_COUNT = 2 ** 53  # the largest count a page takes from a report (float holds every integer up to it)


def count(v) -> int | None:
    """A non-negative integer (not a boolean) of at most :data:`MAX_COUNT`, else None."""
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT else None


def name(v, limit: int = 200) -> str:
    """A name or a text field for display: printable (control characters as escapes), cut
    to ``limit`` characters; a missing one is ``?``."""
    if isinstance(v, str):
        return printable(v, limit)
    return fmt(v) if num(v) is not None else "?"
