"""Benchmark: evaluate() against a bare inference loop over the same cached tensors.

Evaluation runs for every point of a compression sweep, so its bookkeeping
(accuracy, loss, progress, cancellation, latency timing) must cost almost
nothing next to the forward passes. This script times both loops in one run,
interleaved over several repetitions, and prints the throughputs and their
ratio (best-of and median, plus the median ratio of back-to-back pairs, which
is the figure least disturbed by other work on a busy machine); goal: evaluate()
reaches at least 0.9 of the bare loop. It also measures evaluate()'s own
bookkeeping per batch with a nearly free model, where load noise matters least.

Run from the repository root::

    python benchmarks/bench_evaluation.py [--repeats 15] [--batch-size 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.progress import CancelToken


def small_cnn(num_classes: int = 10) -> nn.Module:
    """Fallback when the zoo is unavailable: a small 1-channel 32x32 CNN."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, num_classes))


def build() -> tuple[nn.Module, str]:
    try:
        from squeezestudio.core.model.zoo import build_model

        return build_model("squeezenet1_1", num_classes=10, in_channels=1, input_size=32), "squeezenet1_1"
    except Exception as exc:  # the zoo is another module; the benchmark must still run
        print(f"zoo unavailable ({type(exc).__name__}: {exc}); using a small local CNN")
        return small_cnn(), "small-cnn"


def bare_loop(model: nn.Module, images: torch.Tensor, batch_size: int) -> float:
    """Seconds for the reference loop: forward passes only."""
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, images.shape[0], batch_size):
            model(images[i:i + batch_size])
    return time.perf_counter() - start


def eval_loop(model: nn.Module, data, batch_size: int) -> float:
    """Seconds for evaluate() with progress and cancel in use, as the GUI calls it."""
    token = CancelToken()
    start = time.perf_counter()
    evaluate(model, data, batch_size=batch_size, progress=lambda f, m="": None, cancel=token)
    return time.perf_counter() - start


def bookkeeping_us_per_batch(data, batch_size: int, repeats: int) -> float:
    """evaluate()'s cost beyond the forward passes, measured with a nearly free linear model."""
    probe = nn.Sequential(nn.Flatten(), nn.Linear(data.images[0].numel(), 10)).eval()
    batches = math.ceil(len(data) / batch_size)
    bare = min(bare_loop(probe, data.images, batch_size) for _ in range(10 * repeats))
    full = min(eval_loop(probe, data, batch_size) for _ in range(10 * repeats))
    return max(0.0, full - bare) / batches * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--split", default="val", choices=["train", "val", "all"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is least disturbed by other work on the machine)")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model, name = build()
    model.eval()
    data = load_digits_split(args.split)
    n = len(data)
    print(f"model {name}: {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"data digits:{args.split}: {n} images {tuple(data.images.shape[1:])}; "
          f"batch {args.batch_size}; torch threads {torch.get_num_threads()}")

    bare_loop(model, data.images, args.batch_size)  # warm-up (allocator, kernels)
    eval_loop(model, data, args.batch_size)
    bare_times, eval_times = [], []
    for rep in range(args.repeats):  # interleaved, order alternating, so load drifts affect both alike
        if rep % 2:
            eval_times.append(eval_loop(model, data, args.batch_size))
            bare_times.append(bare_loop(model, data.images, args.batch_size))
        else:
            bare_times.append(bare_loop(model, data.images, args.batch_size))
            eval_times.append(eval_loop(model, data, args.batch_size))

    for label, reduce in (("best", min), ("median", statistics.median)):
        bare, ev = reduce(bare_times), reduce(eval_times)
        print(f"{label:>6}: bare loop {n / bare:9.0f} img/s ({bare * 1000:7.1f} ms)   "
              f"evaluate() {n / ev:9.0f} img/s ({ev * 1000:7.1f} ms)   ratio {bare / ev:.3f}")
    overhead_us = bookkeeping_us_per_batch(data, args.batch_size, args.repeats)
    forward_ms = statistics.median(bare_times) * 1000 / math.ceil(n / args.batch_size)
    print(f"evaluate() bookkeeping: {overhead_us:.0f} us per batch of {args.batch_size} "
          f"= {overhead_us / 10 / forward_ms:.2f}% of this model's median forward time per batch "
          f"({forward_ms:.1f} ms)")
    paired = statistics.median(b / e for b, e in zip(bare_times, eval_times))
    print(f"median of back-to-back pair ratios: {paired:.3f}")
    ratio = min(bare_times) / min(eval_times)
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"goal: ratio >= 0.9 -> {verdict} (best-of-{args.repeats} ratio {ratio:.3f})")


if __name__ == "__main__":
    main()
