"""Positions of kept weights as bounded-width relative gaps (Deep Compression's CSR idea).

Instead of absolute indices, each kept position is stored as its distance
from the previous kept position (the first from position -1), which needs
few bits when pruning leaves weights spread evenly. With a gap width of
``w`` bits, symbols mean:

- ``1 .. 2**w - 1``: the next kept position is that many steps ahead;
- ``0`` (overflow): skip ``2**w - 1`` positions *without* a kept value.

So a gap ``g`` becomes ``(g - 1) // (2**w - 1)`` overflow symbols and then
``g - q * (2**w - 1)``. Deep Compression instead stored a filler zero weight
for a long gap; a value-less skip symbol is cheaper and keeps the value
stream equal to the kept weights. A stream never ends with an overflow
symbol (positions after the last kept weight need no symbols), so every mask
has exactly one encoding per width. Width 1 degenerates to a plain bitmap.

The width is chosen per tensor as the one with the smallest stream, for
fixed-width storage (exact size) or for Huffman coding (estimated from the
gap histogram).
"""

from __future__ import annotations

import numpy as np

from squeezestudio.core.compression.codec.bitpack import packed_size
from squeezestudio.core.compression.codec.entropy import estimated_size
from squeezestudio.core.compression.encoding import kept_positions
from squeezestudio.core.errors import CodecError

MAX_GAP_WIDTH = 16
GAP_WIDTHS = tuple(range(1, MAX_GAP_WIDTH + 1))


def mask_gaps(mask: np.ndarray) -> np.ndarray:
    """Distance of every kept position from the previous one (the first from -1), as int64."""
    m = np.asarray(mask)
    positions = kept_positions(mask) if m is mask and m.dtype == np.bool_ else \
        np.flatnonzero(np.asarray(m, dtype=bool).reshape(-1))
    return np.diff(positions, prepend=-1).astype(np.int64, copy=False)


_gaps = mask_gaps


def _gap_histogram(gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct gaps, how often each occurs): every width's statistics follow from these."""
    if gaps.size and int(gaps.max()) < (1 << 24):
        counts = np.bincount(gaps)
        values = np.flatnonzero(counts)
        return values.astype(np.int64), counts[values].astype(np.int64)
    values, counts = np.unique(gaps, return_counts=True)
    return values.astype(np.int64), counts.astype(np.int64)


def gap_symbols(mask: np.ndarray, width: int) -> np.ndarray:
    """The gap-symbol stream (values ``< 2**width``) of a flat boolean mask."""
    return symbols_from_gaps(mask_gaps(mask), width)


def symbols_from_gaps(gaps: np.ndarray, width: int) -> np.ndarray:
    """:func:`gap_symbols` for gaps already computed with :func:`mask_gaps`."""
    if not 1 <= width <= MAX_GAP_WIDTH:
        raise CodecError(f"a gap width of {width} bits is not supported; use 1 to {MAX_GAP_WIDTH}")
    if gaps.size == 0:
        return np.zeros(0, dtype=np.int64)
    skip = (1 << width) - 1
    overflows = (gaps - 1) // skip
    last_of_gap = np.cumsum(overflows + 1) - 1
    out = np.zeros(int(last_of_gap[-1]) + 1, dtype=np.int64)
    out[last_of_gap] = gaps - overflows * skip
    return out


def symbol_count(mask: np.ndarray, width: int) -> int:
    """Length of :func:`gap_symbols` without building it."""
    gaps = _gaps(mask)
    return int(gaps.size + ((gaps - 1) // ((1 << width) - 1)).sum())


def mask_from_gaps(symbols: np.ndarray, width: int, numel: int, kept: int) -> np.ndarray:
    """Rebuild the flat boolean mask of ``numel`` positions, validating the stream.

    Raises :class:`CodecError` if the stream holds a symbol wider than
    ``width``, ends with an overflow symbol, does not mark exactly ``kept``
    positions, or runs past ``numel``.
    """
    if not 1 <= width <= MAX_GAP_WIDTH:
        raise CodecError(f"a gap width of {width} bits is not supported")
    s = np.asarray(symbols, dtype=np.int64).reshape(-1)
    mask = np.zeros(numel, dtype=bool)
    if s.size == 0:
        if kept != 0:
            raise CodecError(f"an empty position stream cannot mark {kept} kept weights")
        return mask
    skip = (1 << width) - 1
    if int(s.min()) < 0 or int(s.max()) > skip:
        raise CodecError(f"a position stream holds a gap wider than {width} bits")
    if s[-1] == 0:
        raise CodecError("a position stream ends with an overflow symbol; the file is corrupt")
    nonzero = s != 0
    if int(nonzero.sum()) != kept:
        raise CodecError(f"a position stream marks {int(nonzero.sum())} weights but {kept} values are stored")
    positions = np.cumsum(np.where(nonzero, s, skip)) - 1
    if int(positions[-1]) >= numel:
        raise CodecError(f"a position stream runs past the tensor's {numel} weights")
    mask[positions[nonzero]] = True
    return mask


def best_fixed_width(mask: np.ndarray) -> tuple[int, int]:
    """(width, bytes) of the smallest fixed-width gap stream over :data:`GAP_WIDTHS`."""
    return best_fixed_width_of_gaps(mask_gaps(mask))


def best_fixed_width_of_gaps(gaps: np.ndarray) -> tuple[int, int]:
    """:func:`best_fixed_width` for gaps already computed with :func:`mask_gaps`.

    Works on the gap histogram (a few hundred distinct gaps), not the gaps.
    """
    if gaps.size == 0:
        return 1, 0
    values, freq = _gap_histogram(gaps)
    top = int(values[-1])
    best: tuple[int, int] | None = None
    for w in GAP_WIDTHS:
        count = gaps.size + int((((values - 1) // ((1 << w) - 1)) * freq).sum())
        size = packed_size(count, w)
        if best is None or size < best[1]:
            best = (w, size)
        if (1 << w) - 1 >= top:
            break  # no overflow symbols left: wider widths only cost more
    assert best is not None
    return best


def best_coded_width(mask: np.ndarray) -> int:
    """The width whose Huffman-coded gap stream is smallest (estimated from histograms)."""
    return best_coded_width_of_gaps(mask_gaps(mask))


def best_coded_width_of_gaps(gaps: np.ndarray) -> int:
    """:func:`best_coded_width` for gaps already computed with :func:`mask_gaps`."""
    if gaps.size == 0:
        return 1
    values, freq = _gap_histogram(gaps)
    top = int(values[-1])
    best_w, best_size = 1, None
    for w in GAP_WIDTHS:
        skip = (1 << w) - 1
        overflows = int((((values - 1) // skip) * freq).sum())
        counts = np.bincount((values - 1) % skip + 1, weights=freq, minlength=skip + 1)
        counts = np.rint(counts).astype(np.int64)
        counts[0] = overflows
        used = np.flatnonzero(counts)
        size = estimated_size(used, counts[used])
        if best_size is None or size < best_size:
            best_w, best_size = w, size
        if skip >= top:
            break  # wider widths give the same symbols, hence the same coded size
    return best_w
