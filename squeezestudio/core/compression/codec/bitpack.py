"""Fixed-width bit packing of unsigned integers (1 to 32 bits each).

Quantized symbols and sparse-index gaps that are not entropy coded are stored
at exactly ``bits`` bits each, so a 5-bit codebook index costs 5 bits in the
file and the size report can promise ``ceil(n * bits / 8)`` bytes. Values are
laid out least-significant bit first (bit ``i`` of the stream is bit
``i % 8`` of byte ``i // 8``); whole-byte widths take a plain little-endian
fast path. Everything is vectorised with numpy; large inputs are processed in
chunks so the temporary bit matrix stays small.
"""

from __future__ import annotations

import numpy as np

from squeezestudio.core.errors import CodecError

MAX_BITS = 32
_CHUNK = 1 << 20  # values per chunk; a multiple of 8 keeps chunks byte-aligned
_BYTE_WIDTHS = {8: "<u1", 16: "<u2", 32: "<u4"}


def packed_size(count: int, bits: int) -> int:
    """Bytes taken by ``count`` values at ``bits`` bits each."""
    return (int(count) * int(bits) + 7) // 8


def _check_bits(bits: int) -> None:
    if not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise CodecError(f"bit width {bits!r} is not supported; use 1 to {MAX_BITS} bits")


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers below ``2**bits`` into ``packed_size(n, bits)`` bytes."""
    _check_bits(bits)
    bits = int(bits)
    v = np.asarray(values).reshape(-1)
    if v.size == 0:
        return b""
    if v.dtype.kind not in "ui":
        raise CodecError(f"cannot bit-pack values of type {v.dtype}; integers are needed")
    if v.dtype.kind == "i" and int(v.min()) < 0:
        raise CodecError("cannot bit-pack negative values")
    if int(v.max()) >= (1 << bits):
        raise CodecError(f"a value ({int(v.max())}) does not fit in {bits} bits")
    if bits in _BYTE_WIDTHS:
        return v.astype(_BYTE_WIDTHS[bits]).tobytes()
    v64 = v.astype(np.uint64)
    shifts = np.arange(bits, dtype=np.uint64)
    parts = []
    for start in range(0, v64.size, _CHUNK):
        chunk = v64[start:start + _CHUNK]
        bit_matrix = ((chunk[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        parts.append(np.packbits(bit_matrix.reshape(-1), bitorder="little").tobytes())
    return b"".join(parts)


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` values as ``uint32``.

    Raises :class:`CodecError` when ``data`` is not exactly
    ``packed_size(count, bits)`` bytes long, so a lying length never reads
    past the stream or silently drops values.
    """
    _check_bits(bits)
    bits = int(bits)
    if not isinstance(count, (int, np.integer)) or count < 0:
        raise CodecError(f"a packed stream's value count must be a non-negative integer, not {count!r}")
    count = int(count)
    expected = packed_size(count, bits)
    if len(data) != expected:
        raise CodecError(
            f"a {bits}-bit packed stream of {count} values should be {expected} bytes but is {len(data)}")
    if count == 0:
        return np.zeros(0, dtype=np.uint32)
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits in _BYTE_WIDTHS:
        return raw.view(_BYTE_WIDTHS[bits]).astype(np.uint32)
    weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))
    out = np.empty(count, dtype=np.uint32)
    chunk_bytes = _CHUNK * bits // 8
    for i, start in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - start)
        byte_chunk = raw[i * chunk_bytes: i * chunk_bytes + packed_size(n, bits)]
        bit_matrix = np.unpackbits(byte_chunk, bitorder="little")[: n * bits].reshape(n, bits)
        out[start:start + n] = (bit_matrix.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
    # Padding bits in the last byte must be zero: otherwise the stream was altered.
    tail_bits = count * bits % 8
    if tail_bits and raw[-1] >> tail_bits:
        raise CodecError("a packed stream has non-zero padding bits; the file is corrupt")
    return out
