"""Resident memory over a long session: apply and evaluate a recipe many times in one process.

The desktop app's loop is ``StudioSession.evaluate_recipe`` then
``add_experiment`` for every change of a control. A leak of a few megabytes
per point (a cached mask, a kept module, a reference cycle holding tensors)
is invisible in a test and fatal after an afternoon. This runs the loop on the
bundled demo model and the digits (sparsity and cluster bits varying, as a
user would drag them) and prints resident memory after the first point
(start: first-use allocations done) and after the last. Goal: growth < 5%.

    python benchmarks/bench_session_memory.py [--points 300]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_bytes() -> int:
    """Resident set size now (not the peak), from /proc."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300)
    args = parser.parse_args()

    import torch

    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.demo_files import demo_model_path
    from squeezestudio.core.session.studio_session import StudioSession

    torch.set_num_threads(1)
    session = StudioSession(registry=default_registry)
    session.open_model(str(demo_model_path()))
    session.open_data("digits")

    def point(i: int) -> None:
        recipe = {"methods": {"prune": {"sparsity": 0.3 + 0.6 * (i % 10) / 10},
                              "cluster": {"bits": 2 + i % 4}}}
        session.add_experiment(session.evaluate_recipe(recipe))

    point(0)
    gc.collect()
    start = rss_bytes()
    began = time.perf_counter()
    for i in range(1, args.points):
        point(i)
    gc.collect()
    end = rss_bytes()
    seconds = time.perf_counter() - began
    growth = (end - start) / start * 100
    print(f"points evaluated: {args.points} ({seconds / max(args.points - 1, 1) * 1000:.0f} ms each)")
    print(f"resident memory after point 1: {start / 2 ** 20:.1f} MiB")
    print(f"resident memory after point {args.points}: {end / 2 ** 20:.1f} MiB")
    print(f"growth: {growth:+.1f}% (goal < 5%)")
    return 0 if growth < 5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
