"""Models and image folders "nobody here trained", built the way other tools ship them.

Each model is a small torch CNN exported to ONNX the way third-party
classifiers arrive: one ending in Softmax, one channels-last (``[N, H, W, 3]``
through a permute, as TensorFlow converters produce), one expecting 48x192
inputs normalised with mean/std 0.5. The reference for every check is
onnxruntime run directly on the file with the right preprocessing, written
here independently of SqueezeStudio's (PIL resize, numpy arithmetic).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn


class _Net(nn.Module):
    def __init__(self, classes: int, softmax: bool, nhwc: bool) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, classes)
        self.softmax, self.nhwc = softmax, nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        out = self.head(torch.flatten(self.features(x), 1))
        return torch.softmax(out, dim=1) if self.softmax else out


def export_net(net: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    """Export with a dynamic batch, as other tools do (the legacy exporter: fast and quiet here)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.randn(*shape),), buffer, dynamo=False, input_names=["image"],
                          output_names=["scores"], dynamic_axes={"image": {0: "n"}, "scores": {0: "n"}})
    path.write_bytes(buffer.getvalue())
    return path


def reference_batch(paths: list[Path], size: tuple[int, int], mean: float | tuple, std: float | tuple,
                    nhwc: bool = False) -> np.ndarray:
    """Exact resize to ``size`` (H, W) with PIL bilinear, /255, (x - mean) / std: the models' own preprocessing."""
    rows = []
    for p in paths:
        with Image.open(p) as img:
            arr = np.asarray(img.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR),
                             dtype=np.float32) / 255.0
        arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
        rows.append(arr if nhwc else arr.transpose(2, 0, 1))
    return np.stack(rows).astype(np.float32)


def run_onnxruntime(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def write_images(folder: Path, count: int, seed: int) -> list[Path]:
    """PNG and JPEG files of different sizes and modes (RGB, L, RGBA, P), colourful enough to be told apart."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        h, w = int(rng.integers(40, 90)), int(rng.integers(120, 260))
        base = rng.integers(0, 256, size=3)
        grad = np.linspace(0, 1, w)[None, :, None] * rng.integers(-120, 120, size=3)
        noise = rng.normal(0, 25, size=(h, w, 3))
        arr = np.clip(base + grad + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
        mode = ("RGB", "L", "RGBA", "P")[i % 4]
        if mode != "RGB":
            img = img.convert(mode)
        ext = ".jpg" if mode in ("RGB", "L") and i % 8 < 2 else ".png"
        path = folder / f"img{i:03d}{ext}"
        img.save(path)
        paths.append(path)
    return paths


@dataclass
class ThirdPartySet:
    """A third-party ONNX model, its preprocessing, and a folder labelled by onnxruntime's predictions."""

    model: Path
    folder: Path
    paths: list[Path]
    labels: np.ndarray  # onnxruntime's top-1 under the right preprocessing
    probabilities: np.ndarray  # onnxruntime's outputs (the Softmax model's confidences)


def _labelled_folder(root: Path, paths: list[Path], labels: np.ndarray, classes: int) -> Path:
    folder = root / "labelled"
    for p, label in zip(paths, labels):
        target = folder / f"c{int(label)}"
        target.mkdir(parents=True, exist_ok=True)
        (target / p.name).write_bytes(p.read_bytes())
    for c in range(classes):
        (folder / f"c{c}").mkdir(parents=True, exist_ok=True)
    return folder


def _build(root: Path, *, seed: int, classes: int, size: tuple[int, int], mean, std, softmax: bool,
           nhwc: bool) -> ThirdPartySet:
    torch.manual_seed(seed)
    net = _Net(classes, softmax, nhwc)
    shape = (1, size[0], size[1], 3) if nhwc else (1, 3, size[0], size[1])
    model = export_net(net, shape, root / "model.onnx")
    paths = write_images(root / "images", 24, seed)
    probs = run_onnxruntime(model, reference_batch(paths, size, mean, std, nhwc))
    labels = probs.argmax(axis=1)
    # Class folders must hold the images sorted so folder names c0..cK map to model outputs 0..K.
    folder = _labelled_folder(root, paths, labels, classes)
    return ThirdPartySet(model, folder, paths, labels, probs)


@pytest.fixture(scope="session")
def text_direction_set(tmp_path_factory) -> ThirdPartySet:
    """48x192 input, mean/std 0.5, 4 classes (logits)."""
    return _build(tmp_path_factory.mktemp("textdir"), seed=1, classes=4, size=(48, 192), mean=0.5, std=0.5,
                  softmax=False, nhwc=False)


@pytest.fixture(scope="session")
def softmax_set(tmp_path_factory) -> ThirdPartySet:
    """32x32 input, ImageNet mean/std, ends in Softmax, 5 classes."""
    return _build(tmp_path_factory.mktemp("softmax"), seed=2, classes=5, size=(32, 32),
                  mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), softmax=True, nhwc=False)


@pytest.fixture(scope="session")
def nhwc_set(tmp_path_factory) -> ThirdPartySet:
    """Channels-last [N, 40, 40, 3] input, mean/std 0.5, 3 classes."""
    return _build(tmp_path_factory.mktemp("nhwc"), seed=3, classes=3, size=(40, 40), mean=0.5, std=0.5,
                  softmax=False, nhwc=True)


@pytest.fixture(scope="session")
def nhwc_softmax_set(tmp_path_factory) -> ThirdPartySet:
    """Channels-last [N, 40, 40, 3] input ending in Softmax (a Keras classifier as converters ship it), 3 classes."""
    return _build(tmp_path_factory.mktemp("nhwc_softmax"), seed=4, classes=3, size=(40, 40), mean=0.5, std=0.5,
                  softmax=True, nhwc=True)


def linked_folder(s: ThirdPartySet, root: Path) -> Path:
    """A class folder per output whose images are symbolic links into ``s``'s own image folder."""
    for label, path in zip(s.labels, s.paths):
        target = root / f"c{int(label)}"
        target.mkdir(parents=True, exist_ok=True)
        (target / path.name).symlink_to(path)
    for c in range(s.probabilities.shape[1]):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
    return root
