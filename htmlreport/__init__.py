"""Self-contained HTML pages: ``report.html`` of a compiled design (:func:`report_page`)
and ``explore.html`` of a design-space sweep (:func:`explore_page`). Charts are inline SVG
made here (:mod:`.svg`); a page needs no network, no font and no file beside it."""

from .designpage import report_page
from .sweeppage import explore_page

__all__ = ["explore_page", "report_page"]
