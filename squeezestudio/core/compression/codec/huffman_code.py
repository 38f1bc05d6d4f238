"""Length-limited canonical Huffman codes: code lengths, codewords, decode tables.

Only the code lengths go into a file; the codewords follow from them (the
canonical assignment: shorter codes first, ties by symbol), which is what
makes a stored code table a few bytes instead of a tree. Lengths are limited
to :data:`MAX_CODE_LENGTH` (20) bits so a decoder window of 32 bits always
holds a whole code plus its bit offset inside a byte, and a direct decode
table has at most 2**20 entries. Only symbols rarer than about 2**-20 are
affected by the limit, so its cost in size is negligible.
"""

from __future__ import annotations

import heapq

import numpy as np

from squeezestudio.core.errors import CodecError

MAX_CODE_LENGTH = 20


def huffman_lengths(freqs: np.ndarray, max_len: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Optimal code lengths for positive ``freqs``, limited to ``max_len`` bits.

    When the unrestricted Huffman tree is deeper than ``max_len`` the
    frequencies are halved (rounding up, so none reaches zero) and the tree is
    rebuilt; this flattens only very skewed distributions, where the lost
    efficiency is negligible, and always terminates once all counts are 1.
    """
    f = np.asarray(freqs, dtype=np.int64).reshape(-1)
    if f.size == 0 or int(f.min()) <= 0:
        raise CodecError("Huffman code lengths need at least one symbol and positive counts")
    if f.size > (1 << max_len):
        raise CodecError(f"{f.size} distinct symbols cannot be coded with codes of at most {max_len} bits")
    if f.size == 1:
        return np.ones(1, dtype=np.int64)
    while True:
        lengths = _unrestricted_lengths(f)
        if int(lengths.max()) <= max_len:
            return lengths
        f = (f + 1) // 2


def _unrestricted_lengths(f: np.ndarray) -> np.ndarray:
    """Classic Huffman merge with a heap; returns each leaf's depth."""
    m = int(f.size)
    heap = [(int(c), i) for i, c in enumerate(f.tolist())]
    heapq.heapify(heap)
    parent = [0] * (2 * m - 1)
    next_id = m
    while len(heap) > 1:
        fa, a = heapq.heappop(heap)
        fb, b = heapq.heappop(heap)
        parent[a] = next_id
        parent[b] = next_id
        heapq.heappush(heap, (fa + fb, next_id))
        next_id += 1
    depth = [0] * (2 * m - 1)
    for node in range(2 * m - 3, -1, -1):  # the root (2m-2) has depth 0; parents have larger ids
        depth[node] = depth[parent[node]] + 1
    return np.asarray(depth[:m], dtype=np.int64)


def kraft_ok(lengths: np.ndarray) -> bool:
    """True if positive ``lengths`` form a valid prefix code (Kraft sum <= 1)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0 or int(lengths.min()) < 1 or int(lengths.max()) > MAX_CODE_LENGTH:
        return False
    return int((np.int64(1) << (MAX_CODE_LENGTH - lengths)).sum()) <= (1 << MAX_CODE_LENGTH)


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codewords for ``lengths`` (given per symbol, in symbol order).

    A codeword left-aligned to ``L = max(lengths)`` bits is the sum of
    ``2**(L - l)`` over all symbols sorted before it by (length, symbol), so
    the whole assignment is one cumulative sum.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    top = int(lengths.max())
    order = np.lexsort((np.arange(lengths.size), lengths))
    span = np.int64(1) << (top - lengths[order])
    aligned = np.concatenate(([0], np.cumsum(span)[:-1])).astype(np.int64)
    codes = np.empty(lengths.size, dtype=np.int64)
    codes[order] = aligned >> (top - lengths[order])
    return codes


class DecodeTable:
    """Maps the next ``top`` bits of a stream to (symbol index, code length).

    ``packed[window] = symbol_index << 5 | length`` for every ``top``-bit
    window value (at most 2**20 entries, hence the code-length limit), so a
    decoder step is a single gather. Windows that match no code (an
    incomplete code, i.e. a corrupt stream) map to symbol index
    ``len(lengths)`` with length 1, which the caller treats as an error.
    """

    def __init__(self, lengths: np.ndarray) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        self.top = int(lengths.max())
        self.invalid = int(lengths.size)
        order = np.lexsort((np.arange(lengths.size), lengths))
        span = np.int64(1) << (self.top - lengths[order])
        end = int(span.sum())
        packed = np.full(1 << self.top, (self.invalid << 5) | 1, dtype=np.int64)
        packed[:end] = np.repeat((order << 5) | lengths[order], span)
        self.packed = packed

    def lookup(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(symbol index, code length) for each ``top``-bit window value."""
        entry = self.packed[window]
        return entry >> 5, entry & 31
