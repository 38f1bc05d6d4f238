#!/usr/bin/env python3
"""Deep Compression end to end on an AlexNet-size model: SqueezeStudio vs the obvious stack.

Both sides do the same work on the same randomly initialised AlexNet (61.1M
parameters): prune 90% of the conv/linear weights with one global magnitude
threshold, cluster each layer's surviving weights to 32 shared values (5-bit
k-means, linear initialisation), Huffman-code the cluster indices and the
relative positions of the kept weights, and write one file.

- SqueezeStudio: ``compress`` (global pruning + 1-D k-means) then ``save_sqz``.
- Baseline: ``torch.nn.utils.prune.global_unstructured`` + scikit-learn
  ``KMeans`` (same linear initialisation, n_init=1) + ``dahuffman`` for
  indices and position gaps, saved with ``numpy.savez``.

Both sides may use every core: scikit-learn's KMeans and torch through their
own thread pools, SqueezeStudio by clustering and encoding layers on a few
threads. Prints both times, the speed ratio, both file sizes and the load
average (the machine may be shared: repeat and compare). Needs dahuffman
(``.venv/bin/pip install -e .[bench]``). Run: ``python benchmarks/bench_deep_compression.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from squeezestudio.core.compression.codec import save_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

BITS = 5
SPARSITY = 0.9


def ours(handle, out: Path) -> tuple[float, int, dict[str, float]]:
    recipe = Recipe(methods={"prune": {"sparsity": SPARSITY, "scope": "global"},
                             "cluster": {"bits": BITS, "init": "linear", "iterations": 20}})
    t0 = time.perf_counter()
    cm = compress(handle, recipe, registry=default_registry())
    t1 = time.perf_counter()
    size = save_sqz(cm, out, registry=default_registry())
    t2 = time.perf_counter()
    return t2 - t0, size, {"prune+cluster": t1 - t0, "encode+write": t2 - t1}


def baseline(handle, out: Path) -> tuple[float, int, dict[str, float]]:
    from dahuffman import HuffmanCodec
    from sklearn.cluster import KMeans
    from torch.nn.utils import prune

    model = handle.module
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    t0 = time.perf_counter()
    prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                              amount=SPARSITY)
    for _, m in layers:
        prune.remove(m, "weight")
    t1 = time.perf_counter()
    arrays: dict[str, np.ndarray] = {}
    k = 2 ** BITS
    for name, m in layers:
        w = m.weight.detach().numpy().ravel()
        positions = np.flatnonzero(w)
        values = w[positions].astype(np.float64).reshape(-1, 1)
        init = np.linspace(values.min(), values.max(), k).reshape(-1, 1)
        km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=20).fit(values)
        arrays[f"{name}.codebook"] = km.cluster_centers_.ravel().astype(np.float32)
        indices = km.labels_.astype(np.int64)
        gaps = np.diff(positions, prepend=-1)
        for stream, symbols in (("indices", indices), ("gaps", gaps)):
            codec = HuffmanCodec.from_data(symbols.tolist())
            arrays[f"{name}.{stream}"] = np.frombuffer(codec.encode(symbols.tolist()), dtype=np.uint8)
            table = codec.get_code_table()
            arrays[f"{name}.{stream}.table"] = np.array(
                [[s, bits, code] for s, (bits, code) in table.items() if isinstance(s, (int, np.integer))],
                dtype=np.int64)
        if m.bias is not None:
            arrays[f"{name}.bias"] = m.bias.detach().numpy()
    t2 = time.perf_counter()
    with open(out, "wb") as fh:
        np.savez(fh, **arrays)
    t3 = time.perf_counter()
    return t3 - t0, os.path.getsize(out), {"prune": t1 - t0, "kmeans+huffman": t2 - t1, "write": t3 - t2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="alexnet", help="zoo architecture (default alexnet)")
    args = parser.parse_args()
    torch.manual_seed(0)
    handle = zoo_handle(args.arch)
    n = sum(p.numel() for p in handle.module.parameters())
    print(f"{args.arch}: {n:,d} parameters, prune {SPARSITY:.0%} globally, {BITS}-bit clustering, Huffman")
    with tempfile.TemporaryDirectory() as tmp:
        t_ours, s_ours, parts_ours = ours(handle, Path(tmp) / "ours.sqz")
        t_base, s_base, parts_base = baseline(handle.clone(), Path(tmp) / "baseline.npz")
    fmt = lambda parts: ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())  # noqa: E731
    print(f"squeezestudio : {t_ours:7.2f} s  {s_ours:>12,d} bytes  ({fmt(parts_ours)})")
    print(f"obvious stack : {t_base:7.2f} s  {s_base:>12,d} bytes  ({fmt(parts_base)})")
    print(f"speed-up {t_base / t_ours:.1f}x; file size ours/baseline {s_ours / s_base:.3f}; "
          f"dense float32 {n * 4:,d} bytes -> ours {n * 4 / s_ours:.1f}x smaller")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (goals: >= 10x faster, file not larger)")


if __name__ == "__main__":
    main()
