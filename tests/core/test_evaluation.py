"""evaluate() and predict_topk() on tiny models whose outputs are known exactly."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.evaluation import evaluate, predict_topk, reference_predictions
from squeezestudio.core.progress import Cancelled, CancelToken

NUM_CLASSES = 10


class DistanceModel(nn.Module):
    """Predicts the class written in pixel (0, 0): logit of class c is ``-|c - p|``.

    So its top-5 is ``{p, p +- 1, p +- 2}`` (clipped to the classes), without ties at the cut.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.register_buffer("classes", torch.arange(num_classes, dtype=torch.float32))
        self.calls_in_inference_mode: list[bool] = []
        self.training_seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls_in_inference_mode.append(torch.is_inference_mode_enabled())
        self.training_seen.append(self.training)
        p = x[:, 0, 0, 0].unsqueeze(1)
        return -(self.classes.unsqueeze(0) - p).abs() * self.scale


def _data(n: int = 23, labelled: bool = True) -> tuple[ImageDataset, list[int], list[int]]:
    g = torch.Generator().manual_seed(1)
    preds = torch.randint(0, NUM_CLASSES, (n,), generator=g).tolist()
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g).tolist()
    images = torch.zeros(n, 1, 2, 2)
    images[:, 0, 0, 0] = torch.tensor(preds, dtype=torch.float32)
    data = ImageDataset(images=images, labels=torch.tensor(labels) if labelled else None,
                        class_names=[str(i) for i in range(NUM_CLASSES)])
    return data, preds, labels


def _expected_top5(p: int) -> set[int]:
    return set(sorted(range(NUM_CLASSES), key=lambda c: (abs(c - p), c))[:5])


def test_accuracy_top5_and_loss_match_independent_computation():
    data, preds, labels = _data()
    result = evaluate(DistanceModel(), data, batch_size=5)
    n = len(preds)
    assert result.n == n and result.batch_size == 5
    assert result.top1 == pytest.approx(sum(p == y for p, y in zip(preds, labels)) / n)
    assert result.top5 == pytest.approx(sum(y in _expected_top5(p) for p, y in zip(preds, labels)) / n)
    expected_loss = 0.0
    for p, y in zip(preds, labels):
        logits = [-abs(c - p) for c in range(NUM_CLASSES)]
        expected_loss += math.log(sum(math.exp(v) for v in logits)) - logits[y]
    assert result.loss == pytest.approx(expected_loss / n, rel=1e-5)
    assert result.agreement is None
    assert result.topk == {1: result.top1, 5: result.top5}
    assert result.latency_ms_per_image > 0 and result.latency_ms_per_batch > result.latency_ms_per_image
    flat = result.to_dict()
    assert flat["top1"] == result.top1 and flat["n"] == n and "topk" not in flat
    assert all(v is None or isinstance(v, (int, float)) for v in flat.values())
    json.dumps(flat)


def test_agreement_with_itself_and_with_another_model():
    data, preds, _ = _data()
    model = DistanceModel()
    assert evaluate(model, data, reference=model).agreement == 1.0

    class AlwaysThree(nn.Module):
        def forward(self, x):
            return nn.functional.one_hot(torch.full((x.shape[0],), 3), NUM_CLASSES).float()

    agreement = evaluate(model, data, reference=AlwaysThree(), batch_size=4).agreement
    assert agreement == pytest.approx(sum(p == 3 for p in preds) / len(preds))


def test_cached_reference_predictions_give_the_same_agreement_as_the_model():
    data, preds, _ = _data()
    model = DistanceModel()

    class ShiftedByOne(nn.Module):
        def forward(self, x):
            return nn.functional.one_hot((x[:, 0, 0, 0].long() + 1) % NUM_CLASSES, NUM_CLASSES).float()

    other = ShiftedByOne()
    cached = reference_predictions(other, data, batch_size=5)
    assert cached.tolist() == [(p + 1) % NUM_CLASSES for p in preds]
    assert evaluate(model, data, reference=cached).agreement == evaluate(model, data, reference=other).agreement
    with pytest.raises(DataError):
        evaluate(model, data, reference=cached[:-1])


def test_unlabelled_data_gives_no_accuracy_but_agreement():
    data, _, _ = _data(labelled=False)
    model = DistanceModel()
    result = evaluate(model, data, reference=model)
    assert result.top1 is None and result.top5 is None and result.loss is None
    assert result.agreement == 1.0


def test_fewer_than_five_classes_has_no_top5():
    data, preds, labels = _data()
    small = ImageDataset(images=data.images.clamp(max=2), labels=data.labels.clamp(max=2),
                         class_names=["a", "b", "c"])
    result = evaluate(DistanceModel(3), small, topk=(1, 2, 5))
    assert result.top5 is None and result.topk[5] is None
    expected = sum(min(p, 2) == min(y, 2) for p, y in zip(preds, labels)) / len(preds)
    assert result.top1 == pytest.approx(expected)
    assert result.topk[2] is not None and result.topk[2] >= result.top1
    assert result.to_dict()["top2"] == result.topk[2]


def test_runs_in_inference_and_eval_mode_then_restores_flags():
    data, _, _ = _data()
    outer = nn.Sequential(DistanceModel(), nn.Identity())
    outer.train()
    outer[1].eval()  # a submodule deliberately left in eval mode must stay so
    evaluate(outer, data, batch_size=10)
    inner = outer[0]
    assert all(inner.calls_in_inference_mode) and not any(inner.training_seen)
    assert outer.training and inner.training and not outer[1].training


def test_progress_increases_to_one():
    data, _, _ = _data()
    fractions: list[float] = []
    evaluate(DistanceModel(), data, batch_size=5, progress=lambda f, m="": fractions.append(f))
    assert len(fractions) == 5 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[0] == pytest.approx(5 / 23)


def test_cancel_raises_between_batches():
    data, _, _ = _data()
    token = CancelToken()
    model = DistanceModel()
    with pytest.raises(Cancelled):
        evaluate(model, data, batch_size=5, cancel=token, progress=lambda f, m="": token.cancel())
    assert len(model.training_seen) == 1  # stopped after the first batch
    assert model.training  # flags restored even when cancelled


def test_bad_inputs_raise_data_error():
    data, _, _ = _data()
    with pytest.raises(DataError, match="outside the model's 3 outputs"):
        evaluate(DistanceModel(3), data)
    empty = ImageDataset(images=torch.zeros(0, 1, 2, 2), labels=None, class_names=[])
    with pytest.raises(DataError, match="empty"):
        evaluate(DistanceModel(), empty)


def test_predict_topk_probabilities_and_order():
    data, preds, _ = _data(n=6)
    probs, idx = predict_topk(DistanceModel(), data.images, k=3)
    assert probs.shape == idx.shape == (6, 3)
    assert idx[:, 0].tolist() == preds
    assert torch.all(probs[:, :-1] >= probs[:, 1:])
    logits = torch.tensor([[-abs(c - p) for c in range(NUM_CLASSES)] for p in preds], dtype=torch.float32)
    assert torch.allclose(probs[:, 0], torch.softmax(logits, dim=1).max(dim=1).values)
    one_p, one_i = predict_topk(DistanceModel(), data.images[0], k=50)
    assert one_p.shape == (1, NUM_CLASSES) and one_i[0, 0].item() == preds[0]
    assert one_p.sum().item() == pytest.approx(1.0, abs=1e-5)
