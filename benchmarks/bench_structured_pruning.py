"""Benchmark: structured pruning at 50% of channels -- parameters, file bytes and latency before and after.

Filter pruning leaves a smaller *dense* model, so an ordinary
``torch.save(state_dict)`` checkpoint, the ONNX file and plain inference
should all shrink without sparse kernels. For each model this script prunes
every layer the method applies to (coupled channels together: residual
stages, depthwise convolutions, squeeze-excitation, concatenations; the
classifier keeps its outputs) and prints, in one run:

- parameters before/after;
- dense checkpoint bytes (``torch.save`` of the state_dict, ``os.path.getsize``);
- for the ImageNet models (ResNet-50 and MobileNetV2 from the zoo, freshly
  initialised -- sizes and speed do not depend on the weights -- at 3x224x224):
  ONNX bytes (``export_onnx``, which checks the file against onnxruntime
  before writing it) and onnxruntime latency at batch 1 and a small batch,
  median of ``--repeats``, the two sessions timed alternately so machine load
  affects both alike, ``--threads`` intra-op threads;
- for the bundled demo SqueezeNet (or an initialised SqueezeNet 1.1 without
  it): torch latency of a batch of 64 digits at 32x32, as before.

Run from the repository root::

    python benchmarks/bench_structured_pruning.py [--models resnet50 mobilenet_v2 demo] [--ratio 0.5]
        [--repeats 15] [--batch 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from squeezestudio.core.compression.plugin_folder import register_folder_plugins, repository_plugins_folder
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.model.zoo import zoo_handle

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo" / "squeezenet_digits.safetensors"


def demo_handle() -> ModelHandle:
    """The bundled demo model if there is one, else an initialised SqueezeNet 1.1 for 1x32x32 digits."""
    if DEMO.is_file():
        from squeezestudio.core.io.loading import load_model

        return load_model(DEMO, registry=default_registry())
    return zoo_handle("squeezenet1_1", num_classes=10, in_channels=1, input_size=32)


def checkpoint_bytes(module: nn.Module, path: Path) -> int:
    torch.save(module.state_dict(), path)
    return os.path.getsize(path)


def alternate_medians(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each callable, timed alternately after one warm-up call each."""
    for run in runs:
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def prune(handle: ModelHandle, ratio: float) -> tuple[ModelHandle, list[str]]:
    registry = build_registry(plugins=False)
    register_folder_plugins(registry, repository_plugins_folder())
    method = registry.get("structured")
    state = CompressionState.from_handle(handle)
    layers = [n for n, m in state.module.named_modules() if method.applies_to(m)]
    method.apply(state, {n: {"ratio": ratio} for n in layers})
    return state.handle, state.log


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ratio_line(label: str, before: float, after: float, unit: str = "", fmt: str = ",.0f") -> str:
    return f"  {label:<22} {before:>14{fmt}} -> {after:>14{fmt}} {unit:<5} ({after / before:.3f}x)"


def bench_imagenet(name: str, args: argparse.Namespace, folder: Path) -> None:
    torch.manual_seed(0)
    original = zoo_handle(name)
    pruned, log = prune(original, args.ratio)
    p_before = sum(p.numel() for p in original.module.parameters())
    p_after = sum(p.numel() for p in pruned.module.parameters())
    untouched = [n for n, m in pruned.module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                 and m.weight.shape == original.module.get_submodule(n).weight.shape]
    ck = [checkpoint_bytes(h.module, folder / f"{name}-{i}.pt") for i, h in enumerate((original, pruned))]
    onnx_paths = [folder / f"{name}-{i}.onnx" for i in range(2)]
    onnx_bytes = [export_onnx(h, p) for h, p in zip((original, pruned), onnx_paths)]
    sessions = [session(p, args.threads) for p in onnx_paths]
    print(f"{name}: ratio {args.ratio}, 3x224x224, onnxruntime {ort.__version__} with {args.threads} "
          f"intra-op thread(s), median of {args.repeats}")
    print(f"  {'layers left unchanged':<22} {', '.join(untouched) or 'none'}")
    print(ratio_line("parameters", p_before, p_after))
    print(ratio_line("dense checkpoint", ck[0], ck[1], "bytes"))
    print(ratio_line("ONNX file", onnx_bytes[0], onnx_bytes[1], "bytes"))
    for batch in (1, args.batch):
        x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224), dtype=np.float32)
        runs = [lambda s=s: s.run(None, {s.get_inputs()[0].name: x}) for s in sessions]
        before, after = alternate_medians(runs, args.repeats)
        print(ratio_line(f"latency, batch {batch}", before * 1e3, after * 1e3, "ms", ",.1f")
              + f"  {before / after:.2f}x faster")
    print(f"  {log[-1]}")


def bench_demo(args: argparse.Namespace, folder: Path) -> None:
    torch.manual_seed(0)
    original = demo_handle()
    pruned, _ = prune(original, args.ratio)
    spec = original.input_spec
    x = torch.randn(64, spec.channels, spec.height, spec.width)
    models = [original.module.eval(), pruned.module.eval()]
    ck = [checkpoint_bytes(m, folder / f"demo-{i}.pt") for i, m in enumerate(models)]
    with torch.no_grad():
        before, after = alternate_medians([lambda m=m: m(x) for m in models], args.repeats)
    p_before, p_after = (sum(p.numel() for p in m.parameters()) for m in models)
    print(f"demo {original.name} ({'bundled demo' if DEMO.is_file() else 'initialised, no demo file'}): "
          f"ratio {args.ratio}, torch batch 64x{spec.channels}x{spec.height}x{spec.width}, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats}")
    print(ratio_line("parameters", p_before, p_after))
    print(ratio_line("dense checkpoint", ck[0], ck[1], "bytes"))
    print(ratio_line("latency, batch 64", before * 1e3, after * 1e3, "ms", ",.1f") + f"  {before / after:.2f}x faster")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2", "demo"],
                        choices=["resnet50", "mobilenet_v2", "demo"])
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=8, help="the small batch (besides batch 1)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if name == "demo":
                bench_demo(args, Path(tmp))
            else:
                bench_imagenet(name, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
