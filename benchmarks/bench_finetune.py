"""What keeping the compression costs during fine-tuning: one epoch with prune + cluster hooks vs bare torch.

Both loops train the same pruned-and-clustered LeNet-300-100 (28x28 digits,
train split) on the same batches in the same order with the same optimizer
(SGD, momentum 0.9); the first runs the methods' fine-tuning hooks (masks
held, gradients summed per cluster, weights rewritten from the codebook after
every step) through ``train_classifier``, the second is a plain
``zero_grad / forward / backward / step`` loop. Each is timed over
``--repeats`` epochs after one untimed warm-up round (best of; the ratio
of medians and the load average are printed too, since the machine may be
shared). Goal: ratio < 1.5.

    .venv/bin/python benchmarks/bench_finetune.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

from squeezestudio.core.compression.pipeline import collect_finetune_hooks, compress
from squeezestudio.core.compression.recipe import Recipe, recipe_from_dict
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.training.finetune import finetune_plan
from squeezestudio.core.training.loop import TrainConfig, train_classifier
from squeezestudio.core.model.zoo import zoo_handle


def bare_epoch(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig) -> None:
    """The same batches as ``train_classifier`` (same generator draws), no hooks."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    n = len(images)
    order = torch.randperm(n, generator=gen)
    model.train()
    for b in range(math.ceil(n / config.batch_size)):
        idx = order[b * config.batch_size:(b + 1) * config.batch_size]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(images[idx]), labels[idx]).backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is steadiest on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    train = load_digits_split("train", PreprocessSpec.from_input_spec(handle.input_spec))
    cm = compress(handle, Recipe(methods={"prune": {"sparsity": 0.9, "scope": "global"}, "cluster": {"bits": 5}}), registry=default_registry())
    config = TrainConfig(epochs=1, lr=0.01, optimizer="sgd", momentum=0.9, batch_size=64, seed=0)
    assert recipe_from_dict(cm.recipe).methods.keys() == {"prune", "cluster"}

    hooked, bare = [], []
    for repeat in range(args.repeats + 1):  # the first round warms torch up (lazy imports) and is not counted
        state = CompressionState(handle=cm.handle.clone(), encodings=dict(cm.encodings))
        steps, _ = finetune_plan(state, cm.recipe, default_registry(), registry=default_registry())
        hooks = collect_finetune_hooks(state, steps)
        started = time.perf_counter()
        train_classifier(state.module, train, None, config, hooks=hooks)
        elapsed = time.perf_counter() - started
        if repeat:
            hooked.append(elapsed)

        model = copy.deepcopy(cm.handle.module)
        started = time.perf_counter()
        bare_epoch(model, train.images, train.labels, config)
        elapsed = time.perf_counter() - started
        if repeat:
            bare.append(elapsed)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    print(f"one epoch, {len(train)} images, {steps_per_epoch} steps of {config.batch_size}, "
          f"LeNet-300-100 pruned 90% + clustered 5 bits, {torch.get_num_threads()} thread(s)")
    print(f"with compression hooks : {min(hooked):.3f} s (runs: {', '.join(f'{t:.3f}' for t in hooked)})")
    print(f"bare torch loop        : {min(bare):.3f} s (runs: {', '.join(f'{t:.3f}' for t in bare)})")
    ratio = min(hooked) / min(bare)
    print(f"ratio {ratio:.2f}x (goal < 1.5x: {'met' if ratio < 1.5 else 'NOT met'}); "
          f"ratio of medians {statistics.median(hooked) / statistics.median(bare):.2f}x; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
