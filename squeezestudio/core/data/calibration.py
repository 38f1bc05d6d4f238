"""Which images retraining and layer substitution learn from: one rule for the CLI and the GUI.

Accuracy is reported on the evaluation data, so nothing may be fitted on it
when another choice exists: retraining and the calibration images of
substitution methods (Fire, depthwise...) come from a training set --
digits' own training split when the evaluation data is digits, otherwise the
training set the user opened. Only calibration falls back to the evaluation
images, when there is no training set at all (a substitution needs some
images; retraining on the evaluation data is refused instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # annotations only: the session imports this before torch is loaded (window start-up)
    import torch

    from squeezestudio.core.data.dataset import ImageDataset

CALIBRATION_IMAGES = 256  # enough for layer-wise least squares on the layers we fit, fast on a CPU
DIGITS_TRAIN = "digits:train"


def training_source(data_source: Optional[str], train_source: Optional[str]) -> Optional[str]:
    """The training set for ``data_source``: digits' training split for digits, else ``train_source``."""
    if (data_source or "").strip().lower().startswith("digits"):
        return DIGITS_TRAIN
    return train_source or None


def calibration_images(train: Optional["ImageDataset"], evaluation: Optional["ImageDataset"],
                       count: int = CALIBRATION_IMAGES) -> Optional["torch.Tensor"]:
    """The first ``count`` training images, else the evaluation data's, else None (no images at all)."""
    for dataset in (train, evaluation):
        if dataset is not None and len(dataset):
            return dataset.images[:count]
    return None
