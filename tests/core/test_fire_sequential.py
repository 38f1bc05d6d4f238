"""Accuracy right after Fire substitution: sequential reconstruction through BN/ReLU, BN re-estimation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.substitution.batchnorm_recalibration import batchnorms_after, recalibrate_batchnorm
from squeezestudio.core.compression.substitution.fire_module import FireConv
from squeezestudio.core.compression.substitution.reconstruction import TailFit, following_tail
from squeezestudio.core.compression.fire import FireConfig, FireMethod
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle
from squeezestudio.core.progress import CancelToken, Cancelled
from squeezestudio.core.compression.registry import default_registry

LAYERS = ("3", "7", "10")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Two shared cores: one intra-op thread avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 8x8 images: a bright bar in one of four places, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    for i, c in enumerate(labels.tolist()):
        if c < 2:
            images[i, 0, 2 + 3 * c, :] += 1.0
        else:
            images[i, 0, :, 2 + 3 * (c - 2)] += 1.0
    return images, labels


@pytest.fixture(scope="module")
def trained() -> tuple[ModelHandle, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small conv-BN-ReLU network trained to high accuracy, and calibration / test data."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    images, labels = _data(384, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        opt.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()
    handle = ModelHandle(module=model.eval(), name="toy", input_spec=InputSpec(1, 8, 8, (0.0,), (1.0,)),
                         class_names=list("abcd"), source_format="zoo",
                         architecture=ArchitectureSpec(kind="graph"))
    test_images, test_labels = _data(512, seed=2)
    return handle, images[:256], test_images, test_labels


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.eval()(images).argmax(1) == labels).float().mean())


def _recipe(**options) -> Recipe:
    """One architecture entry per layer: the pipeline calls the method once per entry."""
    return Recipe(architecture=[{"method": "fire", "layer": name, "squeeze_ratio": 0.5, "pct3x3": 0.5,
                                 "reconstruct_steps": 150, **options} for name in LAYERS])


def test_default_init_reconstructs_and_keeps_accuracy_where_the_data_free_start_loses_it(trained):
    handle, calibration, test_images, test_labels = trained
    original = _accuracy(handle.module, test_images, test_labels)
    assert original > 0.9  # the toy really learned the task
    torch.manual_seed(0)
    data_free = compress(handle, _recipe(init="svd"), calibration=calibration, registry=default_registry())
    torch.manual_seed(0)
    fitted = compress(handle, _recipe(), calibration=calibration, registry=default_registry())  # default init
    for name in LAYERS:
        assert isinstance(fitted.handle.module.get_submodule(name), FireConv)
    assert all(r["init"] == "svd+reconstruct" for r in fitted.handle.architecture.modifications)
    after_svd = _accuracy(data_free.handle.module, test_images, test_labels)
    after_fit = _accuracy(fitted.handle.module, test_images, test_labels)
    assert after_fit >= original - 0.05
    assert after_fit > after_svd + 0.05
    assert any("after BatchNorm/activation" in line for line in fitted.provenance["log"])


def test_separate_apply_calls_fit_every_layer_to_the_original_not_to_the_drifted_model(trained):
    """Per-entry calls (the pipeline) and one call for all layers give the same model."""
    handle, calibration, test_images, _ = trained
    config = FireConfig(squeeze_ratio=0.25, reconstruct_steps=40)
    torch.manual_seed(0)
    together = CompressionState.from_handle(handle, calibration=calibration)
    FireMethod().apply(together, {name: config for name in LAYERS})
    torch.manual_seed(0)
    apart = CompressionState.from_handle(handle, calibration=calibration)
    for name in LAYERS:
        FireMethod().apply(apart, {name: config})
    with torch.no_grad():
        assert torch.allclose(together.module(test_images), apart.module(test_images), atol=1e-5)


def test_a_changed_model_is_not_fitted_to_a_stale_original(trained):
    handle, calibration, _, _ = trained
    state = CompressionState.from_handle(handle, calibration=calibration)
    FireMethod().apply(state, {"3": FireConfig(reconstruct_steps=5)})
    reference_before = state.original_module()
    assert state.original_module() is reference_before  # kept while nothing else changed
    with torch.no_grad():
        state.module[7].weight.mul_(2.0)  # something else changed the model in between
    FireMethod().apply(state, {"10": FireConfig(reconstruct_steps=5)})
    reference_after = state.original_module()
    assert reference_after is not reference_before
    assert torch.equal(reference_after[7].weight, state.module[7].weight)


def test_following_tail_finds_batchnorm_and_activation_in_the_same_sequential(trained):
    model = trained[0].module
    assert following_tail(model, "3") == ["4", "5"]
    assert following_tail(model, "14") == []  # Flatten follows: nothing to fit through
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))
    assert following_tail(plain, "0") == ["1"]  # an activation alone; a later BN is not "right after"
    assert following_tail(nn.ModuleDict({"c": nn.Conv2d(1, 1, 3)}), "c") == []


def test_tailfit_trains_only_the_head_and_keeps_batchnorm_statistics(trained):
    model = trained[0].module
    head = nn.Conv2d(8, 16, 3, padding=1)
    fit = TailFit(head, [model[4], model[5]])
    fit.train()
    assert fit.head.training and not fit.tail[0].training
    mean = fit.tail[0].running_mean.clone()
    fit(torch.randn(4, 8, 8, 8)).sum().backward()
    assert torch.equal(fit.tail[0].running_mean, mean)
    assert head.weight.grad is not None and fit.tail[0].weight.grad is None
    assert fit.tail[0] is not model[4]  # a copy: the model's BatchNorm is untouched


def test_recalibration_sets_exact_batch_statistics_and_restores_on_cancel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)).eval()
    images = torch.randn(40, 2, 6, 6)
    assert batchnorms_after(model, ["3"]) == ["4"]
    assert batchnorms_after(model, ["0"]) == ["1", "4"]
    assert batchnorms_after(model, ["nowhere"]) == []
    count = recalibrate_batchnorm(model, images, ["1"], batch_size=40)
    with torch.no_grad():
        out = model[0](images)
    assert count == 1 and not model.training and model[1].momentum == 0.1
    assert torch.allclose(model[1].running_mean, out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[1].running_var, out.var(dim=(0, 2, 3), unbiased=True), atol=1e-4)
    before = model[4].running_mean.clone()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        recalibrate_batchnorm(model, images, ["4"], cancel=token)
    assert torch.equal(model[4].running_mean, before)


def test_recalibrate_bn_option_touches_only_batchnorms_after_the_first_replaced_layer(trained):
    handle, calibration, _, _ = trained
    state = CompressionState.from_handle(handle, calibration=calibration)
    first_bn = state.module[1].running_mean.clone()
    later_bn = state.module[8].running_mean.clone()
    FireMethod().apply(state, {"7": FireConfig(init="svd", recalibrate_bn=True)})
    assert torch.equal(state.module[1].running_mean, first_bn)
    assert not torch.equal(state.module[8].running_mean, later_bn)
    assert any("re-estimated the statistics of 2 BatchNorm" in line for line in state.log)
    no_data = CompressionState.from_handle(handle)
    FireMethod().apply(no_data, {"7": FireConfig(recalibrate_bn=True)})
    assert any("not re-estimated" in line for line in no_data.log)
    assert any("no calibration images" in line and "plain 'svd'" in line for line in no_data.log)
