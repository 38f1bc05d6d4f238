"""Compare Fire-module initialisations on the CNDS-8 digits model, without global fine-tuning.

Every 3x3 convolution but the first of a trained "cnds8_slim" (the demo) is replaced by a
Fire module with a bypass where shapes allow (the Residual-Squeeze-CNDS
recipe), started ``random``, ``svd`` (data-free) and ``svd+reconstruct`` (fitting the
raw convolution output, or through the following BatchNorm/ReLU, with or
without re-estimating BatchNorm statistics afterwards).
SqueezeNet strategy 1 (3x3 -> 1x1) is shown for comparison. For each it
prints validation accuracy right after the substitution, the parameter count
and the per-layer reconstruction errors.

Uses resources/demo/cnds8_digits.safetensors when present; otherwise trains a
cnds8 on the digits first (under a minute on two cores at 32x32, less with
``--input-size 16``). Run from the repository root:

    .venv/bin/python scripts/compare_fire_init.py [--input-size 16] [--epochs 3]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
from torch import nn

from squeezestudio.core.compression.fire import FireConfig, FireMethod
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.training.loop import TrainConfig, train_classifier
from squeezestudio.core.model.handle import InputSpec, ModelHandle, default_class_names
from squeezestudio.core.model.zoo import build_model
from squeezestudio.core.compression.registry import default_registry

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo" / "cnds8_digits.safetensors"


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _model_and_data(args: argparse.Namespace) -> tuple[nn.Module, ImageDataset, ImageDataset]:
    if args.model.is_file() and args.input_size == 32:
        from squeezestudio.core.io.loading import load_model

        handle = load_model(args.model, registry=default_registry())
        spec = PreprocessSpec.from_input_spec(handle.input_spec)
        print(f"model: {args.model.name}")
        return handle.module.eval(), load_digits_split("train", spec), load_digits_split("val", spec)
    size = args.input_size
    spec = PreprocessSpec(channels=1, height=size, width=size, mean=(0.5,), std=(0.5,))
    train, val = load_digits_split("train", spec), load_digits_split("val", spec)
    torch.manual_seed(0)
    model = build_model("cnds8_slim", num_classes=10, in_channels=1, input_size=size)
    print(f"model: cnds8 trained here ({args.epochs} epochs at {size}x{size}; no demo checkpoint found)")
    started = time.perf_counter()
    train_classifier(model, train, val, TrainConfig(epochs=args.epochs, lr=1e-3, batch_size=64, seed=0,
                                                    shift_augment=2))
    print(f"  trained in {time.perf_counter() - started:.0f} s")
    return model.eval(), train, val


def _targets(model: nn.Module) -> list[str]:
    convs = [name for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1]
    return convs[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO, help="a trained cnds8 checkpoint (the demo by default)")
    parser.add_argument("--input-size", type=int, default=32, help="digit image size (16 or more)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs when no demo model exists")
    parser.add_argument("--calibration", type=int, default=256, help="calibration images for reconstruction")
    parser.add_argument("--steps", type=int, default=200, help="reconstruction steps per layer")
    parser.add_argument("--squeeze-ratio", type=float, default=0.25)
    parser.add_argument("--pct3x3", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, train, val = _model_and_data(args)
    base = evaluate(model, val)
    names = _targets(model)
    calibration = train.images[:args.calibration]
    print(f"original: top-1 {100 * base.top1:.2f}%, {_parameters(model):,} parameters; "
          f"replacing {len(names)} convolutions: {', '.join(names)}")
    print(f"SR {args.squeeze_ratio}, pct3x3 {args.pct3x3}, bypass where allowed, {calibration.shape[0]} "
          f"calibration images, {args.steps} steps per layer; no fine-tuning")
    print(f"{'variant':<26}{'top-1 %':>8}{'params':>12}  relative error per layer (before -> after fitting)")
    # (label, strategy, init, fit_through, recalibrate_bn)
    variants = [("fire random", "fire", "random", False, False),
                ("fire svd (data-free)", "fire", "svd", False, False),
                ("fire svd+recon, raw out", "fire", "svd+reconstruct", False, False),
                ("fire svd+recon, thru BN", "fire", "svd+reconstruct", True, False),
                ("  + BN re-estimation", "fire", "svd+reconstruct", True, True),
                ("1x1 centre tap", "1x1", "svd", False, False),
                ("1x1 svd+recon, thru BN", "1x1", "svd+reconstruct", True, False)]
    channels, height, width = val.images.shape[1:]  # the data is already preprocessed for the model
    handle = ModelHandle(module=model, name="cnds8", source_format="zoo", class_names=default_class_names(10),
                         input_spec=InputSpec(channels, height, width, (0.5,), (0.5,)))
    for label, strategy, init, through, recalibrate in variants:
        torch.manual_seed(0)
        state = CompressionState.from_handle(handle, calibration=calibration)  # a private copy of the model
        config = FireConfig(strategy=strategy, init=init, bypass=True, squeeze_ratio=args.squeeze_ratio,
                            pct3x3=args.pct3x3, reconstruct_steps=args.steps,
                            fit_through=through, recalibrate_bn=recalibrate)
        started = time.perf_counter()
        FireMethod().apply(state, {name: config for name in names})  # the same path as a recipe
        fits = re.findall(r"reconstruction error[^0-9]*([0-9.e+-]+) -> ([0-9.e+-]+)", "\n".join(state.log))
        errors = [f"{float(a):.2f}->{float(b):.2f}" for a, b in fits]
        work = state.module
        result = evaluate(work.eval(), val)
        print(f"{label:<26}{100 * result.top1:>8.2f}{_parameters(work):>12,}  {' '.join(errors) or '-'}"
              f"  [{time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
