"""Peak memory and throughput of evaluating an image folder larger than memory.

Generates a folder of ``--count`` small PNG and JPEG files (``--classes``
sub-folders) in a temporary directory, then evaluates a small 224x224 CNN on
it through the normal path (``load_dataset`` then ``evaluate``) twice, each
run in a fresh process: the first decodes the images and builds the uint8
disk cache, the second reads that cache. Each prints its peak resident
memory (``ru_maxrss``) and images/s. The baseline is what the same set would
take as one float tensor in memory (the layout before the disk cache).
Goal: peak RSS under 2 GB for 20,000 images.

    nice python benchmarks/bench_large_folder.py [--count 20000] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INPUT = 224


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_folder(root: Path, count: int, classes: int, size: int) -> None:
    """``count`` images of ``size`` x ``size``, alternately PNG and JPEG, a colour per class plus noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c:02d}").mkdir(parents=True)
    base = np.linspace(0, 255, size, dtype=np.float32)
    for i in range(count):
        c = i % classes
        hue = np.array([(37 * c) % 256, (91 * c) % 256, (151 * c) % 256], dtype=np.float32)
        pixels = (0.5 * base[None, :, None] + 0.5 * hue[None, None, :]
                  + rng.normal(0, 20, (size, size, 3))).clip(0, 255).astype(np.uint8)
        ext = "png" if i % 2 else "jpg"
        Image.fromarray(pixels).save(root / f"class_{c:02d}" / f"{i:06d}.{ext}")


def run_once(folder: str, cache_dir: str, batch_size: int) -> dict[str, object]:
    """One evaluation in this (fresh) process, measured."""
    import torch
    from torch import nn

    from squeezestudio.core.data.dataset import PreprocessSpec
    from squeezestudio.core.data.folders import load_dataset
    from squeezestudio.core.measure.evaluation import evaluate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4, padding=3), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    spec = PreprocessSpec(channels=3, height=INPUT, width=INPUT, mean=(0.485, 0.456, 0.406),
                          std=(0.229, 0.224, 0.225))
    before = peak_rss_bytes()
    t0 = time.perf_counter()
    data = load_dataset(folder, spec, cache_dir=cache_dir)
    t1 = time.perf_counter()
    result = evaluate(model, data, batch_size=batch_size)
    t2 = time.perf_counter()
    return {"n": result.n, "load_s": t1 - t0, "eval_s": t2 - t1, "storage": type(data.images).__name__,
            "rss_before_data": before, "peak_rss": peak_rss_bytes(), "notices": data.notices}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="images in the generated folder")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64, help="side of the generated files, in pixels")
    parser.add_argument("--batch-size", type=int, default=None, help="default: chosen by measuring")
    parser.add_argument("--once", nargs=2, metavar=("FOLDER", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(run_once(args.once[0], args.once[1], args.batch_size)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-large-folder-") as scratch:
        folder, cache_dir = Path(scratch) / "images", Path(scratch) / "cache"
        t0 = time.perf_counter()
        make_folder(folder, args.count, args.classes, args.size)
        on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"generated {args.count:,d} files of {args.size}x{args.size} ({on_disk / 2**20:.0f} MiB) "
              f"in {args.classes} classes in {time.perf_counter() - t0:.1f} s; model input 3x{INPUT}x{INPUT}")
        float_bytes = args.count * 3 * INPUT * INPUT * 4
        print(f"baseline: the set as one float32 tensor in memory would need {float_bytes / 2**30:.1f} GiB")
        runs = []
        for label in ("first run (builds the cache)", "second run (cache hit)"):
            cmd = [sys.executable, __file__, "--once", str(folder), str(cache_dir)]
            if args.batch_size:
                cmd += ["--batch-size", str(args.batch_size)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            runs.append(r)
            total = r["load_s"] + r["eval_s"]
            print(f"{label}: {r['n']:,d} images, load {r['load_s']:.1f} s + evaluate {r['eval_s']:.1f} s = "
                  f"{r['n'] / total:,.0f} images/s overall, {r['n'] / r['eval_s']:,.0f} images/s evaluating; "
                  f"peak RSS {r['peak_rss'] / 2**30:.2f} GiB (before loading data {r['rss_before_data'] / 2**30:.2f}"
                  f" GiB); images held as {r['storage']}")
            for notice in r["notices"]:
                print(f"  note: {notice}")
        cache_bytes = sum(p.stat().st_size for p in cache_dir.iterdir())
        peak = max(r["peak_rss"] for r in runs)
        first, second = ((r["load_s"] + r["eval_s"]) for r in runs)
        print(f"cache file {cache_bytes / 2**30:.2f} GiB; peak RSS / float-tensor baseline: {peak / float_bytes:.2f}; "
              f"second run / first run speed: {first / second:.1f}x; goal peak RSS < 2 GiB: "
              f"{'met' if peak < 2 * 2**30 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
