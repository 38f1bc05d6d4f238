"""A block-structured canonical Huffman stream, coded and decoded with numpy only.

Layout (little-endian), for ``n`` values drawn from ``used`` (>= 2 values)::

    u8  table                    1: dense length table, 2: sparse
      1: u32 alphabet            lengths of values 0..alphabet-1, 5 bits each (0 = unused)
      2: u32 used, u8 w          the used values at w bits each, then their lengths at 5 bits
    u8  top                      longest code length (1..20)
    u8  block_log2               values per block = 2**block_log2 (a function of n)
    u8  bw                       each block's code bits, bw bits each
    payload                      all codes, most-significant bit first, zero-padded

Why blocks: a Huffman stream is sequential, which would force a per-symbol
Python loop when decoding. Recording how many bits each block of values
takes (a few bits per thousand values, well under 1 % of the stream) lets the
decoder advance all blocks in lock step, one numpy step per value position of
a block. The encoder needs no loop at all: every code's bit offset is a
cumulative sum, and codes are OR-ed into 64-bit words with ``reduceat``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from squeezestudio.core.compression.codec.bitpack import pack_bits, packed_size, unpack_bits
from squeezestudio.core.compression.codec.huffman_code import (
    MAX_CODE_LENGTH,
    DecodeTable,
    canonical_codes,
    huffman_lengths,
    kraft_ok,
)
from squeezestudio.core.errors import CodecError

_LEN_BITS = 5  # a code length 0..20 fits in 5 bits
_TABLE_DENSE, _TABLE_SPARSE = 1, 2


class Reader:
    """Bounds-checked reads from a byte string; every overrun is a CodecError."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.left:
            raise CodecError("an entropy-coded stream is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def block_log2(count: int) -> int:
    """Values per block (as a power of two): about 2*sqrt(count), within 2**9 .. 2**16."""
    target = 2.0 * math.sqrt(max(count, 1))
    return int(min(16, max(9, math.ceil(math.log2(target)))))


def _table_bytes(used: np.ndarray, lengths: np.ndarray) -> bytes:
    """The smaller of the dense and sparse code-length tables, with its kind byte."""
    alphabet = int(used[-1]) + 1
    width = max(1, int(used[-1]).bit_length())
    dense_size = 4 + packed_size(alphabet, _LEN_BITS)
    sparse_size = 5 + packed_size(used.size, width) + packed_size(used.size, _LEN_BITS)
    if dense_size <= sparse_size:
        table = np.zeros(alphabet, dtype=np.int64)
        table[used] = lengths
        return struct.pack("<BI", _TABLE_DENSE, alphabet) + pack_bits(table, _LEN_BITS)
    return (struct.pack("<BIB", _TABLE_SPARSE, used.size, width) + pack_bits(used, width)
            + pack_bits(lengths, _LEN_BITS))


def estimated_size(used: np.ndarray, counts: np.ndarray) -> int:
    """Size of :func:`encode_stream` for any ordering of this histogram, without coding.

    Exact except for the width of the per-block bit counts, which is bounded
    by its worst case (so it may exceed the truth by a few bytes).
    """
    n = int(counts.sum())
    lengths = huffman_lengths(counts)
    payload_bits = int((lengths * counts).sum())
    blog = block_log2(n)
    nblocks = -(-n // (1 << blog))
    bw = max(1, min(payload_bits, int(lengths.max()) << blog).bit_length())
    return len(_table_bytes(used, lengths)) + 3 + packed_size(nblocks, bw) + packed_size(payload_bits, 1)


def encode_stream(values: np.ndarray, used: np.ndarray, counts: np.ndarray) -> bytes:
    """Huffman-code ``values`` (int64) whose distinct values and counts are ``used``/``counts``."""
    n = int(values.size)
    lengths = huffman_lengths(counts)
    codes = canonical_codes(lengths)
    if int(used[-1]) < (1 << 20):
        index_of = np.zeros(int(used[-1]) + 1, dtype=np.int64)
        index_of[used] = np.arange(used.size)
        idx = index_of[values]
    else:
        idx = np.searchsorted(used, values)
    code_len, code_bits = _paired_codes(idx, lengths, codes)
    ends = np.cumsum(code_len)
    total_bits = int(ends[-1])
    starts = ends - code_len
    payload = _scatter_codes(code_bits, code_len, starts, total_bits)
    blog = block_log2(n)
    step = (1 << blog) // 2 if code_len.size < n else 1 << blog  # blocks hold 2**blog values
    block_bits = np.diff(np.append(starts[::step], total_bits))
    bw = max(1, int(block_bits.max()).bit_length())
    header = _table_bytes(used, lengths) + struct.pack("<BBB", int(lengths.max()), blog, bw)
    return header + pack_bits(block_bits, bw) + payload


def _paired_codes(idx: np.ndarray, lengths: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(length, code) of each codeword to write; adjacent codes are merged in pairs when cheap.

    Merging two codes (at most 40 bits) through a table of all pairs halves
    the number of elements every later pass touches. A lone last value stays
    single; block boundaries (an even number of values apart) are unaffected.
    """
    m = lengths.size
    if m > 256 or idx.size < 2:
        return lengths[idx], codes[idx]
    pair_len = (lengths[:, None] + lengths[None, :]).reshape(-1)
    pair_code = ((codes[:, None] << lengths[None, :]) | codes[None, :]).reshape(-1)
    even = idx.size - idx.size % 2
    pair = idx[0:even:2] * m + idx[1:even:2]
    code_len, code_bits = pair_len[pair], pair_code[pair]
    if even < idx.size:
        code_len = np.append(code_len, lengths[idx[-1]])
        code_bits = np.append(code_bits, codes[idx[-1]])
    return code_len, code_bits


def _scatter_codes(code: np.ndarray, length: np.ndarray, start: np.ndarray, total_bits: int) -> bytes:
    """Write codes MSB-first at their bit offsets, 64-bit word by word.

    A code lands in word ``start // 64`` and, if it crosses the word's end,
    spills its low bits into the next word (at most one spill per word). The
    starts are sorted, so the codes of a word are OR-ed with one ``reduceat``.
    """
    nwords = total_bits // 64 + 2
    word = start >> 6
    end = (start & 63) + length
    code64 = code.astype(np.uint64)
    hi = (code64 << np.maximum(64 - end, 0).astype(np.uint64)) >> np.maximum(end - 64, 0).astype(np.uint64)
    words = np.zeros(nwords, dtype=np.uint64)
    boundary = np.empty(word.size, dtype=bool)
    boundary[0] = True
    np.not_equal(word[1:], word[:-1], out=boundary[1:])
    run_starts = np.flatnonzero(boundary)
    words[word[run_starts]] = np.bitwise_or.reduceat(hi, run_starts)
    spill = np.flatnonzero(end > 64)
    if spill.size:
        words[word[spill] + 1] |= code64[spill] << (128 - end[spill]).astype(np.uint64)
    return words.astype(">u8").tobytes()[: (total_bits + 7) // 8]


def decode_stream(r: Reader, count: int) -> np.ndarray:
    """Decode ``count`` (>= 1) values from the rest of ``r``, validating everything."""
    used, lengths = _read_table(r)
    top, blog, bw = r.unpack("<BBB")
    if used.size < 2 or not kraft_ok(lengths) or int(lengths.max()) != top:
        raise CodecError("an entropy-coded stream has an invalid code-length table")
    if blog != block_log2(count) or not 1 <= bw <= 32:
        raise CodecError("an entropy-coded stream has an invalid block layout")
    nblocks = -(-count // (1 << blog))
    block_bits = unpack_bits(r.take(packed_size(nblocks, bw)), bw, nblocks).astype(np.int64)
    payload = r.take(r.left)
    total_bits = int(block_bits.sum())
    if len(payload) != (total_bits + 7) // 8:
        raise CodecError("an entropy-coded stream's length does not match its block table")
    if not count <= total_bits <= count * MAX_CODE_LENGTH:
        raise CodecError("an entropy-coded stream declares an impossible number of bits")
    if total_bits % 8 and payload[-1] & ((1 << (8 - total_bits % 8)) - 1):
        raise CodecError("an entropy-coded stream has non-zero padding bits; it is corrupt")
    return used[_decode_blocks(payload, DecodeTable(lengths), block_bits, count, blog)]


def _read_table(r: Reader) -> tuple[np.ndarray, np.ndarray]:
    (kind,) = r.unpack("<B")
    if kind == _TABLE_DENSE:
        (alphabet,) = r.unpack("<I")
        if alphabet < 2 or packed_size(alphabet, _LEN_BITS) > r.left:
            raise CodecError("an entropy-coded stream's code table is truncated or too large")
        table = unpack_bits(r.take(packed_size(alphabet, _LEN_BITS)), _LEN_BITS, alphabet).astype(np.int64)
        used = np.flatnonzero(table).astype(np.int64)
        return used, table[used]
    if kind != _TABLE_SPARSE:
        raise CodecError(f"an entropy-coded stream has an unknown code table kind {kind}")
    used_n, width = r.unpack("<IB")
    if used_n < 2 or not 1 <= width <= 32:
        raise CodecError("an entropy-coded stream has an invalid sparse code table")
    if packed_size(used_n, width) + packed_size(used_n, _LEN_BITS) > r.left:
        raise CodecError("an entropy-coded stream's code table is truncated")
    used = unpack_bits(r.take(packed_size(used_n, width)), width, used_n).astype(np.int64)
    lengths = unpack_bits(r.take(packed_size(used_n, _LEN_BITS)), _LEN_BITS, used_n).astype(np.int64)
    if not bool(np.all(np.diff(used) > 0)):
        raise CodecError("an entropy-coded stream's sparse code table is not sorted")
    return used, lengths


def _decode_blocks(payload: bytes, table: DecodeTable, block_bits: np.ndarray,
                   count: int, blog: int) -> np.ndarray:
    """Decode all blocks in lock step: one numpy step per value position in a block.

    Every step moves each block's cursor by at most ``table.top`` bits, so
    zero padding of ``steps * top / 8`` bytes keeps even a corrupt stream's
    reads in bounds; the end positions are checked afterwards.
    """
    bsize = 1 << blog
    nblocks = block_bits.size
    steps = min(bsize, count)
    pad = b"\0" * (steps * table.top // 8 + 8)
    raw = np.frombuffer(payload + pad, dtype=np.uint8).astype(np.int64)
    window = (raw[:-3] << 24) | (raw[1:-2] << 16) | (raw[2:-1] << 8) | raw[3:]
    pos = np.concatenate(([0], np.cumsum(block_bits)[:-1])).astype(np.int64)
    expected_end = pos + block_bits
    last_count = count - (nblocks - 1) * bsize
    out = np.empty((steps, nblocks), dtype=np.int64)
    shift_base = 32 - table.top
    mask = (1 << table.top) - 1
    packed = table.packed
    last_end = 0
    for t in range(steps):
        entry = packed[(window[pos >> 3] >> (shift_base - (pos & 7))) & mask]
        out[t] = entry >> 5
        pos += entry & 31
        if t + 1 == last_count:
            last_end = int(pos[-1])
    pos[-1] = last_end
    if not np.array_equal(pos, expected_end):
        raise CodecError("an entropy-coded stream does not decode to its declared lengths; it is corrupt")
    flat = out.T.reshape(-1)[:count]
    if int(flat.max()) >= table.invalid:
        raise CodecError("an entropy-coded stream contains an invalid code; it is corrupt")
    return flat
