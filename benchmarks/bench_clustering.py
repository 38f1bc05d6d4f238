"""1-D k-means for weight sharing: SqueezeStudio's kmeans1d vs scikit-learn's KMeans.

Both start from the same linear initialisation (Deep Compression's), use
``n_init=1`` and the same iteration cap, on the same data: by default 10M
Laplace-distributed values shaped like trained weights (heavy tails), k=32
(5 bits). scikit-learn also stops on its default tolerance, so it may run
fewer iterations; the error (SSE) of both results is measured the same way
(each value to its nearest centroid, float64). scikit-learn gets the same
values as float64: it computes in its input's dtype, and in float32 its
rounding drifts from exact Lloyd iterations (ours are exact in float64 sums
whatever the input dtype), so only float64 makes the errors comparable.
A last line shows what running ours to its fixed point costs and gains.

If ``--sklearn-n`` is smaller than ``--n``, scikit-learn runs on the first
``--sklearn-n`` values only and its time is scaled linearly; the output says
so. Run: ``python benchmarks/bench_clustering.py [--n 10000000] [--k 32]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans

from squeezestudio.core.compression.kmeans1d import initial_centroids, kmeans1d, sse_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--sklearn-n", type=int, default=None, help="values given to scikit-learn (default: all)")
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    data = (rng.laplace(0.0, 0.01, args.n)).astype(np.float32)
    start = initial_centroids(data, args.k, "linear")
    print(f"data: {args.n:,} float32 values (Laplace), k={args.k}, linear init, max_iter={args.max_iter}")

    t0 = time.perf_counter()
    ours = kmeans1d(data, args.k, init=start, max_iter=args.max_iter)
    t_ours = time.perf_counter() - t0
    print(f"ours   : {t_ours:8.2f} s, {ours.iterations} iterations, SSE {ours.sse:.6e}"
          f"{'' if ours.converged else ' (iteration cap reached)'}")

    n_sk = args.sklearn_n or args.n
    sk_data = data[:n_sk].astype(np.float64).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        km = KMeans(n_clusters=args.k, init=start.reshape(-1, 1), n_init=1, max_iter=args.max_iter).fit(sk_data)
        t_sk = time.perf_counter() - t0
    scaled = t_sk * args.n / n_sk
    sk_sse = sse_of(data, km.cluster_centers_.ravel())
    note = "" if n_sk == args.n else f" (ran on {n_sk:,} values, time scaled x{args.n / n_sk:.1f} to {scaled:.2f} s)"
    print(f"sklearn: {t_sk:8.2f} s, {km.n_iter_} iterations, SSE {sk_sse:.6e} on all values{note}")
    our_sse_on_same = sse_of(data, ours.centroids)
    print(f"speed-up: {scaled / t_ours:.1f}x; SSE ours/sklearn = {our_sse_on_same / sk_sse:.6f} "
          f"({'ours lower or equal' if our_sse_on_same <= sk_sse * (1 + 1e-12) else 'sklearn lower'})")
    t0 = time.perf_counter()
    longer = kmeans1d(data, args.k, init=start, max_iter=10 * args.max_iter)
    t_long = time.perf_counter() - t0
    print(f"ours, cap {10 * args.max_iter}: {t_long:.2f} s, {longer.iterations} iterations, SSE {longer.sse:.6e} "
          f"({longer.sse / sk_sse:.6f} of sklearn's)")


if __name__ == "__main__":
    main()
