"""Reproduce Deep Compression (Han, Mao and Dally, ICLR 2016) on LeNet-300-100 trained on the digits.

The paper's pipeline, stage by stage, with the accuracy after each stage:

1. prune (per layer as the paper's LeNet-300-100 table: 8% / 9% / 26% of
   fc1 / fc2 / fc3 kept, or ``--sparsity S`` globally),
2. retrain with the masks held,
3. cluster the surviving weights into 2**bits shared values per layer
   (``--bits``, 4 by default; the paper used 5-6 bits for fully connected layers),
4. retrain the shared centroids (trained quantization: SGD, the gradients of
   a cluster summed onto its centroid),
5. Huffman-code the indices and the sparse positions,

then prints the codec's stage table (``size_report(cm).to_table()``), writes
the final .sqz and checks that its length on disk is the reported size and
that it reloads to the same accuracy. ``--no-retrain`` skips both retraining
steps (the "no fine-tuning" number; it then prunes 75% globally and
clusters to 3 bits, as no retraining recovers a harsher cut).

Uses resources/demo/lenet300_100_digits.safetensors when present, otherwise
trains one first (28x28 digits). Run from the repository root:

    .venv/bin/python scripts/reproduce_deep_compression.py [--no-retrain]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from squeezestudio.core.compression.codec import encode_sqz, load_sqz, save_sqz, size_report
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.pipeline import apply_recipe_to_state, compress, compressed_model_from_state
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.training.finetune import finetune_compressed
from squeezestudio.core.model.handle import DIGIT_CLASS_NAMES, ModelHandle
from squeezestudio.core.training.loop import TrainConfig, train_classifier
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "resources" / "demo" / "lenet300_100_digits.safetensors"
PAPER_KEPT = {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26}  # Deep Compression, Table 2 (LeNet-300-100)


def baseline(args: argparse.Namespace) -> tuple[ModelHandle, ImageDataset, ImageDataset]:
    """The demo checkpoint, or one trained here with the demo's settings."""
    if DEMO.is_file():
        from squeezestudio.core.io.loading import load_model

        handle = load_model(DEMO, registry=default_registry())
        source = DEMO.relative_to(ROOT)
    else:
        torch.manual_seed(0)
        handle = zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=28,
                            class_names=list(DIGIT_CLASS_NAMES))
        source = f"trained here ({args.train_epochs} epochs; {DEMO.relative_to(ROOT)} not found)"
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    train, val = load_digits_split("train", spec), load_digits_split("val", spec)
    if not DEMO.is_file():
        train_classifier(handle.module, train, val, TrainConfig(epochs=args.train_epochs, lr=1e-3, batch_size=64,
                                                                seed=0, shift_augment=1))
    print(f"model: LeNet-300-100, {source}")
    return handle, train, val


def prune_recipe(args: argparse.Namespace) -> Recipe:
    if args.sparsity is not None:
        return Recipe(methods={"prune": {"sparsity": args.sparsity, "scope": "global"}})
    return Recipe(methods={"prune": {"sparsity": 0.5}},
                  layers={name: {"prune": {"sparsity": round(1.0 - kept, 4)}} for name, kept in PAPER_KEPT.items()})


def cluster(cm: CompressedModel, bits: int, source: ModelHandle) -> CompressedModel:
    """Cluster a pruned model's kept weights; the recipe it carries names both stages (for retraining)."""
    state = CompressionState(handle=cm.handle.clone(), encodings=dict(cm.encodings))
    step = Recipe(methods={"cluster": {"bits": bits, "centroid_update": "sum"}})
    apply_recipe_to_state(state, step, registry=default_registry())
    recipe = Recipe(methods={**cm.recipe.get("methods", {}), **step.methods}, layers=dict(cm.recipe.get("layers", {})))
    return compressed_model_from_state(state, recipe, source)


