"""The built-in handwritten-digits data set (scikit-learn's ``load_digits``, offline).

It ships inside scikit-learn, so the demo models, the tests and a first-time
user all have real labelled data without any download. The train/val split is
stratified and fixed by a seed, so an accuracy measured today is comparable
with one measured tomorrow.
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.images import check_spec, normalisation
from squeezestudio.core.errors import DataError
from squeezestudio.core.model.handle import DIGIT_CLASS_NAMES

Split = Literal["train", "val", "all"]

DIGITS_SPEC = PreprocessSpec(channels=1, height=32, width=32, mean=(0.5,), std=(0.5,))
"""The input the bundled demo models take: one channel, 32x32, ``(x - 0.5) / 0.5``."""

_MAX_VALUE = 16.0  # load_digits pixels are counts 0..16


def _bundled_digits_file() -> Optional[Path]:
    """scikit-learn's own copy of the digits (a gzipped CSV), found without importing it.

    ``import sklearn.datasets`` costs about 2 s (it loads SciPy); the data
    is 1,797 rows of 65 numbers, which numpy reads in milliseconds. This
    matters for the window's first point and for every CLI command.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 8, 8) float32 in 0..16, labels (N,) int64)``, read once per process."""
    path = _bundled_digits_file()
    if path is not None:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
        images = np.ascontiguousarray(table[:, :-1].reshape(-1, 8, 8))
        labels = table[:, -1].astype(np.int64)
    else:  # a scikit-learn that stores the file elsewhere: use its loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.asarray(bunch.images, dtype=np.float32)
        labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_indices(labels: np.ndarray, split: Split, seed: int, val_fraction: float) -> np.ndarray:
    """Sorted indices of ``split``: per class, a seeded shuffle sends ``round(n * val_fraction)`` to val."""
    if split not in ("train", "val", "all"):
        raise DataError(f"unknown digits split {split!r}; use 'train', 'val' or 'all'")
    if split == "all":
        return np.arange(len(labels))
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"the validation fraction must be between 0 and 1, not {val_fraction}")
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        n_val = int(round(len(members) * val_fraction))
        chosen.append(members[:n_val] if split == "val" else members[n_val:])
    return np.sort(np.concatenate(chosen))


def load_digits_split(split: Split = "val", spec: Optional[PreprocessSpec] = None, seed: int = 0,
                      val_fraction: float = 0.2) -> ImageDataset:
    """One split of the digits as a preprocessed :class:`ImageDataset`.

    Pixels are scaled to [0, 1] (``x / 16``), resized bilinearly to the spec's
    ``height x width`` (``resize``/``center_crop`` do not apply: the digits are
    square and already centered), repeated to 3 channels if asked, then
    normalised. Same ``seed`` and ``val_fraction`` -> same split; train and val
    are disjoint and together cover all 1797 images.
    """
    spec = spec or DIGITS_SPEC
    check_spec(spec)
    raw_images, raw_labels = _raw_digits()
    idx = split_indices(raw_labels, split, seed, val_fraction)
    x = torch.from_numpy(raw_images[idx] / _MAX_VALUE).to(torch.float32).unsqueeze(1)
    if (spec.height, spec.width) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(spec.height, spec.width), mode="bilinear", align_corners=False)
    if spec.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    mean, std = normalisation(spec)
    x = x * float(spec.pixel_scale)
    x = ((x - torch.from_numpy(mean)) / torch.from_numpy(std)).contiguous()
    return ImageDataset(images=x, labels=torch.from_numpy(raw_labels[idx].copy()),
                        class_names=list(DIGIT_CLASS_NAMES), name=f"digits:{split}")


def digits_as_images(count: int = 10, *, size: int = 32, split: Split = "val", seed: int = 0
                     ) -> list[tuple[str, Image.Image]]:
    """``count`` digits as ``(class name, 8-bit grayscale image)`` pairs (for sample files and tests).

    Classes are taken in turn (0, 1, ..., 9, 0, ...) so ten samples show every
    digit; each is upscaled bilinearly from 8x8 to ``size x size``.
    """
    if count < 0 or size < 1:
        raise DataError("digits_as_images needs a non-negative count and a size of at least 1 pixel")
    raw_images, raw_labels = _raw_digits()
    idx = split_indices(raw_labels, split, seed, 0.2)
    per_class = {c: [int(i) for i in idx if raw_labels[i] == c] for c in range(len(DIGIT_CLASS_NAMES))}
    out: list[tuple[str, Image.Image]] = []
    for n in range(count):
        cls = n % len(DIGIT_CLASS_NAMES)
        members = per_class[cls]
        if not members:
            continue
        i = members[(n // len(DIGIT_CLASS_NAMES)) % len(members)]
        pixels = np.clip(np.rint(raw_images[i] * (255.0 / _MAX_VALUE)), 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels, mode="L")
        if size != 8:
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        out.append((DIGIT_CLASS_NAMES[cls], img))
    return out
