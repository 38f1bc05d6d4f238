"""A retrained point measured on all images is its own stored model, not its recipe trained again."""

from __future__ import annotations

import pytest
import torch

from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.session.point_on_all import measure_stored_model, retrained
from squeezestudio.core.session.studio_session import StudioSession

PRUNE = {"version": 1, "methods": {"prune": {"sparsity": 0.6}}, "layers": {}}
RETRAIN = dict(PRUNE, finetune={"epochs": 1, "lr": 0.01, "seed": 0})


def _data(n: int, seed: int) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(images=torch.randn(n, 1, 8, 8, generator=g), labels=torch.arange(n) % 4,
                        class_names=list("abcd"))


@pytest.fixture
def session():
    torch.manual_seed(0)
    s = StudioSession(registry=default_registry())
    s.set_model(zoo_handle("lenet300_100", num_classes=4, in_channels=1, input_size=8))
    s.set_data(_data(60, 1), "random")
    s.set_training_data(_data(40, 2), "random-train")
    s.set_interactive_limit(20)
    return s


def test_the_stored_retrained_model_is_measured_on_every_image(session):
    point = session.add_experiment(session.evaluate_recipe(RETRAIN))
    assert point.metrics["images"] == 20 and retrained(point.recipe) and not retrained(PRUNE)
    session.set_training_data(_data(40, 3), "other-train")  # its recipe run again would now train another model
    full = measure_stored_model(session, point, len(session.data), label="all")
    assert full.metrics["images"] == 60 and full.size_bytes == point.size_bytes  # the file's metrics are fixed-width
    mine, theirs = point.compressed.handle.module.state_dict(), full.compressed.handle.module.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    predicted = full.compressed.handle.module(session.data.images).argmax(1)
    assert full.metric("top1") == pytest.approx((predicted == session.data.labels).float().mean().item())
    assert point.compressed.metrics["n"] == 20  # the stored point keeps its own numbers
    again = session.evaluate_recipe(RETRAIN, images=len(session.data))
    differs = [not torch.equal(mine[k], v) for k, v in again.compressed.handle.module.state_dict().items()]
    assert any(differs)  # what the action did before: another network
