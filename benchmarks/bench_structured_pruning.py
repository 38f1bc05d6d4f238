"""Benchmark: structured (filter) pruning at 50% on the SqueezeNet demo: checkpoint size and latency.

Filter pruning leaves a smaller *dense* model, so both an ordinary
``torch.save(state_dict)`` checkpoint and plain inference should shrink
without sparse kernels. This script prunes every convolution the analysis can
shrink (the classifier conv keeps its 10 outputs) and prints, in one run:

- dense checkpoint bytes before/after (``torch.save`` of the state_dict to a
  temporary folder, measured with ``os.path.getsize``);
- inference latency before/after: median over repetitions of a batch of 64
  images at 32x32, the two models timed alternately so machine load affects
  both alike.

Uses the bundled ``resources/demo/squeezenet_digits.safetensors`` when present,
else a freshly initialised ``squeezenet1_1`` (sizes and speed do not depend on
the weights). Run from the repository root::

    python benchmarks/bench_structured_pruning.py [--ratio 0.5] [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from squeezestudio.core.compression.plugin_folder import register_folder_plugins, repository_plugins_folder
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.compression.registry import default_registry

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo" / "squeezenet_digits.safetensors"


def demo_handle() -> ModelHandle:
    """The bundled demo model if there is one, else an initialised SqueezeNet 1.1 for 1x32x32 digits."""
    if DEMO.is_file():
        from squeezestudio.core.io.loading import load_model

        return load_model(DEMO, registry=default_registry())
    from squeezestudio.core.model.zoo import zoo_handle

    return zoo_handle("squeezenet1_1", num_classes=10, in_channels=1, input_size=32)


def checkpoint_bytes(module: nn.Module, folder: Path, name: str) -> int:
    path = folder / name
    torch.save(module.state_dict(), path)
    return os.path.getsize(path)


@torch.no_grad()
def median_latency(models: list[nn.Module], x: torch.Tensor, repeats: int) -> list[float]:
    """Median seconds per forward pass of each model, timed alternately."""
    times: list[list[float]] = [[] for _ in models]
    for m in models:
        m.eval()
        m(x)  # warm-up
    for _ in range(repeats):
        for i, m in enumerate(models):
            start = time.perf_counter()
            m(x)
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    registry = build_registry(plugins=False)
    register_folder_plugins(registry, repository_plugins_folder())
    method = registry.get("structured")
    handle = demo_handle()
    state = CompressionState.from_handle(handle)
    convs = [n for n, m in state.module.named_modules() if isinstance(m, nn.Conv2d)]
    method.apply(state, {n: {"ratio": args.ratio} for n in convs})
    for line in state.log:
        print(line)

    original, pruned = handle.module, state.module
    spec = handle.input_spec
    x = torch.randn(args.batch_size, spec.channels, spec.height, spec.width)
    with torch.no_grad():
        original.eval(), pruned.eval()
        assert pruned(x).shape == original(x).shape
    with tempfile.TemporaryDirectory() as tmp:
        size_before = checkpoint_bytes(original, Path(tmp), "before.pt")
        size_after = checkpoint_bytes(pruned, Path(tmp), "after.pt")
    lat_before, lat_after = median_latency([original, pruned], x, args.repeats)
    params_before = sum(p.numel() for p in original.parameters())
    params_after = sum(p.numel() for p in pruned.parameters())

    print(f"model: {handle.name} ({'bundled demo' if DEMO.is_file() else 'initialised, no demo file'}), "
          f"ratio {args.ratio}, batch {args.batch_size}x{spec.channels}x{spec.height}x{spec.width}, "
          f"{args.threads} thread(s), median of {args.repeats}")
    print(f"parameters : {params_before:>10,} -> {params_after:>10,}  ({params_after / params_before:.3f}x)")
    print(f"checkpoint : {size_before:>10,} -> {size_after:>10,} bytes  ({size_after / size_before:.3f}x)")
    print(f"latency    : {lat_before * 1e3:>10.2f} -> {lat_after * 1e3:>10.2f} ms  "
          f"({lat_before / lat_after:.2f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
