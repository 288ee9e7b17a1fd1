"""Names from the model are data: codegen/naming.sanitize, and an end-to-end check that
hostile ONNX node names neither break nor leak into the generated C."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import nnforge
from nnforge.codegen.naming import RESERVED, sanitize

IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
PREFIXES = ("n", "layer", "model")

# a sample of each language's reserved words, checked independently of naming.RESERVED
C_KEYWORDS = ("auto break case char const continue default do double else enum extern float for goto if "
              "inline int long register restrict return short signed sizeof static struct switch typedef "
              "union unsigned void volatile while _Bool _Complex _Imaginary").split()
CXX_KEYWORDS = ("bool true false class namespace template typename this new delete public private protected "
                "virtual friend operator try catch throw using asm constexpr decltype explicit export mutable "
                "noexcept nullptr static_assert thread_local and or not xor").split()
VERILOG_KEYWORDS = ("always assign begin end case endcase module endmodule input output inout wire reg "
                    "integer parameter localparam generate endgenerate genvar function endfunction task "
                    "endtask initial posedge negedge logic bit byte").split()
ALL_KEYWORDS = C_KEYWORDS + CXX_KEYWORDS + VERILOG_KEYWORDS


def assert_safe(s: str) -> None:
    assert IDENT.match(s), s
    assert s not in RESERVED and s not in ALL_KEYWORDS, s
    assert "__" not in s, s  # reserved for the implementation in C and C++
    assert not s.lower().startswith(("nnforge", "vl_", "verilated")), s
    assert len(s) <= 48, s


def test_reserved_list_covers_every_language():
    missing = [k for k in ALL_KEYWORDS if k not in RESERVED]
    assert missing == []


@pytest.mark.parametrize("name, expect", [
    ("fc.0/weight", "fc_0_weight"),
    ("fc1", "fc1"),
    ("Gemm_0", "Gemm_0"),
    ("/layers/0/Gemm", "layers_0_Gemm"),
    ("a__b", "a_b"),
])
def test_plain_names_are_readable(name, expect):
    assert sanitize(name) == expect


@pytest.mark.parametrize("name", [
    "", "_", "___", "123", "0", "9lives", "module", "int", "static", "class", "wire", "begin", "end",
    "*/ evil", "/* x */", "a\nb", "\"quoted\"", "it's", "\\", "ñandú", "层", "🙂", "日本語の名前",
    "nnforge_run", "NNFORGE_IN_SIZE", "vl_foo", "Verilated", "x" * 500, "9" * 500, "_" * 100 + "int",
    "a" * 39 + "__" + "b" * 10, "\x00\x01\x7f", " leading space", "trailing.",
])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_hostile_names_become_safe(name, prefix):
    s = sanitize(name, prefix=prefix)
    assert_safe(s)
    assert "*/" not in s and "\n" not in s


@pytest.mark.parametrize("kw", sorted(RESERVED))
def test_every_reserved_word_is_renamed(kw):
    s = sanitize(kw)
    assert_safe(s)
    assert s != kw


def test_sanitize_is_deterministic_without_used():
    assert sanitize("fc.0/weight") == sanitize("fc.0/weight")


@settings(max_examples=400, deadline=None)
@given(st.text(), st.sampled_from(PREFIXES))
def test_any_text_becomes_a_safe_identifier(name, prefix):
    assert_safe(sanitize(name, prefix=prefix))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60), st.sampled_from(["fc.0", "fc_0", "FC_0", "fc/0", "int", "", "1"])),
                max_size=40),
       st.sampled_from(PREFIXES))
def test_names_are_unique_under_used(names, prefix):
    used: set[str] = set()
    out = [sanitize(n, used, prefix=prefix) for n in names]
    assert len(out) == len(set(out))
    # unique even ignoring case (Verilog tools and some file systems fold case)
    assert len({s.lower() for s in out}) == len(out)
    assert set(out) <= used
    for s in out:
        assert_safe(s)


def test_used_is_respected_for_preexisting_names():
    used = {"fc_0", "FC_0_1"}
    s = sanitize("fc.0", used)
    assert s not in {"fc_0", "fc_0_1"} and s.lower() not in {u.lower() for u in used - {s}}
    assert s in used


def test_collisions_get_suffixes():
    used: set[str] = set()
    assert [sanitize(n, used) for n in ["fc.0", "fc/0", "fc 0"]] == ["fc_0", "fc_0_1", "fc_0_2"]


# ---- end to end -------------------------------------------------------------------------------

EVIL_NAMES = [
    "fc0 */ int evil(void) { return 1; } /*",
    "relu\n#define int long\n",
    "fc1 \"quoted\" 'single' \\",
    "static",
    "int",
    "relu.1/Relu\r\n// comment",
    "return",
    "module",
    "fc2 ); system(\"rm -rf /\"); (",
]


def evil_model(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    sizes = (6, 5, 4, 3)
    nodes, inits, prev = [], [], "in */ put"
    names = iter(EVIL_NAMES)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w, bias = f"w{i} */", f"b{i}\n"
        inits += [numpy_helper.from_array(rng.standard_normal((b, a)).astype(np.float32), w),
                  numpy_helper.from_array(rng.standard_normal(b).astype(np.float32), bias)]
        out = f"t{i} /* {i}"
        nodes.append(helper.make_node("Gemm", [prev, w, bias], [out], name=next(names), transB=1))
        prev = out
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}\""], name=next(names)))
            prev = f"r{i}\""
    graph = helper.make_graph(nodes, "evil */ graph\nint main", [
        helper.make_tensor_value_info("in */ put", TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", sizes[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_hostile_names_compile_to_c_and_never_leak(tmp_path):
    model = evil_model()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    design = nnforge.compile(model, calibration=x)
    out = design.write(tmp_path / "out", targets=["c"])
    sources = {p.name: p.read_text() for p in (Path(out) / "c").iterdir()}
    assert set(sources) >= {"nnforge_model.c", "nnforge_model.h"}
    # (plain keywords such as "static" legitimately occur in C; they are checked below)
    raw = [n for n in EVIL_NAMES if not n.isidentifier()] + ["in */ put", "w0 */", "b0\n", "evil */ graph",
                                                            "t0 /* 0", "r0\"", "#define int", 'system("']
    for name, text in sources.items():
        for r in raw:
            assert r not in text, f"{r!r} leaked into {name}"
        # a comment is never closed early: every /* has its */ on a matching position
        assert text.count("/*") == text.count("*/"), name
        for ident in re.findall(r"\b(\w+)_(?:w|b|run)\b", text):
            assert IDENT.match(ident)
    # the generated C compiles with gcc -std=c99 -Wall -Wextra -Werror and matches golden
    result = design.verify(x, backends=["golden", "c"], outdir=out)
    assert result.ok and result.backends["c"].mismatches == 0 and result.backends["c"].samples == 64
    # the (sanitized) layer names are the ones the report shows
    layer_names = [layer.name for layer in design.hardware().layers]
    assert len(set(layer_names)) == 3
    for n in layer_names:
        assert_safe(n)
        assert f"{n}_run" in sources["nnforge_model.c"]
    # the Gemm node called "int" became a prefixed identifier, not the bare keyword
    assert layer_names[-1] == "layer_int"


def test_hostile_names_through_a_temporary_build():
    """verify() without outdir writes and compiles on its own."""
    x = np.random.default_rng(2).standard_normal((16, 6)).astype(np.float32)
    design = nnforge.compile(evil_model(3), calibration=x)
    result = design.verify(x, backends=["golden", "c"])
    assert result.ok, str(result)


@pytest.mark.parametrize("name", ["1" * 45, "a" * 39 + "_b", "a" * 39 + ".b", "x" * 60, "int"])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_many_collisions_stay_short_and_single_underscored(name, prefix):
    used: set[str] = set()
    out = [sanitize(name, used, prefix=prefix) for _ in range(120)]
    assert len(set(out)) == len(out)
    for s in out:
        assert_safe(s)
