"""Benchmark: SqueezeStudio's evaluation of an ONNX classifier against onnxruntime on the same file.

Builds two 224x224 ImageNet-shaped classifiers nobody trained (a MobileNetV2 /
EfficientNet-Lite-shaped network of inverted residual blocks, ~4.5M
parameters, and the zoo's ResNet-18, 11.7M), exports each to ONNX, then in
one run, on the same images and the same number of threads:

* onnxruntime on the original file (its best of batch 8, 16, 32);
* ``squeezestudio.core.measure.evaluation.evaluate`` on the model loaded from
  that file, with its defaults (onnxruntime through an in-memory export of
  the loaded module when it repays it, after a 2-image torch probe; batch
  size chosen by measuring).

It prints images/s for both and the ratios: the forward throughput (the
figure per image once running), the wall time of the whole call (which
also pays the one-off export of the module being measured), and the wall
time of the next point a sweep or scan would measure: the model with 50% of
every layer's weights pruned (same structure, other weights, so the kept
export graph is reused with its weights written in). Goal: forward ratio
>= 0.8 on both models.

Run from the repository root::

    python benchmarks/bench_eval_vs_onnxruntime.py [--images 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.model.zoo import build_model


def _inverted_residual(cin: int, cout: int, stride: int, expand: int) -> nn.Module:
    mid = cin * expand
    layers: list[nn.Module] = []
    if expand != 1:
        layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
    layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
               nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers)


def mobilenet_shaped(num_classes: int = 1000) -> nn.Module:
    """Inverted residual stages as in MobileNetV2 / EfficientNet-Lite0 (without residual adds)."""
    stages = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 40, 2, 2), (6, 80, 3, 2), (6, 112, 3, 1), (6, 192, 4, 2),
              (6, 320, 1, 1)]
    layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
    c = 32
    for expand, cout, repeats, stride in stages:
        for i in range(repeats):
            layers.append(_inverted_residual(c, cout, stride if i == 0 else 1, expand))
            c = cout
    layers += [nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def trained_statistics(module: nn.Module) -> nn.Module:
    """BatchNorm scales, shifts and running statistics as varied as a trained network's (seeded).

    At their initial values (1, 0, 0, 1) every folded convolution bias is 0,
    and the ONNX exporter merges equal initializers into one, which no
    trained model has; the kept-graph reuse (and its speed) would not show.
    """
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(1.0 + 0.1 * torch.rand(n, generator=g))
    return module


def export(module: nn.Module, path: Path) -> Path:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.randn(1, 3, 224, 224),), buffer, dynamo=False,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    path.write_bytes(buffer.getvalue())
    return path


def onnxruntime_images_per_s(path: Path, images: np.ndarray, threads: int) -> tuple[float, int]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    best = (0.0, 0)
    for batch in (8, 16, 32):
        session.run(None, {name: images[:batch]})  # warm-up
        started = time.perf_counter()
        for i in range(0, len(images), batch):
            session.run(None, {name: images[i:i + batch]})
        rate = len(images) / (time.perf_counter() - started)
        best = max(best, (rate, batch))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, 224, 224, generator=g)
    data = ImageDataset(images=images, labels=torch.randint(0, 1000, (args.images,), generator=g),
                        class_names=[f"c{i}" for i in range(1000)], name="random 224x224")
    print(f"{args.images} images of 3x224x224, {args.threads} threads")
    print(f"{'model':24s} {'params':>8s} {'onnxruntime':>12s} {'ours fwd':>10s} {'ours wall':>10s} "
          f"{'fwd ratio':>9s} {'wall ratio':>10s} {'next point wall':>15s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in (("MobileNetV2-shaped", mobilenet_shaped()),
                             ("ResNet-18", build_model("resnet18", num_classes=1000, in_channels=3,
                                                       input_size=224))):
            path = export(trained_statistics(module), Path(tmp) / f"{name}.onnx")
            handle = load_model(path, registry=default_registry())
            params = sum(p.numel() for p in handle.module.parameters())
            ort_rate, ort_batch = onnxruntime_images_per_s(path, images.numpy(), args.threads)
            started = time.perf_counter()
            result = evaluate(handle.module, data)
            wall = time.perf_counter() - started
            fwd_rate = 1000.0 / result.latency_ms_per_image
            wall_rate = args.images / wall
            pruned = compress(handle, Recipe(methods={"prune": {"sparsity": 0.5}}), registry=default_registry())
            started = time.perf_counter()
            evaluate(pruned.handle.module, data)
            next_rate = args.images / (time.perf_counter() - started)
            print(f"{name:24s} {params / 1e6:7.1f}M {ort_rate:9.1f}/s  {fwd_rate:8.1f}/s {wall_rate:8.1f}/s "
                  f"{fwd_rate / ort_rate:9.2f} {wall_rate / ort_rate:10.2f} {next_rate / ort_rate:15.2f}   "
                  f"(onnxruntime batch {ort_batch}, ours batch {result.batch_size})")


if __name__ == "__main__":
    main()
