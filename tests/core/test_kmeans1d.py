"""1-D k-means: exact Lloyd, never worse than scikit-learn from the same start."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from squeezestudio.core.compression.kmeans1d import assign, initial_centroids, kmeans1d, sse_of
from squeezestudio.core.progress import CancelToken, Cancelled


def _data(name: str) -> np.ndarray:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if name == "gaussian":
        return rng.normal(0, 0.05, 1500)
    if name == "laplace":
        return rng.laplace(0, 0.02, 1500)
    if name == "bimodal":
        return np.concatenate([rng.normal(-1, 0.05, 700), rng.normal(1, 0.05, 800)])
    if name == "duplicates":  # few distinct values, none exactly halfway between two others
        return rng.choice([-0.31, -0.12, -0.05, 0.0, 0.07, 0.18, 0.33], 1500)
    if name == "tiny":
        return rng.normal(size=7)
    raise AssertionError(name)


def _sklearn_sse(x: np.ndarray, init: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=init.size, init=init.reshape(-1, 1), n_init=1, max_iter=300)
        km.fit(x.reshape(-1, 1))
    return sse_of(x, km.cluster_centers_.ravel())


@pytest.mark.parametrize("name", ["gaussian", "laplace", "bimodal", "duplicates", "tiny"])
@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_sse_no_worse_than_sklearn_from_same_start(name: str, init: str) -> None:
    """Same start, exact Lloyd to a fixed point: error <= scikit-learn's (which stops on a tolerance).

    Values exactly halfway between two centroids are a tie either side may
    break differently, so the data avoids them.
    """
    x = _data(name)
    for k in (3, 16):
        k = min(k, x.size)
        start = initial_centroids(x, k, init, seed=3)
        ours = kmeans1d(x, k, init=start)
        assert ours.sse <= _sklearn_sse(x, start) * (1 + 1e-9) + 1e-12, (name, init, k)
        assert ours.sse == pytest.approx(sse_of(x, ours.centroids), rel=1e-9, abs=1e-12)


def test_more_clusters_than_distinct_values_gives_zero_error() -> None:
    x = np.repeat([0.5, -0.25, 2.0], [10, 3, 7])
    result = kmeans1d(x, 8, init="linear")
    assert result.sse == pytest.approx(0.0, abs=1e-20)
    assert set(np.round(result.centroids[np.unique(result.labels)], 12)) == {0.5, -0.25, 2.0}


def test_labels_point_at_nearest_centroid_and_centroids_are_means() -> None:
    x = _data("laplace")
    r = kmeans1d(x, 8)
    dist = np.abs(x[:, None] - r.centroids[None, :])
    assert np.all(dist[np.arange(x.size), r.labels] <= dist.min(axis=1) + 1e-15)
    assert r.converged
    for j in np.unique(r.labels):
        assert r.centroids[j] == pytest.approx(x[r.labels == j].mean(), rel=1e-9, abs=1e-15)


def test_float32_input_assignment_is_exact_at_midpoints() -> None:
    c = np.array([0.0, 0.1], dtype=np.float64)
    mid = np.float32(0.05)
    x = np.array([np.nextafter(mid, np.float32(-1)), mid, np.nextafter(mid, np.float32(1))], dtype=np.float32)
    labels64 = assign(x.astype(np.float64), c)
    assert np.array_equal(assign(x, c), labels64)


def test_deterministic_and_seeded_random_init() -> None:
    x = _data("gaussian")
    a = kmeans1d(x, 8, init="random", seed=5)
    b = kmeans1d(x, 8, init="random", seed=5)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.labels, b.labels)
    lin = initial_centroids(x, 4, "linear")
    assert lin[0] == x.min() and lin[-1] == x.max()
    dens = initial_centroids(x, 4, "density")
    assert np.all(np.diff(dens) > 0) and x.min() <= dens[0] and dens[-1] <= x.max()


def test_bad_input_and_cancel() -> None:
    with pytest.raises(ValueError):
        kmeans1d(np.zeros(0), 3)
    with pytest.raises(ValueError):
        initial_centroids(np.ones(3), 2, "nope")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        kmeans1d(_data("gaussian"), 4, cancel=token)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_table_assign_equals_binary_search_on_large_inputs(dtype) -> None:
    from squeezestudio.core.compression.kmeans1d import _edges_for, boundaries

    rng = np.random.default_rng(7)
    x = rng.normal(0, 0.02, 200_000).astype(dtype)
    x = x[np.abs(x) > 0.01]  # pruned weights: two lobes
    for k in (2, 32, 256):
        c = np.sort(rng.choice(x, k, replace=False).astype(np.float64))
        edges = _edges_for(x, boundaries(c))
        x_with_ties = np.concatenate([x, edges.astype(dtype)])  # values exactly on a midpoint
        expected = np.searchsorted(_edges_for(x_with_ties, boundaries(c)), x_with_ties, side="left")
        assert np.array_equal(assign(x_with_ties, c), expected)


def test_skipping_labels_and_sse_keeps_the_centroids() -> None:
    x = np.random.default_rng(4).normal(0, 1, 5000)
    full = kmeans1d(x, 8)
    lean = kmeans1d(x, 8, with_labels=False, with_sse=False)
    assert np.array_equal(full.centroids, lean.centroids) and lean.labels.size == 0
    assert np.isnan(lean.sse) and full.sse == pytest.approx(sse_of(x, full.centroids), rel=1e-9)
