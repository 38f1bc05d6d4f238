"""Classify a handful of image files with one or more models, side by side.

The GUI's classify view (and any script) hands over file paths and a few models
(typically ``{"original": m1, "compressed": m2}``) and gets back, per file, each
model's top-k classes and whether the models agree on the top class. A file
that is not a usable image becomes a result with an error sentence instead of
stopping the whole batch, because users drop whole folders of mixed files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import torch
from torch import nn

from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.errors import DataError, SqueezeStudioError
from squeezestudio.core.model.outputs import model_logits
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report
from squeezestudio.core.data.images import load_image, preprocess

PathLike = Union[str, "os.PathLike[str]"]

BATCH_SIZE = 64
"""Images per forward pass: small enough for large inputs, big enough to be quick."""


@dataclass(frozen=True)
class Prediction:
    """One of a model's top-k answers for one image."""

    class_index: int
    class_name: str
    probability: float


@dataclass(frozen=True)
class ImageClassification:
    """What every model said about one file, or why the file could not be read.

    ``top`` maps each model name to its predictions, best first. ``agree`` is
    True when all models share the same top-1 class, False when they differ,
    and None when there is only one model or the file failed.
    """

    path: str
    top: dict[str, list[Prediction]] = field(default_factory=dict)
    agree: Optional[bool] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the file was decoded and classified."""
        return self.error is None


def classify_files(paths: Sequence[PathLike], models: Mapping[str, nn.Module],
                   preprocess_spec: PreprocessSpec, class_names: Sequence[str], k: int = 5, *,
                   progress: Optional[ProgressCallback] = None,
                   cancel: Optional[CancelToken] = None) -> list[ImageClassification]:
    """Classify ``paths`` with every model in ``models``; one result per path, in order.

    Each model sees exactly the same preprocessed tensors, so differences in the
    answers come from the models alone. Models are run in eval mode without
    gradients and put back in the mode they were in.
    """
    if not models:
        raise DataError("there is no model to classify with; load a model first")
    if k < 1:
        raise DataError(f"the number of classes to show must be at least 1, not {k}")
    results: list[Optional[ImageClassification]] = [None] * len(paths)
    tensors: list[torch.Tensor] = []
    good: list[int] = []
    for i, path in enumerate(paths):
        check(cancel)
        tensor, error = _decode(path, preprocess_spec)
        if error is not None:
            results[i] = ImageClassification(path=str(path), error=error)
        else:
            tensors.append(tensor)
            good.append(i)
        report(progress, 0.5 * (i + 1) / max(1, len(paths)), f"decoded {os.path.basename(str(path))}")
    if good:
        batch = torch.stack(tensors)
        per_model = {name: _topk(name, model, batch, class_names, k, cancel)
                     for name, model in models.items()}
        for row, i in enumerate(good):
            top = {name: preds[row] for name, preds in per_model.items()}
            results[i] = ImageClassification(path=str(paths[i]), top=top, agree=_agreement(top))
    report(progress, 1.0, "classified")
    return [r for r in results if r is not None]


def _decode(path: PathLike, spec: PreprocessSpec) -> tuple[Optional[torch.Tensor], Optional[str]]:
    """The preprocessed tensor for ``path``, or the sentence saying why there is none."""
    name = os.path.basename(str(path))
    try:
        image = load_image(path)
        return preprocess(image, spec), None
    except SqueezeStudioError as exc:
        return None, str(exc)
    except (OSError, ValueError) as exc:  # a decoder bug must not stop the other files
        return None, f"{name} could not be read as an image ({exc.__class__.__name__}: {exc})"


def _topk(model_name: str, model: nn.Module, images: torch.Tensor, class_names: Sequence[str],
          k: int, cancel: Optional[CancelToken]) -> list[list[Prediction]]:
    """Each image's top-k predictions from one model (softmax over its outputs)."""
    was_training = model.training
    model.eval()
    rows: list[list[Prediction]] = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], BATCH_SIZE):
                check(cancel)
                logits = model_logits(model, images[start:start + BATCH_SIZE])
                if logits.ndim != 2 or logits.shape[1] != len(class_names):
                    raise DataError(
                        f"model '{model_name}' gives outputs of shape {tuple(logits.shape)} "
                        f"but there are {len(class_names)} class names; use the model's own class list")
                probs = torch.softmax(logits.float(), dim=1)
                values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
                for vals, idxs in zip(values.tolist(), indices.tolist()):
                    rows.append([Prediction(int(j), str(class_names[j]), float(v)) for v, j in zip(vals, idxs)])
    finally:
        model.train(was_training)
    return rows


def _agreement(top: Mapping[str, list[Prediction]]) -> Optional[bool]:
    """Whether all models share the same top-1 class (None with a single model)."""
    if len(top) < 2:
        return None
    firsts = {preds[0].class_index for preds in top.values()}
    return len(firsts) == 1
