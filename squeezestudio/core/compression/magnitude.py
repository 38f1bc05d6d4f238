"""Magnitude selection over one or many weight tensors, without a full sort.

Pruning needs "the k smallest |w|" over a layer, or over all selected layers
at once (global scope, as in Deep Compression). Sorting or concatenating 61M
values costs seconds and hundreds of MB; instead we (1) estimate a narrow
bracket around the k-th magnitude from a small deterministic sample, (2) make
one chunked pass that counts the values below the bracket exactly and collects
the few inside it, and (3) select inside the bracket with ``np.partition``.
The result is exact; the sample only decides how much work step 3 does (a bad
bracket falls back to a wider one, never to a wrong answer).

Magnitudes are computed chunk by chunk into one reused buffer, so no full
``abs`` copy of a big layer is ever allocated.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

CHUNK = 1 << 20
SAMPLE = 1 << 20
EXACT_BELOW = 1 << 21  # below this many values, just partition them all


def _abs_chunks(flat: np.ndarray, buf: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, |flat[start:start+len]|)`` using ``buf`` as scratch space."""
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        out = buf[:part.size]
        np.abs(part, out=out)
        yield start, out


def _flat32(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in arrays]


def _sample_bracket(flats: list[np.ndarray], k: int, total: int) -> tuple[float, float]:
    """A [lo, hi] range of magnitudes that very probably holds the k-th smallest."""
    rng = np.random.default_rng(0)
    pieces = []
    for flat in flats:
        m = max(1, int(round(SAMPLE * flat.size / total)))
        pieces.append(np.abs(flat[rng.integers(0, flat.size, m)]))
    sample = np.sort(np.concatenate(pieces))
    m = sample.size
    q = k / total
    margin = 8.0 * math.sqrt(max(q * (1.0 - q), 1.0 / m) / m) + 2.0 / m
    lo_i = int(math.floor((q - margin) * m))
    hi_i = int(math.ceil((q + margin) * m))
    lo = float(sample[lo_i]) if lo_i >= 0 else 0.0
    hi = float(sample[hi_i]) if hi_i < m else math.inf
    return lo, hi


def _count_and_collect(flats: list[np.ndarray], lo: float, hi: float) -> tuple[int, np.ndarray]:
    """Exact count of magnitudes < lo, and all magnitudes in [lo, hi]."""
    buf = np.empty(min(CHUNK, max(f.size for f in flats)), dtype=np.float32)
    below = 0
    inside: list[np.ndarray] = []
    for flat in flats:
        for _, mag in _abs_chunks(flat, buf):
            below += int(np.count_nonzero(mag < lo))
            sel = mag[(mag >= lo) & (mag <= hi)]
            if sel.size:
                inside.append(sel.copy())
    cands = np.concatenate(inside) if inside else np.empty(0, dtype=np.float32)
    return below, cands


def kth_smallest_magnitude(arrays: Sequence[np.ndarray], k: int) -> float:
    """The k-th smallest |value| (1-based) over all ``arrays`` taken together."""
    flats = [f for f in _flat32(arrays) if f.size]
    total = sum(f.size for f in flats)
    if not 1 <= k <= total:
        raise ValueError(f"k={k} is outside 1..{total}")
    if total <= EXACT_BELOW:
        mags = np.abs(np.concatenate(flats))
        return float(np.partition(mags, k - 1)[k - 1])
    lo, hi = _sample_bracket(flats, k, total)
    below, cands = _count_and_collect(flats, lo, hi)
    rank = k - below
    if not 1 <= rank <= cands.size:  # the sample missed: widen to everything (exact, slower)
        below, cands = _count_and_collect(flats, 0.0, math.inf)
        rank = k - below
    return float(np.partition(cands, rank - 1)[rank - 1])


def smallest_k_masks(arrays: Sequence[np.ndarray], k: int) -> list[np.ndarray]:
    """Keep-masks that drop exactly the k smallest magnitudes over all ``arrays``.

    Ties at the k-th magnitude are broken by position (earlier array, then
    earlier flat index, is dropped first), so the count is exact and the result
    deterministic. Masks are flat boolean arrays, True = kept.
    """
    flats = _flat32(arrays)
    total = sum(f.size for f in flats)
    if k <= 0:
        return [np.ones(f.size, dtype=bool) for f in flats]
    if k >= total:
        return [np.zeros(f.size, dtype=bool) for f in flats]
    t = kth_smallest_magnitude(flats, k)
    masks, ties = [], []
    below = 0
    buf = np.empty(min(CHUNK, max(f.size for f in flats)), dtype=np.float32)
    for flat in flats:
        mask = np.empty(flat.size, dtype=bool)
        eq_parts = []
        for start, mag in _abs_chunks(flat, buf):
            kept = mask[start:start + mag.size]
            np.greater(mag, t, out=kept)
            eq = np.flatnonzero(mag == t)
            below += mag.size - int(np.count_nonzero(kept)) - eq.size
            if eq.size:
                eq_parts.append(eq + start)
        masks.append(mask)
        ties.append(np.concatenate(eq_parts) if eq_parts else np.empty(0, dtype=np.int64))
    drop_equal = k - below  # how many of the values equal to t must go
    for mask, eq in zip(masks, ties):
        keep_eq = eq[drop_equal:] if drop_equal > 0 else eq
        mask[keep_eq] = True
        drop_equal = max(0, drop_equal - eq.size)
    return masks


def threshold_masks(arrays: Sequence[np.ndarray], threshold: float) -> list[np.ndarray]:
    """Keep-masks that drop every value with |w| < threshold."""
    masks = []
    for flat in _flat32(arrays):
        mask = np.empty(flat.size, dtype=bool)
        if flat.size:
            buf = np.empty(min(CHUNK, flat.size), dtype=np.float32)
            for start, mag in _abs_chunks(flat, buf):
                np.greater_equal(mag, threshold, out=mask[start:start + mag.size])
        masks.append(mask)
    return masks
