"""Names from the model are data, not code: this turns them into safe identifiers."""

from __future__ import annotations

import re

# Reserved words of C99, C++17 and Verilog-2005 (and a few SystemVerilog ones Verilator
# rejects), so one sanitized name is valid in every backend.
RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary bool true false class
namespace template typename this new delete public private protected virtual friend
operator try catch throw using asm alignas alignof and and_eq bitand bitor compl
const_cast constexpr decltype dynamic_cast explicit export mutable noexcept not not_eq
nullptr or or_eq reinterpret_cast static_assert static_cast thread_local typeid wchar_t
xor xor_eq char16_t char32_t always assign begin buf bufif0 bufif1 casex casez cmos
deassign defparam disable edge end endcase endfunction endmodule endprimitive
endspecify endtable endtask event force forever fork function highz0 highz1 initial
inout input integer join large macromodule medium module nand negedge nmos nor notif0
notif1 output parameter pmos posedge primitive pull0 pull1 pulldown pullup rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared small specify
specparam strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0
tri1 triand trior trireg vectored wait wand weak0 weak1 wire wor xnor genvar generate
endgenerate localparam logic bit byte shortint longint string final type var automatic
signed unsigned cell config design endconfig incdir include instance liblist library
use uwire pulsestyle_onevent pulsestyle_ondetect showcancelled noshowcancelled
""".split())

_BAD = re.compile(r"[^A-Za-z0-9_]+")
MAX_LEN = 48


def sanitize(name: str, used: set[str] | None = None, prefix: str = "n") -> str:
    """A C / C++ / Verilog identifier derived from ``name``; unique within ``used``
    (which is updated). Letters, digits and underscores only, never a reserved word,
    never starting with a digit or an underscore, no "__", at most ``MAX_LEN`` characters
    (with a prefix of up to 7 characters)."""
    s = _BAD.sub("_", name).strip("_")
    # strip again after cutting: a trailing "_" before a "_1" suffix would make "__"
    s = re.sub(r"__+", "_", s)[:40].rstrip("_") or prefix
    if s[0].isdigit():
        s = f"{prefix}_{s}"
    # "vl" too: a "_1" suffix below would turn it into the reserved "vl_" prefix
    if s in RESERVED or s.lower() == "vl" or s.lower().startswith(("nnforge", "vl_", "verilated")):
        s = f"{prefix}_{s}"
    if used is not None:
        taken = {u.lower() for u in used}
        base, i = s, 1
        while s.lower() in taken:
            tail = f"_{i}"
            s = base[:MAX_LEN - len(tail)].rstrip("_") + tail
            i += 1
        used.add(s)
    return s
