"""The training loop: loss with distillation, config checks, determinism, best epoch, cancel, hooks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from squeezestudio.core.compression.method import FinetuneHooks
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError, RecipeError
from squeezestudio.core.progress import CancelToken
from squeezestudio.core.training.loop import TrainConfig, train_classifier, train_config_from_dict, training_loss


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blobs(n: int = 240, seed: int = 0) -> ImageDataset:
    """Four separable classes of 1x4x4 images (a bright quadrant each) plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randn(n, 1, 4, 4, generator=g) * 0.3
    for c in range(4):
        r, q = divmod(c, 2)
        images[labels == c, 0, 2 * r:2 * r + 2, 2 * q:2 * q + 2] += 2.0
    return ImageDataset(images=images, labels=labels, class_names=list("abcd"))


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


CFG = TrainConfig(epochs=3, lr=1e-2, batch_size=32, seed=1)


def test_alpha_one_is_the_pure_distillation_term_and_alpha_zero_plain_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, teacher = torch.randn(8, 5), torch.randn(8, 5) * 3
    y = torch.randint(0, 5, (8,))
    t = 3.0
    kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
    one = TrainConfig(distill_temperature=t, distill_alpha=1.0)
    assert torch.allclose(training_loss(logits, y, teacher, one), kd)
    assert torch.allclose(training_loss(logits, (y + 1) % 5, teacher, one), kd)  # labels play no part
    zero = replace(one, distill_alpha=0.0)
    assert torch.allclose(training_loss(logits, y, teacher, zero), F.cross_entropy(logits, y))
    half = replace(one, distill_alpha=0.25)
    assert torch.allclose(training_loss(logits, y, teacher, half), 0.25 * kd + 0.75 * F.cross_entropy(logits, y))
    assert torch.allclose(training_loss(logits, y, None, one), F.cross_entropy(logits, y))


def test_training_learns_and_is_deterministic() -> None:
    data = blobs()
    a, b = model(), model()
    ra = train_classifier(a, data, data, CFG)
    rb = train_classifier(b, data, data, CFG)
    assert ra.best_val_top1 is not None and ra.best_val_top1 > 0.9
    assert ra.history[-1].train_loss < ra.history[0].train_loss
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = model()
    train_classifier(c, data, data, replace(CFG, seed=2))
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_distillation_alone_teaches_the_teacher() -> None:
    data = blobs()
    teacher = model()
    train_classifier(teacher, data, None, CFG)
    scrambled = ImageDataset(images=data.images, labels=(data.labels + 1) % 4, class_names=data.class_names)
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    train_classifier(student, scrambled, None, replace(CFG, epochs=5, distill_temperature=2.0, distill_alpha=1.0),
                     teacher=teacher)
    with torch.no_grad():
        agree = (student(data.images).argmax(1) == teacher(data.images).argmax(1)).float().mean()
    assert agree > 0.9


def test_cancel_returns_the_best_epoch_so_far() -> None:
    data = blobs()
    net = model()
    token = CancelToken()
    steps_per_epoch = len(data) // CFG.batch_size + 1
    calls = []

    def progress(fraction: float, message: str = "") -> None:
        calls.append(fraction)
        if len(calls) == steps_per_epoch + 2:
            token.cancel()

    result = train_classifier(net, data, data, replace(CFG, epochs=5), progress=progress, cancel=token)
    assert result.cancelled and len(result.history) == 1 and result.best_epoch == 1
    with torch.no_grad():
        acc = float((net(data.images).argmax(1) == data.labels).float().mean())
    assert acc == pytest.approx(result.best_val_top1)


def test_hooks_run_around_every_step_and_finish_once() -> None:
    data = blobs(n=64)
    events: list[str] = []
    net = model()
    seen_grad = []

    def before() -> None:
        seen_grad.append(net[1].weight.grad is not None)
        events.append("before")

    hooks = [FinetuneHooks(before_step=before, after_step=lambda: events.append("after"),
                           finish=lambda: events.append("finish"))]
    train_classifier(net, data, None, replace(CFG, epochs=2), hooks=hooks)
    assert events == ["before", "after"] * 4 + ["finish"] and all(seen_grad)


def test_config_from_a_recipe_section() -> None:
    cfg = train_config_from_dict({"epochs": "2", "lr": 0.01, "optimizer": "sgd", "distill_temperature": 4})
    assert (cfg.epochs, cfg.lr, cfg.optimizer, cfg.distill_temperature) == (2, 0.01, "sgd", 4.0)
    assert train_config_from_dict(None) == TrainConfig()
    with pytest.raises(RecipeError, match="unknown option"):
        train_config_from_dict({"epochz": 2})
    with pytest.raises(RecipeError, match="lr must be positive"):
        train_config_from_dict({"lr": 0})
    with pytest.raises(RecipeError, match="distill_alpha"):
        train_config_from_dict({"distill_alpha": 1.5})
    with pytest.raises(RecipeError, match="epochs must be a whole number"):
        train_config_from_dict({"epochs": "many"})


def test_bad_input_is_refused_in_one_sentence() -> None:
    unlabelled = ImageDataset(images=torch.zeros(4, 1, 4, 4), labels=None, class_names=list("abcd"))
    with pytest.raises(DataError, match="labelled"):
        train_classifier(model(), unlabelled, None, CFG)
    with pytest.raises(RecipeError, match="batch_size"):
        train_classifier(model(), blobs(), None, replace(CFG, batch_size=0))
