"""Entropy coding of integer symbol streams: ``encode(symbols) -> bytes``, ``decode(bytes, count)``.

The bytes are self-contained (the code lengths travel with them)::

    u8 mode          0: one distinct symbol, then u32 symbol (5 bytes, no payload)
                     1: Huffman coded, then:
    u8 order         symbols coded per Huffman codeword: 1, 2 or 4
    [u32 radix]      only for order > 1: tuples are read in base ``radix``
    Huffman stream   of ceil(count / order) values (see :mod:`.huffman_stream`)

Why tuples: a Huffman code spends at least one bit per codeword, so on a
skewed alphabet (gap streams of lightly pruned layers, where a gap of 1
dominates) it can be far above the Shannon bound. Coding pairs or quadruples
of symbols as one codeword ("extended Huffman") brings such streams back
within about 1 % of it. The encoder estimates every order's exact size from
histograms and keeps the smallest; a short last tuple is padded with zeros,
which the decoder checks.
"""

from __future__ import annotations

import struct

import numpy as np

from squeezestudio.core.compression.codec.huffman_stream import Reader, decode_stream, encode_stream
from squeezestudio.core.compression.codec.huffman_stream import estimated_size as stream_size
from squeezestudio.core.errors import CodecError

_MODE_SINGLE, _MODE_HUFFMAN = 0, 1
_ORDERS = (1, 2, 4)
_MAX_TUPLE_ALPHABET = 1 << 16  # radix**order for tuple coding: code tables stay small
_GOOD_ENOUGH = 1.01  # order-1 Huffman within 1 % of the Shannon bound: tuples cannot gain much
_MAX_SYMBOL = (1 << 32) - 1
_BINCOUNT_LIMIT = 1 << 20  # histogram by bincount below this symbol value, by sorting above


def _as_symbols(symbols: np.ndarray) -> np.ndarray:
    s = np.asarray(symbols).reshape(-1)
    if s.size and s.dtype.kind not in "ui":
        raise CodecError(f"entropy coding needs integer symbols, not {s.dtype}")
    if s.size and (int(s.min()) < 0 or int(s.max()) > _MAX_SYMBOL):
        raise CodecError("entropy-coded symbols must lie in 0 .. 2**32-1")
    return s.astype(np.int64, copy=False)


def symbol_histogram(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(used symbols ascending, their counts) of a symbol array."""
    s = _as_symbols(symbols)
    if s.size and int(s.max()) < _BINCOUNT_LIMIT:
        counts = np.bincount(s)
        used = np.flatnonzero(counts)
        return used, counts[used]
    used, counts = np.unique(s, return_counts=True)
    return used.astype(np.int64), counts.astype(np.int64)


def estimated_size(used: np.ndarray, counts: np.ndarray) -> int:
    """``len(encode(s))`` at order 1 for a stream with this histogram (within a few bytes)."""
    return 5 if used.size == 1 else 2 + stream_size(used, counts)


def _tuples(s: np.ndarray, order: int, radix: int) -> np.ndarray:
    """Group ``s`` into base-``radix`` numbers of ``order`` digits (zero-padded at the end)."""
    padded = np.zeros(-(-s.size // order) * order, dtype=np.int64)
    padded[: s.size] = s
    grouped = padded.reshape(-1, order)
    value = grouped[:, 0].copy()
    for j in range(1, order):
        value = value * radix + grouped[:, j]
    return value


def encode(symbols: np.ndarray) -> bytes:
    """Entropy-code non-negative integer ``symbols`` (any shape; flattened)."""
    s = _as_symbols(symbols)
    if s.size == 0:
        return b""
    used, counts = symbol_histogram(s)
    if used.size == 1:
        return struct.pack("<BI", _MODE_SINGLE, int(used[0]))
    radix = int(used[-1]) + 1
    best_size, order, values, v_used, v_counts = 2 + stream_size(used, counts), 1, s, used, counts
    shannon_bits = float(-(counts * np.log2(counts / s.size)).sum())
    if 8 * best_size > _GOOD_ENOUGH * shannon_bits + 8 * 64:  # 64 bytes: headers and tables
        for k in _ORDERS[1:]:
            if radix ** k > _MAX_TUPLE_ALPHABET or s.size < 4 * k:
                break
            k_values = _tuples(s, k, radix)
            k_used, k_counts = symbol_histogram(k_values)
            size = 6 + stream_size(k_used, k_counts)
            if size < best_size:
                best_size, order, values, v_used, v_counts = size, k, k_values, k_used, k_counts
    head = struct.pack("<BB", _MODE_HUFFMAN, order) + (struct.pack("<I", radix) if order > 1 else b"")
    return head + encode_stream(values, v_used, v_counts)


def decode(data: bytes, count: int) -> np.ndarray:
    """Decode ``count`` symbols (as ``int64``) from :func:`encode`'s bytes, validating all of it.

    The caller bounds ``count`` (a constant stream of any length is 5 bytes).
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise CodecError(f"a symbol count must be a non-negative integer, not {count!r}")
    count = int(count)
    data = bytes(data)
    if count == 0:
        if data:
            raise CodecError("an empty entropy-coded stream has unexpected bytes")
        return np.zeros(0, dtype=np.int64)
    r = Reader(data)
    mode, = r.unpack("<B")
    if mode == _MODE_SINGLE:
        (symbol,) = r.unpack("<I")
        if r.left:
            raise CodecError("a constant entropy-coded stream has trailing bytes")
        return np.full(count, symbol, dtype=np.int64)
    if mode != _MODE_HUFFMAN:
        raise CodecError(f"unknown entropy-coding mode {mode}")
    (order,) = r.unpack("<B")
    if order not in _ORDERS:
        raise CodecError(f"an entropy-coded stream groups {order} symbols per code, which is not supported")
    radix = r.unpack("<I")[0] if order > 1 else 0
    if order > 1 and not (2 <= radix and radix ** order <= _MAX_TUPLE_ALPHABET):
        raise CodecError("an entropy-coded stream has an invalid tuple radix")
    values = decode_stream(r, -(-count // order))
    if order == 1:
        return values
    if int(values.max()) >= radix ** order:
        raise CodecError("an entropy-coded stream holds a tuple outside its radix")
    digits = np.empty((values.size, order), dtype=np.int64)
    for j in range(order - 1, -1, -1):
        digits[:, j] = values % radix
        values = values // radix
    flat = digits.reshape(-1)
    if flat[count:].any():
        raise CodecError("an entropy-coded stream has non-zero tuple padding; it is corrupt")
    return flat[:count]
