"""Relative (gap) positions with a bounded width and a value-less overflow symbol."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squeezestudio.core.compression.codec import entropy
from squeezestudio.core.compression.codec.bitpack import packed_size
from squeezestudio.core.compression.codec.sparse_index import (
    GAP_WIDTHS,
    best_coded_width,
    best_fixed_width,
    gap_symbols,
    mask_from_gaps,
    symbol_count,
)
from squeezestudio.core.errors import CodecError


@settings(max_examples=120, deadline=None)
@given(mask=st.lists(st.booleans(), max_size=400), width=st.integers(1, 16))
def test_round_trip(mask: list[bool], width: int) -> None:
    m = np.asarray(mask, dtype=bool)
    symbols = gap_symbols(m, width)
    assert symbols.size == symbol_count(m, width)
    assert symbols.size == 0 or (symbols.max() < (1 << width) and symbols[-1] != 0)
    assert np.array_equal(mask_from_gaps(symbols, width, m.size, int(m.sum())), m)


def test_overflow_symbol_skips_without_a_value() -> None:
    mask = np.zeros(200, dtype=bool)
    mask[[2, 100, 101]] = True
    # width 3: skip = 7; gap 3 -> [3]; gap 98 -> 13 overflows (91) + 7; gap 1 -> [1]
    assert gap_symbols(mask, 3).tolist() == [3] + [0] * 13 + [7] + [1]
    assert gap_symbols(mask, 1).tolist() == [0, 0, 1] + [0] * 97 + [1, 1]  # width 1 is a bitmap


def test_fixed_width_choice_is_the_smallest() -> None:
    rng = np.random.default_rng(0)
    for density in (0.02, 0.1, 0.5, 0.95):
        mask = rng.random(5000) < density
        width, size = best_fixed_width(mask)
        sizes = {w: packed_size(symbol_count(mask, w), w) for w in GAP_WIDTHS}
        assert size == sizes[width] == min(sizes.values())


def test_coded_width_beats_or_matches_every_width_within_a_few_bytes() -> None:
    rng = np.random.default_rng(1)
    mask = rng.random(20000) < np.repeat([0.02, 0.3, 0.08, 0.6], 5000)  # mixed sparsity
    chosen = len(entropy.encode(gap_symbols(mask, best_coded_width(mask))))
    best = min(len(entropy.encode(gap_symbols(mask, w))) for w in GAP_WIDTHS)
    assert chosen <= best + 8


def test_empty_and_full_masks() -> None:
    assert gap_symbols(np.zeros(10, bool), 4).size == 0
    assert best_fixed_width(np.zeros(10, bool)) == (1, 0)
    full = np.ones(10, bool)
    assert gap_symbols(full, 2).tolist() == [1] * 10
    assert np.array_equal(mask_from_gaps(np.ones(10), 2, 10, 10), full)


@pytest.mark.parametrize("symbols, width, numel, kept, message", [
    ([1, 0], 2, 10, 1, "ends with an overflow"),
    ([1, 1], 2, 10, 3, "marks 2 weights"),
    ([3, 3, 3, 3], 2, 10, 4, "runs past"),
    ([4], 2, 10, 1, "wider than 2 bits"),
    ([], 2, 10, 1, "empty position stream"),
    ([1], 17, 10, 1, "not supported"),
])
def test_corrupt_streams_are_refused(symbols, width, numel, kept, message) -> None:
    with pytest.raises(CodecError, match=message):
        mask_from_gaps(np.asarray(symbols, dtype=np.int64), width, numel, kept)
