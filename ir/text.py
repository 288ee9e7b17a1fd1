"""Names from a model or a design file are data: before they reach a terminal, a log or a
report they are made printable, so no escape sequence, carriage return or newline from a
name can move the cursor, recolour the screen or fake a line of output."""

from __future__ import annotations

import unicodedata

_MAX_NAME = 200  # characters of a name shown before it is cut


def printable(s: object, limit: int | None = None) -> str:
    """``str(s)`` with every control or format character (C0 / C1 controls, DEL, line and
    paragraph separators, bidirectional overrides, zero-width characters) written as a
    Python escape (``\\x1b``, ``\\u202e``), and cut to ``limit`` characters when given."""
    text = str(s)
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch)
        else:
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    r = "".join(out)
    if limit is not None and len(r) > limit:
        r = r[:limit] + f"...({len(r) - limit} more)"
    return r


def name(s: object) -> str:
    """A model or tensor name for a message or a report: printable and at most a few
    hundred characters."""
    return printable(s, _MAX_NAME)
