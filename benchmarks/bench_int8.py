"""Float vs int8 ONNX: latency and size on a 224x224 ResNet-18, accuracy on the bundled demo.

Prints, in one run, the median latency (onnxruntime, batch 1 and a larger
batch, threads stated) and the file size of the float ONNX export and of
the int8 QDQ export of the same model, with their ratios (goal: int8 at
least 1.5x faster and 3.5x smaller), then the top-1 of the demo SqueezeNet's
float and int8 files on the digits validation split, both run in
onnxruntime. ResNet-18 has random weights here: latency and size do not
depend on the values, and no pretrained weights can be downloaded.

    python benchmarks/bench_int8.py [--batch 8] [--threads 1] [--repeats 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.io.export_onnx_int8 import export_onnx_int8, int8_kernel_ops
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.latency import onnx_latency
from squeezestudio.core.measure.onnx_evaluation import evaluate_onnx
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry


def latency_and_size(batch: int, threads: int, repeats: int, tmp: Path) -> None:
    handle = zoo_handle("resnet18", num_classes=1000, in_channels=3, input_size=224)
    float_path, int8_path = tmp / "resnet18.onnx", tmp / "resnet18.int8.onnx"
    export_onnx(handle, float_path)
    calibration = torch.randn(16, 3, 224, 224)  # ranges only; accuracy is measured on the demo below
    t0 = time.perf_counter()
    export_onnx_int8(handle, int8_path, calibration)
    print(f"ResNet-18 at 224x224 (int8 export took {time.perf_counter() - t0:.1f} s; "
          f"onnxruntime int8 kernels: {int8_kernel_ops(int8_path.read_bytes())})")
    shape = (3, 224, 224)
    f = onnx_latency(float_path, shape, target="onnx", batch=batch, threads=threads, repeats=repeats)
    q = onnx_latency(int8_path, shape, target="onnx-int8", batch=batch, threads=threads, repeats=repeats)
    print(f"  {'':10s} {'bytes':>12s} {'batch 1 ms':>11s} {f'batch {batch} ms':>12s}")
    for label, r in (("float", f), ("int8", q)):
        print(f"  {label:10s} {r.size_bytes:12,d} {r.batch1_ms:11.2f} {r.batch_ms:12.2f}")
    print(f"  int8 is {f.size_bytes / q.size_bytes:.2f}x smaller, {f.batch1_ms / q.batch1_ms:.2f}x faster at "
          f"batch 1 and {f.batch_ms / q.batch_ms:.2f}x faster at batch {batch} "
          f"(median of {repeats} runs, {threads} thread(s))")


def demo_accuracy(tmp: Path) -> None:
    handle = load_model(str(demo_model_path()), registry=default_registry())
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    val, train = load_dataset("digits", spec), load_dataset("digits:train", spec)
    print(f"Demo SqueezeNet on {val.name} ({len(val)} images), both files run in onnxruntime; int8 calibrated "
          f"on 512 training images:")
    for label, recipe in (("original", Recipe()), ("4-bit weights", Recipe(methods={"quantize": {"bits": 4}}))):
        cm = compress(handle, recipe, registry=default_registry())
        float_path, int8_path = tmp / "demo.onnx", tmp / "demo.int8.onnx"
        float_size = export_onnx(cm.handle, float_path)
        result = export_onnx_int8(cm, int8_path, train.images)
        a = evaluate_onnx(float_path, val).top1
        b = evaluate_onnx(int8_path, val).top1
        print(f"  {label:14s} float {a * 100:6.2f}% ({float_size:,d} B)  int8 {b * 100:6.2f}% "
              f"({result.size_bytes:,d} B, {result.ratio:.3f}x)  difference {(b - a) * 100:+.2f} points")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        latency_and_size(args.batch, args.threads, args.repeats, Path(tmp))
        demo_accuracy(Path(tmp))


if __name__ == "__main__":
    main()
