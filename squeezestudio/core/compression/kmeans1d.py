"""Exact Lloyd k-means for scalar data (weight sharing), fast because the data is 1-D.

With sorted centroids, each cluster is a contiguous run of the sorted data
whose ends are the midpoints between neighbouring centroids. So we sort once
(O(n log n)), keep a cumulative sum, and each Lloyd iteration is k binary
searches plus k subtractions (O(k log n)) instead of the O(n k) distance
table general-purpose k-means builds. The iterations are exactly Lloyd's (not
a histogram approximation), so the result is what scikit-learn's KMeans
reaches from the same initial centroids, usually with less error because we
iterate to a fixed point instead of stopping on a centre-shift tolerance.

Empty clusters are re-seeded like scikit-learn does: on the points farthest
from their centroids (in 1-D those lie at the ends of the runs, so only
O(k * empties) candidates are examined). Initialisations follow Han et al.,
"Deep Compression" (ICLR 2016): linear (evenly spaced between min and max, their
best), density (quantiles of the CDF) and random (Forgy, seeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

INITS = ("linear", "density", "random")


@dataclass
class KMeans1DResult:
    """Outcome of :func:`kmeans1d`.

    ``centroids`` are sorted ascending (float64); ``labels[i]`` indexes the
    centroid nearest to ``data[i]`` (original order); ``sse`` is the sum of
    squared distances to those centroids; ``converged`` is False when
    ``max_iter`` stopped the iterations first.
    """

    centroids: np.ndarray
    labels: np.ndarray
    sse: float
    iterations: int
    converged: bool


def initial_centroids(data: np.ndarray, k: int, init: str = "linear", seed: int = 0) -> np.ndarray:
    """k starting centroids (float64, sorted) by one of :data:`INITS`."""
    x = np.asarray(data).reshape(-1)
    if x.size == 0:
        raise ValueError("cannot cluster an empty array")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if init == "linear":
        lo, hi = float(x.min()), float(x.max())
        return np.linspace(lo, hi, k, dtype=np.float64) if k > 1 else np.array([(lo + hi) / 2.0])
    if init == "density":
        xs = np.sort(x)
        pos = np.minimum(((np.arange(k) + 0.5) / k * xs.size).astype(np.int64), xs.size - 1)
        return xs[pos].astype(np.float64)
    if init == "random":
        rng = np.random.default_rng(seed)
        idx = rng.choice(x.size, size=k, replace=x.size < k)
        return np.sort(x[idx].astype(np.float64))
    raise ValueError(f"unknown initialisation {init!r}; known: {', '.join(INITS)}")


def boundaries(centroids: np.ndarray) -> np.ndarray:
    """Midpoints between consecutive sorted centroids (the 1-D Voronoi edges)."""
    c = np.asarray(centroids, dtype=np.float64)
    return (c[:-1] + c[1:]) * 0.5


def _edges_for(data: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Edges rounded down to ``data``'s float dtype, so comparisons stay exact.

    For a float32 value x and a float64 edge b, ``x <= b`` holds exactly when
    ``x <= round_down_to_float32(b)``; comparing in float32 avoids converting
    millions of weights to float64.
    """
    if data.dtype != np.float32:
        return edges.astype(np.float64)
    down = edges.astype(np.float32)
    too_big = down.astype(np.float64) > edges
    down[too_big] = np.nextafter(down[too_big], np.float32(-np.inf))
    return down


_TABLE_BINS = 1 << 16
_TABLE_FROM = 1 << 16  # below this many values a plain binary search is as fast


