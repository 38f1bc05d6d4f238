#!/usr/bin/env python3
"""Train the bundled demo models on the digits set, seeded, and write resources/.

Reproduces resources/demo/*.safetensors (weights-only, with the architecture
name, class names and input spec in the file's metadata) and the sample
images in resources/samples/. The epoch kept is the best on a held-out 10%
of the TRAINING split (the same seeded part the shipped recipes hold out,
``split_holdout(train, 0.1, seed=0)``), never on the validation split the
accuracy printed here is measured on. Prints each model's validation
accuracy; the README quotes this output.

    python scripts/train_demo_models.py            # all models
    python scripts/train_demo_models.py squeezenet
"""

from __future__ import annotations

import sys
import time

import torch

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import digits_as_images, load_digits_split
from squeezestudio.core.io.demo_files import DEMO_DIR, DEMO_MODELS, SAMPLES_DIR
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.measure.stages import split_holdout
from squeezestudio.core.io.loading import save_safetensors
from squeezestudio.core.model.handle import DIGIT_CLASS_NAMES
from squeezestudio.core.training.loop import TrainConfig, train_classifier
from squeezestudio.core.model.zoo import zoo_handle

SEED = 0
HOLDOUT = 0.1  # share of the training split that picks the epoch
# name -> (input size, training configuration)
SETTINGS = {
    "squeezenet": (32, TrainConfig(epochs=30, lr=2e-3, batch_size=64, seed=SEED, shift_augment=2)),
    "cnds8": (32, TrainConfig(epochs=25, lr=1e-3, batch_size=64, seed=SEED, shift_augment=2)),
    "lenet300_100": (28, TrainConfig(epochs=40, lr=1e-3, batch_size=64, seed=SEED, shift_augment=1)),
}


def train_one(name: str) -> float:
    filename, arch = DEMO_MODELS[name]
    size, config = SETTINGS[name]
    torch.manual_seed(SEED)
    handle = zoo_handle(arch, num_classes=10, in_channels=1, input_size=size,
                        class_names=list(DIGIT_CLASS_NAMES))
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    train, held = split_holdout(load_digits_split("train", spec, seed=SEED), HOLDOUT, SEED)
    val = load_digits_split("val", spec, seed=SEED)
    started = time.perf_counter()
    history = train_classifier(handle.module, train, held, config,
                               progress=lambda f, m: print(f"\r  {name}: {m}   ", end="", flush=True))
    print()
    seconds = time.perf_counter() - started
    result = evaluate(handle.module, val)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    written = save_safetensors(handle, DEMO_DIR / filename)
    params = sum(p.numel() for p in handle.module.parameters())
    print(f"{name:14s} {arch:14s} params {params:>9,d}  file {written:>10,d} B  "
          f"val top-1 {result.top1 * 100:.2f}%  ({len(val)} images; epoch {history.best_epoch} kept, best on "
          f"{len(held)} held-out training images; trained {seconds:.0f} s)")
    return float(result.top1)


def write_samples() -> None:
    SAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    for label, image in digits_as_images(count=10, split="val", seed=SEED, size=64):
        image.save(SAMPLES_DIR / f"digit_{label}.png")
    print(f"wrote {len(list(SAMPLES_DIR.glob('*.png')))} sample images to {SAMPLES_DIR}")


def main(argv: list[str]) -> int:
    names = argv or list(SETTINGS)
    for name in names:
        train_one(name)
    if not argv:
        write_samples()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
