"""Global 90% magnitude pruning on AlexNet-shaped layers: SqueezeStudio vs torch.nn.utils.prune.

Builds random Conv2d/Linear layers with AlexNet's weight shapes (61.1M
weights; no download), then prunes 90% of all weights with one global
threshold (Deep Compression style) two ways, in the same run:

- ours: ``MagnitudePruning`` (selection without a full sort), timed both for
  choosing the masks and for the whole ``apply`` (which also builds the
  encodings and writes the weights back);
- torch: ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured``.

Then the surviving weights are clustered to 5 bits per layer (``cluster``),
the next Deep Compression stage, and that time is printed too.

Run: ``python benchmarks/bench_pruning.py [--sparsity 0.9] [--scale 1.0]``.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn
from torch.nn.utils import prune

from squeezestudio.core.compression.clustering import ClusterConfig, KMeansClustering
from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.pruning import MagnitudePruning, PruneConfig
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.model.handle import InputSpec, ModelHandle

ALEXNET_LAYERS = [  # (name, module) with torchvision AlexNet's weight shapes
    ("c1", lambda s: nn.Conv2d(3, 64, 11)),
    ("c2", lambda s: nn.Conv2d(64, 192, 5)),
    ("c3", lambda s: nn.Conv2d(192, 384, 3)),
    ("c4", lambda s: nn.Conv2d(384, 256, 3)),
    ("c5", lambda s: nn.Conv2d(256, 256, 3)),
    ("f6", lambda s: nn.Linear(int(9216 * s), 4096)),
    ("f7", lambda s: nn.Linear(4096, int(4096 * s))),
    ("f8", lambda s: nn.Linear(int(4096 * s), 1000)),
]


def alexnet_shaped(scale: float) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Module()
    for name, make in ALEXNET_LAYERS:
        layer = make(scale)
        with torch.no_grad():
            layer.weight.normal_(0.0, 0.01)
        model.add_module(name, layer)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the FC layers for a quick run")
    args = parser.parse_args()

    model = alexnet_shaped(args.scale)
    names = [n for n, _ in ALEXNET_LAYERS]
    total = sum(getattr(model, n).weight.numel() for n in names)
    print(f"AlexNet-shaped weights: {total / 1e6:.1f}M in {len(names)} layers; global sparsity {args.sparsity}")

    torch_model = copy.deepcopy(model)
    handle = ModelHandle(module=model, name="alexnet-shaped", input_spec=InputSpec(), class_names=["x"],
                         source_format="zoo")
    state = CompressionState(handle=handle)  # the model itself: no copy inside the timing
    cfg = make_config(PruneConfig, {"sparsity": args.sparsity, "scope": "global"})
    configs = {n: cfg for n in names}
    method = MagnitudePruning()

    t0 = time.perf_counter()
    masks = method.compute_masks(state, configs)
    t_masks = time.perf_counter() - t0
    t0 = time.perf_counter()
    method.apply(state, configs)
    t_apply = time.perf_counter() - t0
    ours_pruned = sum(int((~m).sum()) for m in masks.values())

    t0 = time.perf_counter()
    prune.global_unstructured([(getattr(torch_model, n), "weight") for n in names],
                              pruning_method=prune.L1Unstructured, amount=args.sparsity)
    t_torch = time.perf_counter() - t0
    torch_pruned = sum(int((getattr(torch_model, n).weight_mask == 0).sum()) for n in names)

    print(f"ours   choose masks : {t_masks:8.3f} s")
    print(f"ours   full apply   : {t_apply:8.3f} s  (masks + encodings + weights written back)")
    print(f"torch  global_unstructured: {t_torch:8.3f} s")
    print(f"speed-up: {t_torch / t_masks:.1f}x (masks), {t_torch / t_apply:.1f}x (full apply)")
    print(f"pruned weights: ours {ours_pruned}, torch {torch_pruned}, asked {round(args.sparsity * total)}")

    kept = total - ours_pruned
    t0 = time.perf_counter()
    KMeansClustering().apply(state, {n: make_config(ClusterConfig, {"bits": 5}) for n in names})
    t_cluster = time.perf_counter() - t0
    print(f"ours   5-bit clustering of the {kept / 1e6:.2f}M surviving weights (8 layers): {t_cluster:.3f} s")


if __name__ == "__main__":
    main()