def assign(data: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for every value (centroids sorted ascending).

    A value exactly on a midpoint goes to the lower centroid, matching the
    run boundaries used during the iterations.
    """
    x = np.asarray(data)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    edges = _edges_for(x, boundaries(centroids))
    if x.size < _TABLE_FROM or edges.size == 0 or not np.all(np.isfinite(edges)):
        return np.searchsorted(edges, x, side="left")
    return _assign_by_table(x.reshape(-1), edges).reshape(x.shape)


def _assign_by_table(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``searchsorted(edges, x, side="left")`` without a binary search per value.

    ``f(v) = clip(floor((v - lo) * scale))`` is computed the same way for values
    and edges and is monotone (every rounding step is), so for a value in a
    bin that holds no edge, "edge < value" is exactly "edge's bin < value's
    bin": a table lookup. Only the few values in bins that hold an edge (or
    that are not finite) take the binary search.
    """
    lo, hi = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.searchsorted(edges, x, side="left")
    dtype = x.dtype.type
    scale = dtype(_TABLE_BINS / (hi - lo))
    low = dtype(lo)

    def bin_of(v: np.ndarray) -> np.ndarray:
        scaled = np.subtract(v, low)
        scaled *= scale
        np.clip(scaled, 0, _TABLE_BINS - 1, out=scaled)
        return scaled.astype(np.int32)  # truncation is floor: values are >= 0 here

    edge_bins = bin_of(edges.astype(x.dtype))
    table = np.searchsorted(edge_bins, np.arange(_TABLE_BINS), side="left")  # edges in lower bins
    table[edge_bins] = -1  # bins holding an edge: decided by binary search
    labels = table.take(bin_of(x))
    redo = np.flatnonzero(labels < 0)
    if redo.size:
        labels[redo] = np.searchsorted(edges, x[redo], side="left")
    return labels


def sse_of(data: np.ndarray, centroids: np.ndarray) -> float:
    """Within-cluster sum of squared errors of ``data`` against its nearest centroids."""
    c = np.sort(np.asarray(centroids, dtype=np.float64))
    x = np.asarray(data, dtype=np.float64).reshape(-1)
    d = x - c[assign(x, c)]
    return float(np.dot(d, d))


def _run_ends(xs: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Run boundaries in the sorted data for sorted centroids ``c`` (k + 1 indices).

    Equal centroids share one Voronoi cell; like scikit-learn's argmin, the
    first of them takes all its points and the others are left empty (and are
    then re-seeded).
    """
    distinct, first = np.unique(c, return_index=True)
    cell_ends = np.searchsorted(xs, _edges_for(xs, boundaries(distinct)), side="right")
    counts = np.zeros(c.size, dtype=np.int64)
    counts[first] = np.diff(np.concatenate(([0], cell_ends, [xs.size])))
    ends = np.zeros(c.size + 1, dtype=np.int64)
    np.cumsum(counts, out=ends[1:])
    return ends


def _relocate_empty(xs: np.ndarray, ends: np.ndarray, c_old: np.ndarray, new: np.ndarray,
                    sums: np.ndarray, counts: np.ndarray) -> None:
    """Move empty clusters onto the points farthest from their centroids (in place).

    As in scikit-learn, each chosen point leaves its cluster (whose mean is
    updated) and becomes the centre of an empty one. Candidates are distinct
    values (two empty clusters on one value would waste one) with a positive
    distance, so duplicated data never creates loops.
    """
    empty = np.flatnonzero(counts == 0)
    e = empty.size
    starts = ends[:-1]
    stops = ends[1:]
    cands: list[int] = []
    for j in np.flatnonzero(counts > 0):
        lo, hi = int(starts[j]), int(stops[j])
        p = lo
        for _ in range(e):  # the e smallest distinct values of the run
            if p >= hi:
                break
            cands.append(p)
            p = int(np.searchsorted(xs, xs[p], side="right"))
        p = hi - 1
        for _ in range(e):  # the e largest distinct values of the run
            if p < lo:
                break
            cands.append(p)
            p = int(np.searchsorted(xs, xs[p], side="left")) - 1
    idx = np.unique(np.asarray(cands, dtype=np.int64))
    owner = np.searchsorted(stops, idx, side="right")
    dist = (xs[idx].astype(np.float64) - c_old[owner]) ** 2
    slots = iter(empty)
    slot = next(slots, None)
    for pick in np.lexsort((idx, -dist)):
        if slot is None or dist[pick] <= 0.0:
            break
        j = owner[pick]
        if counts[j] <= 1:  # taking a cluster's only point would just move the hole
            continue
        value = float(xs[idx[pick]])
        sums[j] -= value
        counts[j] -= 1
        new[j] = sums[j] / counts[j]
        new[slot] = value
        sums[slot] = value
        counts[slot] = 1
        slot = next(slots, None)


def kmeans1d(data: np.ndarray, k: int, *, init: Union[str, np.ndarray] = "linear",
             max_iter: int = 300, seed: int = 0, with_labels: bool = True, with_sse: bool = True,
             progress: Optional[ProgressCallback] = None,
             cancel: Optional[CancelToken] = None) -> KMeans1DResult:
    """Cluster scalar ``data`` into ``k`` groups with exact Lloyd iterations.

    ``init`` is one of :data:`INITS` or an array of k starting centroids.
    Deterministic for a given input, init and seed. ``with_labels=False``
    skips the final O(n log k) assignment (``labels`` is then empty) for
    callers that assign against their own, e.g. float32-rounded, centroids;
    ``with_sse=False`` skips the O(n) error pass (``sse`` is then NaN).
    """
    x = np.asarray(data).reshape(-1)
    if x.size == 0:
        raise ValueError("cannot cluster an empty array")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if isinstance(init, str):
        c = initial_centroids(x, k, init, seed)
    else:
        c = np.sort(np.asarray(init, dtype=np.float64).reshape(-1))
        if c.size != k:
            raise ValueError(f"{c.size} initial centroids given for k={k}")
    xs = np.sort(x)
    csum = np.empty(xs.size + 1, dtype=np.float64)
    csum[0] = 0.0
    np.cumsum(xs, dtype=np.float64, out=csum[1:])
    prev: Optional[np.ndarray] = None
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        check(cancel)
        ends = _run_ends(xs, c)
        if prev is not None and np.array_equal(ends, prev):
            converged = True
            break
        counts = np.diff(ends).astype(np.float64)
        sums = csum[ends[1:]] - csum[ends[:-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1.0), c)
        if np.any(counts == 0):
            _relocate_empty(xs, ends, c, new, sums, counts)
        c = np.sort(new)
        prev = ends
        report(progress, it / max_iter, f"k-means iteration {it}")
    labels = assign(x, c) if with_labels else np.zeros(0, dtype=np.int64)
    ends = _run_ends(xs, c)
    sse = 0.0 if with_sse else float("nan")
    for j in range(k if with_sse else 0):  # the same errors, run by run on the sorted copy (no big temporaries)
        seg = xs[ends[j]:ends[j + 1]].astype(np.float64) - c[j]
        sse += float(np.dot(seg, seg))
    report(progress, 1.0, "k-means done")
    return KMeans1DResult(centroids=c, labels=labels, sse=sse,
                          iterations=it, converged=converged)
