"""Which images retraining and substitution learn from: a training set, never the evaluation data when one exists."""

from __future__ import annotations

import torch

from squeezestudio.core.data.calibration import DIGITS_TRAIN, calibration_images, training_source
from squeezestudio.core.data.dataset import ImageDataset


def _data(n: int, value: float) -> ImageDataset:
    return ImageDataset(images=torch.full((n, 1, 4, 4), value), labels=torch.zeros(n, dtype=torch.long),
                        class_names=["a"])


def test_digits_train_on_their_own_split_and_other_data_on_the_users_training_set() -> None:
    assert training_source("digits", None) == DIGITS_TRAIN
    assert training_source(" Digits:val", "/my/train") == DIGITS_TRAIN
    assert training_source("/my/val", "/my/train") == "/my/train"
    assert training_source("/my/val", None) is None and training_source(None, "") is None


def test_calibration_prefers_training_images_and_falls_back_to_the_evaluation_data() -> None:
    train, evaluation = _data(300, 1.0), _data(5, 2.0)
    chosen = calibration_images(train, evaluation)
    assert chosen.shape[0] == 256 and bool((chosen == 1.0).all())
    assert bool((calibration_images(None, evaluation) == 2.0).all())
    assert bool((calibration_images(_data(0, 1.0), evaluation, count=3) == 2.0).all())
    assert calibration_images(None, None) is None
