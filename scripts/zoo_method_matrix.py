"""Every modern zoo architecture through every compression method: does it apply, shrink, reload, export?

For each architecture (freshly initialised, 10 classes, RGB at ``--size``
pixels) and each registered method (built-ins and the repository's plugins),
one recipe enables the method on every layer it applies to, and the real
pipeline runs it (``core.compression.pipeline.compress``). The row then says:

- ``layers``: how many weighted layers differ from the original afterwards
  (0 with the method's own log line when it does not apply);
- ``params`` and ``.sqz`` bytes (the length of the file written);
- ``reload``: the largest output difference between the compressed model and
  the one ``load_sqz`` rebuilds from the file (architecture changes replayed);
- ``onnx``: ``export_onnx`` writes the file only after onnxruntime matches
  torch to 1e-4, so "ok" means it matched (bytes shown). The unchanged
  architecture is always exported (unless ``--onnx none``); ``--onnx arch``
  (the default) also exports the result of every method that changes the
  architecture, ``--onnx all`` every result, ``--onnx base`` none of them
  (quicker: methods that change only weight values give the baseline's graph).

No accuracy column: the weights are random; see ``scripts/plugin_results.py``
for accuracies on real data. Run from the repository root::

    python scripts/zoo_method_matrix.py                      # everything (long)
    python scripts/zoo_method_matrix.py --arch mobilenet_v2 --method structured
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from squeezestudio.core.compression.codec import load_sqz, save_sqz
from squeezestudio.core.compression.method import ORDER_ARCHITECTURE
from squeezestudio.core.compression.pipeline import compress, needs_calibration
from squeezestudio.core.compression.plugin_folder import register_folder_plugins, repository_plugins_folder
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.compression.registry import build_registry
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.model.zoo import zoo_handle

ARCHITECTURES = ("mobilenet_v3_small", "shufflenet_v2_x1_0", "mobilenet_v2", "efficientnet_b0",
                 "mobilenet_v3_large", "densenet121", "resnet34", "resnet50")  # smallest first
OPTIONS: dict[str, dict] = {
    "prune": {"sparsity": 0.5}, "cluster": {"bits": 5, "iterations": 30}, "quantize": {"bits": 8},
    "fire": {"init": "svd"}, "pow2": {"bits": 4}, "lowrank": {"energy": 0.9},
    "freshnets": {"compression": 0.25}, "depthwise": {"multiplier": 1}, "shuffle": {"groups": 2},
    "structured": {"ratio": 0.5},
}


def changed_layers(before: nn.Module, after: nn.Module) -> int:
    """Weighted layers of ``before`` that are gone, reshaped or hold other values in ``after``."""
    now = dict(after.named_modules())
    count = 0
    for name, module in before.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        other = now.get(name)
        same = isinstance(other, type(module)) and other.weight.shape == module.weight.shape \
            and torch.equal(other.weight, module.weight)
        count += not same
    return count


def outputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return module(x)


def run_cell(handle: ModelHandle, method: str, registry, onnx: str, folder: Path) -> str:
    """One table row (without the architecture and method columns)."""
    start = time.perf_counter()
    recipe = recipe_from_dict({"methods": {method: OPTIONS.get(method, {})}})
    # Methods that measure something on images (activation ranges) get 16 seeded random inputs: the
    # weights are random too, so these are as representative as any.
    calibration = handle.input_spec.example(16) if needs_calibration(recipe, registry) else None
    try:
        result = compress(handle, recipe, registry=registry, calibration=calibration)
    except SqueezeStudioError as exc:
        return f"{'-':>6} {'-':>11} {'-':>11} {'-':>9} {'-':>14} {time.perf_counter() - start:6.1f}  refused: {exc}"
    module = result.handle.module
    layers = changed_layers(handle.module, module)
    params = sum(p.numel() for p in module.parameters())
    path = folder / f"{handle.name}-{method}.sqz"
    size = save_sqz(result, path, registry=registry)
    x = handle.input_spec.example(2)
    reload = float((outputs(load_sqz(path, registry=registry).handle.module, x) - outputs(module, x)).abs().max())
    onnx_cell = "-" if onnx in ("none", "base") else "same graph"
    if onnx == "all" or (onnx == "arch" and registry.get(method).order == ORDER_ARCHITECTURE):
        try:
            onnx_cell = f"ok {export_onnx(result.handle, folder / 'm.onnx'):>11,}"
        except SqueezeStudioError as exc:
            onnx_cell = f"FAILED ({exc})"
    log = next((line for line in result.provenance.get("log", [])), "no layer")
    if not layers and not getattr(registry.get(method), "changes_weights", True):
        note = f"  weights unchanged by design: {log}"  # e.g. activation ranges, stored in the file
    else:
        note = "" if layers else f"  does not apply: {log}"
    return (f"{layers:>6} {params:>11,} {size:>11,} {reload:>9.1e} {onnx_cell:>14} "
            f"{time.perf_counter() - start:6.1f}{note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=ARCHITECTURES)
    parser.add_argument("--method", action="append")
    parser.add_argument("--size", type=int, default=32, help="input pixels (DenseNet needs at least 29)")
    parser.add_argument("--onnx", choices=("none", "base", "arch", "all"), default="arch")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    registry = build_registry(plugins=False)
    register_folder_plugins(registry, repository_plugins_folder())
    methods = args.method or list(registry.names())
    print(f"input 3x{args.size}x{args.size}, 10 classes, random weights; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'architecture':<19} {'method':<11} {'layers':>6} {'params':>11} {'.sqz bytes':>11} "
          f"{'reload':>9} {'onnx':>14} {'sec':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch or ARCHITECTURES:
            handle = zoo_handle(arch, num_classes=10, input_size=args.size)
            base_params = sum(p.numel() for p in handle.module.parameters())
            base_onnx = "-" if args.onnx == "none" else f"ok {export_onnx(handle, Path(tmp) / 'b.onnx'):>11,}"
            print(f"{arch:<19} {'(none)':<11} {0:>6} {base_params:>11,} {'':>11} {'':>9} {base_onnx:>14}")
            for method in methods:
                print(f"{arch:<19} {method:<11} {run_cell(handle, method, registry, args.onnx, Path(tmp))}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
