"""measure_recipe: retraining from the recipe's finetune section, before size and accuracy are measured."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.errors import DataError, RecipeError
from squeezestudio.core.measure.measure_recipe import measure_recipe, retrain_config
from squeezestudio.core.progress import CancelToken, Cancelled
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

SPEC = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
RETRAIN = {"epochs": 1, "lr": 2e-3, "seed": 1, "fraction": 0.5}


@lru_cache(maxsize=2)
def digits(split: str) -> ImageDataset:
    return load_digits_split(split, SPEC)


def handle():
    torch.manual_seed(0)
    return zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8)


def recipe(finetune=None):
    d = {"version": 1, "methods": {"prune": {"sparsity": 0.6}}, "layers": {}}
    if finetune is not None:
        d["finetune"] = dict(finetune)
    return recipe_from_dict(d)


def test_retraining_keeps_the_mask_changes_accuracy_and_size_is_the_file():
    h = handle()
    plain = measure_recipe(h, recipe(), digits("val"), registry=default_registry())
    retrained = measure_recipe(h, recipe(RETRAIN), digits("val"), train_data=digits("train"), registry=default_registry())
    assert plain.training is None and retrained.training is not None
    assert len(retrained.training.history) == 1 and "retrain" in retrained.timings
    for key, enc in retrained.compressed.encodings.items():
        assert enc.mask is not None
        np.testing.assert_array_equal(enc.mask, plain.compressed.encodings[key].mask)
        layer = retrained.compressed.handle.module.get_submodule(key[: -len(".weight")])
        weight = layer.weight.detach().numpy().reshape(-1)
        assert np.all(weight[~enc.mask] == 0.0)
    assert retrained.evaluation.top1 != plain.evaluation.top1
    assert retrained.evaluation.top1 > plain.evaluation.top1  # an untrained model learns in one epoch
    assert retrained.size_bytes == len(encode_sqz(retrained.compressed, registry=default_registry()))
    # the caller's model is untouched (retraining works on the compressed copy)
    assert torch.equal(h.module.state_dict()["fc1.weight"], handle().module.state_dict()["fc1.weight"])


def test_size_report_path_gives_the_same_bytes_after_retraining():
    m = measure_recipe(handle(), recipe(RETRAIN), digits("val"), train_data=digits("train"),
                       with_size_report=True, registry=default_registry())
    assert m.size_bytes == m.size_report.total_bytes == len(encode_sqz(m.compressed, registry=default_registry()))


def test_zero_epochs_or_no_section_means_no_retraining():
    assert retrain_config(recipe()) is None
    assert retrain_config(recipe({"epochs": 0, "lr": 0.1})) is None
    assert retrain_config({"finetune": {"epochs": 2}}).epochs == 2
    a = measure_recipe(handle(), recipe({"epochs": 0}), digits("val"), registry=default_registry())  # no training data needed
    b = measure_recipe(handle(), recipe(), digits("val"), registry=default_registry())
    assert a.training is None and a.evaluation.top1 == b.evaluation.top1


def test_retraining_without_training_data_is_a_sentence():
    with pytest.raises(DataError, match="retraining needs training data"):
        measure_recipe(handle(), recipe(RETRAIN), digits("val"), registry=default_registry())


def test_bad_finetune_option_is_a_recipe_error():
    with pytest.raises(RecipeError, match="unknown option"):
        measure_recipe(handle(), recipe({"epochs": 1, "speed": 3}), digits("val"), train_data=digits("train"), registry=default_registry())


def test_cancel_during_retraining_raises_and_progress_is_staged():
    token = CancelToken()
    seen = []

    def progress(fraction, message=""):
        seen.append((fraction, message))
        if message.startswith("epoch"):
            token.cancel()

    with pytest.raises(Cancelled):
        measure_recipe(handle(), recipe(RETRAIN), digits("val"), train_data=digits("train"),
                       progress=progress, cancel=token, registry=default_registry())
    epochs = [f for f, m in seen if m.startswith("epoch")]
    assert epochs and all(0.25 <= f <= 0.8 for f in epochs)
    assert all(b >= a for (a, _), (b, _) in zip(seen, seen[1:]))


class CountingTeacher(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_distillation_uses_the_teacher_and_changes_the_result():
    torch.manual_seed(5)
    teacher = CountingTeacher(zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8).module)
    distil = dict(RETRAIN, distill_temperature=4.0, distill_alpha=1.0)
    d = measure_recipe(handle(), recipe(distil), digits("val"), train_data=digits("train"), teacher=teacher, registry=default_registry())
    p = measure_recipe(handle(), recipe(RETRAIN), digits("val"), train_data=digits("train"), registry=default_registry())
    assert teacher.calls > 0
    assert d.evaluation.top1 != p.evaluation.top1
