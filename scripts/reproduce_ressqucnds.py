"""Reproduce Residual-Squeeze-CNDS (Qassim et al., 2017) on the digits: Fire + bypass, then fine-tune.

Start from the plain 8-convolution VGG-style "cnds8", replace every 3x3
convolution but the first by a Fire module with a bypass where shapes allow
(the "fire" method, started from a low-rank factorisation of each kernel and
fitted layer by layer to the original's outputs on calibration images from
the train split), fine-tune the whole network a few epochs, and compare:

- bytes: the exact .sqz length of each model with no weight compression
  (dense float32 weights in both, same container), so like is compared with
  like;
- top-1 on the validation split before, right after the substitution, and
  after fine-tuning.

The paper's claim is a model over 80% smaller at about the same accuracy
(here: >= 80% fewer bytes at <= 1 point top-1 loss).

Uses resources/demo/cnds8_digits.safetensors (32x32) when present, otherwise
trains a cnds8 first at ``--input-size`` (16 keeps that to minutes on two
cores). Run from the repository root:

    .venv/bin/python scripts/reproduce_ressqucnds.py [--input-size 16] [--epochs 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from squeezestudio.core.compression.codec import encode_sqz
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
DEMO = ROOT / "resources" / "demo" / "cnds8_digits.safetensors"


def baseline(args: argparse.Namespace) -> tuple[ModelHandle, ImageDataset, ImageDataset]:
    """The demo checkpoint, or a cnds8 trained here."""
    use_demo = args.model.is_file() and args.input_size in (None, 32)
    if use_demo:
        from squeezestudio.core.io.loading import load_model

        handle = load_model(args.model, registry=default_registry())
        source = str(args.model.relative_to(ROOT)) if args.model.is_relative_to(ROOT) else str(args.model)
    else:
        size = args.input_size or 32
        torch.manual_seed(0)
        handle = zoo_handle("cnds8_slim", num_classes=10, in_channels=1, input_size=size,
                            class_names=list(DIGIT_CLASS_NAMES))
        source = f"trained here ({args.train_epochs} epochs at {size}x{size}; no demo checkpoint used)"
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    train, val = load_digits_split("train", spec), load_digits_split("val", spec)
    if not use_demo:
        started = time.perf_counter()
        train_classifier(handle.module, train, val, TrainConfig(epochs=args.train_epochs, lr=1e-3, batch_size=64,
                                                                seed=0, shift_augment=1))
        source += f", {time.perf_counter() - started:.0f} s"
    print(f"model: cnds8_slim, {source}")
    handle.module.eval()  # BatchNorm must not learn from the calibration batches during the substitution
    return handle, train, val


def fire_targets(model: nn.Module) -> list[str]:
    """Every 3x3 convolution but the first (ResSquCNDS keeps the first layer)."""
    convs = [name for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1]
    return convs[1:]


def top1(model: nn.Module, val: ImageDataset) -> float:
    return 100.0 * evaluate(model, val).top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO, help="trained cnds8 checkpoint (the demo by default)")
    parser.add_argument("--input-size", type=int, default=None, help="train a cnds8 at this size (16 or more)")
    parser.add_argument("--train-epochs", type=int, default=6, help="baseline epochs when no demo model is used")
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs after the substitution")
    parser.add_argument("--lr", type=float, default=3e-4, help="fine-tuning learning rate (Adam)")
    parser.add_argument("--squeeze-ratio", type=float, default=0.2, help="SqueezeNet's SR")
    parser.add_argument("--pct3x3", type=float, default=0.6, help="share of 3x3 filters in each expand")
    parser.add_argument("--init", default="svd+reconstruct", choices=("random", "svd", "svd+reconstruct"))
    parser.add_argument("--calibration", type=int, default=256, help="train images used for reconstruction")
    parser.add_argument("--distill", type=float, default=None, help="distil from the original at this temperature")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    handle, train, val = baseline(args)
    base_acc = top1(handle.module, val)
    base_bytes = len(encode_sqz(compress(handle, Recipe(), registry=default_registry()), registry=default_registry()))

    names = fire_targets(handle.module)
    options = {"squeeze_ratio": args.squeeze_ratio, "pct3x3": args.pct3x3, "bypass": True, "init": args.init,
               "reconstruct_seconds": 20.0}
    recipe = Recipe(architecture=[{"method": "fire", "layer": name, **options} for name in names])
    state = CompressionState.from_handle(handle)
    state.calibration = train.images[:args.calibration]  # read by the fire method for svd+reconstruct
    apply_recipe_to_state(state, recipe, registry=default_registry())
    fired = compressed_model_from_state(state, recipe, handle)
    fire_bytes = len(encode_sqz(fired, registry=default_registry()))
    fire_acc = top1(fired.handle.module, val)
    print(f"replaced {len(names)} convolutions: {', '.join(names)}")
    for line in state.log:
        print("  " + line)

    config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=64, seed=0, shift_augment=1,
                         distill_temperature=args.distill, distill_alpha=0.5)
    teacher = handle.module if args.distill is not None else None
    # The epoch kept is chosen on a held-out 15% of the training split, never on
    # the validation images the result is reported on.
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    cut = int(len(train) * 0.85)
    fit, select = train.subset(order[:cut], "digits:train (fit)"), train.subset(order[cut:], "digits:train (select)")
    tuned, history = finetune_compressed(fired, fit, select, config, teacher=teacher, registry=default_registry())
    tuned_bytes = len(encode_sqz(tuned, registry=default_registry()))
    tuned_acc = top1(tuned.handle.module, val)
    print("fine-tuning (accuracy on the held-out part of the training split): "
          + ", ".join(f"epoch {r.epoch} {100 * (r.val_top1 or 0):.2f}%" for r in history.history)
          + f"; kept epoch {history.best_epoch}")

    params = [sum(p.numel() for p in m.parameters()) for m in (handle.module, tuned.handle.module)]
    fewer = 100.0 * (1.0 - tuned_bytes / base_bytes)
    print()
    print("bytes = exact .sqz length, every weight stored as dense float32 (no weight compression)")
    print(f"{'model':<34}{'parameters':>12}{'.sqz bytes':>13}{'top-1 %':>9}")
    print(f"{'cnds8 baseline':<34}{params[0]:>12,}{base_bytes:>13,}{base_acc:>9.2f}")
    print(f"{'Fire + bypass, after substitution':<34}{params[1]:>12,}{fire_bytes:>13,}{fire_acc:>9.2f}")
    print(f"{'Fire + bypass, after fine-tuning':<34}{params[1]:>12,}{tuned_bytes:>13,}{tuned_acc:>9.2f}")
    loss = base_acc - tuned_acc
    met = fewer >= 80.0 and loss <= 1.0
    print(f"\nresult: {fewer:.1f}% fewer bytes at {loss:+.2f} points top-1 loss "
          f"(target >= 80% at <= 1 point: {'met' if met else 'NOT met'}); {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
