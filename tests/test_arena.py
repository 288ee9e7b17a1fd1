"""The MCU memory plan (codegen/arena.py): no two values live at once share a byte, the
arena is never below the live maximum, and it reaches it for chains and residual blocks."""

from hypothesis import given, settings, strategies as st

from nnforge.codegen.arena import Value, aligned, live_maximum, overlaps, plan


def _check(values, arena):
    for a in values:
        for b in values:
            if a is not b and overlaps(a, b):
                lo_a, lo_b = arena.offsets[a.name], arena.offsets[b.name]
                assert lo_a + aligned(a.bytes) <= lo_b or lo_b + aligned(b.bytes) <= lo_a, (a, b)
    assert arena.activations >= arena.live_max == live_maximum(values)
    assert arena.activations == max((arena.offsets[v.name] + aligned(v.bytes) for v in values), default=0)


def test_chain_reaches_the_live_maximum():
    sizes = [3072, 16384, 16384, 8192, 8192, 4096, 64, 10]
    values = [Value(f"v{i}", n, i, i + 1) for i, n in enumerate(sizes)]
    arena = plan(values)
    _check(values, arena)
    assert arena.live_max == 16384 + 16384
    assert arena.activations == arena.live_max


def test_residual_block_reaches_the_live_maximum():
    # x -> a -> b; add(b, x) -> y: x lives across the block
    values = [Value("x", 4096, 0, 3), Value("a", 4096, 1, 2), Value("b", 4096, 2, 3), Value("y", 4096, 3, 4),
              Value("z", 1024, 4, 5)]
    arena = plan(values, scratch=10)
    _check(values, arena)
    assert arena.live_max == 3 * 4096
    assert arena.activations == arena.live_max
    assert arena.scratch == 12 and arena.total == 3 * 4096 + 12  # scratch rounded to a word


def test_a_narrow_bottleneck_keeps_the_bound():
    """128-128-128-8-128-128: the placement must change sides across the narrow value."""
    sizes = [128, 128, 128, 8, 128, 128, 128]
    values = [Value(f"v{i}", n, i, i + 1) for i, n in enumerate(sizes)]
    arena = plan(values)
    _check(values, arena)
    assert arena.activations == arena.live_max == 256


def test_sizes_are_word_aligned():
    values = [Value("a", 5, 0, 1), Value("b", 3, 1, 2)]
    arena = plan(values)
    _check(values, arena)
    assert arena.live_max == 8 + 4 and all(off % 4 == 0 for off in arena.offsets.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 12), st.integers(0, 4)), min_size=1, max_size=14))
def test_any_lifetimes_never_share_a_live_byte(spec):
    values = [Value(f"v{i}", n, f, f + d) for i, (n, f, d) in enumerate(spec)]
    _check(values, plan(values))