def top1(model: torch.nn.Module, val: ImageDataset) -> float:
    return 100.0 * evaluate(model, val).top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-retrain", action="store_true", help="skip both retraining steps")
    parser.add_argument("--sparsity", type=float, default=None,
                        help="one global sparsity instead of the paper's per-layer amounts "
                             "(default with --no-retrain: 0.75, as nothing recovers the loss)")
    parser.add_argument("--bits", type=int, default=None,
                        help="bits per shared-weight index (default 4; 3 with --no-retrain)")
    parser.add_argument("--prune-epochs", type=int, default=15, help="retraining epochs after pruning")
    parser.add_argument("--cluster-epochs", type=int, default=5, help="retraining epochs after clustering")
    parser.add_argument("--prune-lr", type=float, default=1e-3, help="learning rate of the retraining after pruning")
    parser.add_argument("--prune-optimizer", default="adam", choices=("adam", "sgd"))
    parser.add_argument("--cluster-lr", type=float, default=2e-3,
                        help="SGD learning rate of the centroid retraining (gradients summed per cluster)")
    parser.add_argument("--train-epochs", type=int, default=40, help="baseline epochs when no demo model exists")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy machine)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the final .sqz (default out/lenet300_100_deep_compression[_no_retrain].sqz)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.out is None:
        suffix = "_no_retrain" if args.no_retrain else ""
        args.out = ROOT / "out" / f"lenet300_100_deep_compression{suffix}.sqz"
    if args.no_retrain and args.sparsity is None:
        args.sparsity = 0.75
    if args.bits is None:
        args.bits = 3 if args.no_retrain else 4
    amounts = (f"global sparsity {args.sparsity}" if args.sparsity is not None else
               "per-layer kept " + ", ".join(f"{k} {v:.0%}" for k, v in PAPER_KEPT.items()))
    print(f"settings: prune {amounts}; cluster {args.bits} bits; "
          f"{'no retraining' if args.no_retrain else f'retrain {args.prune_epochs} + {args.cluster_epochs} epochs'}")
    started = time.perf_counter()
    handle, train, val = baseline(args)
    retrain = TrainConfig(epochs=args.prune_epochs, lr=args.prune_lr, optimizer=args.prune_optimizer, momentum=0.9,
                          batch_size=64, seed=0, shift_augment=1)

    dense = compress(handle, Recipe(), registry=default_registry())
    rows = [("baseline (dense float32)", top1(handle.module, val), len(encode_sqz(dense, registry=default_registry())))]
    cm = compress(handle, prune_recipe(args), registry=default_registry())
    rows.append(("pruned", top1(cm.handle.module, val), len(encode_sqz(cm, registry=default_registry()))))
    if not args.no_retrain:
        cm, _ = finetune_compressed(cm, train, val, retrain, registry=default_registry())
        rows.append(("pruned + retrained", top1(cm.handle.module, val), len(encode_sqz(cm, registry=default_registry()))))
    cm = cluster(cm, args.bits, handle)
    rows.append((f"clustered ({args.bits} bits)", top1(cm.handle.module, val), len(encode_sqz(cm, registry=default_registry()))))
    if not args.no_retrain:
        cm, _ = finetune_compressed(cm, train, val, replace(retrain, epochs=args.cluster_epochs, lr=args.cluster_lr,
                                                            optimizer="sgd"), registry=default_registry())
        rows.append(("centroids retrained", top1(cm.handle.module, val), len(encode_sqz(cm, registry=default_registry()))))

    report = size_report(cm, registry=default_registry())
    print()
    print(report.to_table())
    print()
    base_acc, base_bytes = rows[0][1], rows[0][2]
    print(f"{'stage':<28}{'top-1 %':>9}{'.sqz bytes':>12}{'x smaller':>11}")
    for label, acc, size in rows:
        print(f"{label:<28}{acc:>9.2f}{size:>12,}{base_bytes / size:>11.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = save_sqz(cm, args.out, registry=default_registry())
    on_disk = args.out.stat().st_size
    reloaded = top1(load_sqz(args.out, registry=default_registry()).handle.module, val)
    final_acc = rows[-1][1]
    print(f"\nwrote {args.out} ({on_disk:,} bytes; size_report says {report.total_bytes:,}; "
          f"save_sqz says {written:,}): {'match' if on_disk == report.total_bytes == written else 'MISMATCH'}")
    print(f"reloaded .sqz top-1 {reloaded:.2f}% ({'same' if abs(reloaded - final_acc) < 1e-9 else 'DIFFERENT'})")
    ratio, loss = base_bytes / on_disk, base_acc - final_acc
    target = (20.0, 2.0) if args.no_retrain else (40.0, 1.0)
    met = ratio >= target[0] and loss <= target[1]
    print(f"result: {ratio:.1f}x smaller than the dense .sqz at {loss:+.2f} points top-1 loss "
          f"(target >= {target[0]:.0f}x at <= {target[1]:.0f} point(s): {'met' if met else 'NOT met'}); "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
