"""Canonical Huffman coding: exact round trips, near the Shannon bound, fast, and strict on garbage."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squeezestudio.core.compression.codec import entropy
from squeezestudio.core.compression.codec.huffman_code import MAX_CODE_LENGTH, huffman_lengths, kraft_ok
from squeezestudio.core.compression.codec.sparse_index import best_coded_width, gap_symbols
from squeezestudio.core.errors import CodecError


def shannon_bytes(symbols: np.ndarray) -> float:
    """n * H(empirical distribution) / 8: no prefix code of this stream can be shorter."""
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum() / 8)


def cluster_indices(n: int, bits: int = 5, seed: int = 0) -> np.ndarray:
    """Nearest-centroid indices of Gaussian weights on a linear 2**bits-entry codebook."""
    w = np.random.default_rng(seed).normal(size=n)
    edges = np.linspace(w.min(), w.max(), (1 << bits) + 1)[1:-1]
    return np.searchsorted(edges, w)


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.lists(st.integers(0, 7), max_size=2000),
    st.lists(st.integers(0, 2 ** 32 - 1), max_size=300),
    st.lists(st.sampled_from([0, 1, 1000, 2 ** 31]), max_size=3000),
))
def test_round_trip(values: list[int]) -> None:
    s = np.asarray(values, dtype=np.int64)
    assert np.array_equal(entropy.decode(entropy.encode(s), s.size), s)


@pytest.mark.parametrize("n", [1, 511, 512, 513, 5000, 70000])
def test_round_trip_across_block_boundaries(n: int) -> None:
    s = cluster_indices(n, seed=n)
    assert np.array_equal(entropy.decode(entropy.encode(s), n), s)


def test_constant_stream_costs_five_bytes() -> None:
    data = entropy.encode(np.full(10000, 7))
    assert len(data) == 5 and entropy.decode(data, 10000).tolist() == [7] * 10000


def test_five_bit_cluster_indices_within_two_percent_of_shannon() -> None:
    s = cluster_indices(200_000)
    size = len(entropy.encode(s))
    assert shannon_bytes(s) <= size <= 1.02 * shannon_bytes(s)
    assert size < 0.95 * s.size * 5 / 8  # and clearly better than 5 bits each


@pytest.mark.parametrize("density", [0.02, 0.1, 0.35, 0.6, 0.8])
def test_gap_streams_within_two_percent_of_shannon(density: float) -> None:
    mask = np.random.default_rng(2).random(400_000) < density
    gaps = gap_symbols(mask, best_coded_width(mask))
    size = len(entropy.encode(gaps))
    assert shannon_bytes(gaps) <= size <= 1.02 * shannon_bytes(gaps)
    # and close to the bound of the mask itself: H(density) bits per position
    h = -(density * np.log2(density) + (1 - density) * np.log2(1 - density))
    assert 8 * size / mask.size <= 1.03 * h


@pytest.mark.parametrize("n", [10_001, 10_002, 10_003, 10_004])
def test_skewed_streams_use_symbol_tuples(n: int) -> None:
    """95 % zeros: one codeword per symbol would cost >= 1 bit; quadruples cost far less."""
    s = (np.random.default_rng(n).random(n) < 0.05).astype(np.int64)
    data = entropy.encode(s)
    assert data[:2] == bytes([1, 4])  # Huffman mode, 4 symbols per codeword
    assert len(data) < 0.5 * n / 8
    assert np.array_equal(entropy.decode(data, n), s)


def test_code_lengths_are_limited_for_fibonacci_counts() -> None:
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    lengths = huffman_lengths(np.asarray(fib))
    assert lengths.max() == MAX_CODE_LENGTH and kraft_ok(lengths)
    s = np.repeat(np.arange(40), np.minimum(fib, 3000))
    np.random.default_rng(0).shuffle(s)
    assert np.array_equal(entropy.decode(entropy.encode(s), s.size), s)


def test_lengths_are_optimal_for_dyadic_counts() -> None:
    assert huffman_lengths(np.array([8, 4, 2, 1, 1])).tolist() == [1, 2, 3, 4, 4]


def test_one_million_symbols_round_trip_near_the_shannon_bound() -> None:
    """At realistic scale the coder is exact and within 2% of n*H.

    Its speed against a per-symbol pure-Python coder is measured by
    benchmarks/bench_entropy.py, not here: timings in tests flake under load.
    """
    s = cluster_indices(1_000_000)
    data = entropy.encode(s)
    assert np.array_equal(entropy.decode(data, s.size), s)
    counts = np.bincount(s).astype(np.float64)
    p = counts[counts > 0] / s.size
    shannon_bytes = -(counts[counts > 0] * np.log2(p)).sum() / 8
    assert len(data) <= 1.02 * shannon_bytes


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), count=st.integers(0, 5000))
def test_garbage_raises_codec_error(data: bytes, count: int) -> None:
    try:
        out = entropy.decode(data, count)
    except CodecError:
        return
    assert out.size == count  # garbage that happens to be a valid stream still decodes consistently


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mutated_streams_raise_or_decode_consistently(data: st.DataObject) -> None:
    s = cluster_indices(3000)
    encoded = bytearray(entropy.encode(s))
    pos = data.draw(st.integers(0, len(encoded) - 1))
    encoded[pos] ^= 1 << data.draw(st.integers(0, 7))
    try:
        out = entropy.decode(bytes(encoded), s.size)
    except CodecError:
        return
    assert out.size == s.size


def test_truncation_and_wrong_counts_are_refused() -> None:
    s = cluster_indices(3000)
    data = entropy.encode(s)
    for cut in range(0, len(data), 97):
        with pytest.raises(CodecError):
            entropy.decode(data[:cut], s.size)
    for count in (0, 2999, 3001, 10 ** 12):
        with pytest.raises(CodecError):
            entropy.decode(data, count)


def test_bad_symbols_are_refused() -> None:
    with pytest.raises(CodecError):
        entropy.encode(np.array([-1, 2]))
    with pytest.raises(CodecError):
        entropy.encode(np.array([0.5]))
