"""Evaluation through onnxruntime, batch sizes chosen by measuring, devices and fixed subsets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.data.subsets import limited, stratified_indices
from squeezestudio.core.devices import resolve_device
from squeezestudio.core.errors import SqueezeStudioError
from squeezestudio.core.measure.evaluation import evaluate
from squeezestudio.core.measure.runtime_forward import runtime_batch_size, runtime_forward_for
from squeezestudio.core.model.outputs import LOGITS, PROBABILITIES, mark_output_kind


def _net(softmax: bool = False) -> nn.Module:
    layers = [nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
              nn.Linear(6, 4)]
    return nn.Sequential(*layers, *([nn.Softmax(dim=1)] if softmax else [])).eval()


def _data(n: int = 70, side: int = 72) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(images=torch.randn(n, 3, side, side, generator=g),
                        labels=torch.randint(0, 4, (n,), generator=g), class_names=list("abcd"))


def test_runtime_path_measures_the_same_model():
    model, data = _net(), _data()
    torch_result = evaluate(model, data, use_runtime=False)
    ort_result = evaluate(model, data, use_runtime=True)
    assert ort_result.top1 == torch_result.top1
    assert ort_result.loss == pytest.approx(torch_result.loss, rel=1e-4)
    assert ort_result.batch_size in (64, 128, 256)  # onnxruntime's sizes for 3x72x72


def test_runtime_forward_refuses_a_model_it_does_not_reproduce():
    model = _net()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        wrong = model(x) + 1.0  # outputs torch never gave: the check must refuse
        assert runtime_forward_for(model, x, wrong) is None
        assert runtime_forward_for(model, x, model(x)) is not None


def test_probability_outputs_are_not_softmaxed_twice():
    probs_model, logits_model = _net(softmax=True), _net()
    probs_model.load_state_dict(logits_model.state_dict())
    mark_output_kind(probs_model, PROBABILITIES)
    data = _data(24, 16)
    a, b = evaluate(probs_model, data), evaluate(logits_model, data)
    assert a.top1 == b.top1
    assert a.loss == pytest.approx(b.loss, rel=1e-4)  # cross-entropy of the same distribution


def test_explicit_cpu_device_and_missing_gpu():
    assert resolve_device("cpu").type == "cpu"
    assert evaluate(_net(), _data(10, 16), device="cpu").n == 10
    if not torch.cuda.is_available():
        with pytest.raises(SqueezeStudioError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_limit_is_a_seeded_stratified_subset():
    labels = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    idx = stratified_indices(labels, 100, 20, seed=0)
    assert len(idx) == 20 and torch.equal(idx, stratified_indices(labels, 100, 20, seed=0))
    assert torch.bincount(labels[idx]).tolist() == [16, 3, 1]  # in proportion, the rare class kept
    data = ImageDataset(images=torch.zeros(100, 1, 2, 2), labels=labels, class_names=["a", "b", "c"])
    assert len(limited(data, 20)) == 20 and "20 of 100" in limited(data, 20).name


def test_the_probe_batch_of_large_images_is_not_a_batch_size_candidate():
    from squeezestudio.core.data.dataset import ImageDataset
    from squeezestudio.core.measure.evaluation import PROBE_IMAGES, evaluate

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 7, 4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    data = ImageDataset(images=torch.rand(16, 3, 96, 96), labels=torch.arange(16) % 2, class_names=["a", "b"],
                        name="tiny 96x96")
    result = evaluate(model, data, use_runtime=False)
    assert result.batch_size != PROBE_IMAGES and result.batch_size in (8, 16, 32)


def test_batch_sizes_are_timed_on_warm_batches_and_tried_while_faster():
    from squeezestudio.core.measure.evaluation import _BatchPlan

    def run(plan: _BatchPlan, per_image: dict[int, float], batches: int) -> list[int]:
        sizes, tried = [], set()
        for _ in range(batches):
            size = plan.next_size()
            cold = size not in tried  # a first batch at a new size: slow, and must not decide
            tried.add(size)
            plan.record(size, size * per_image[size] * (5.0 if cold else 1.0), size)
            sizes.append(size)
        return sizes

    plan = _BatchPlan(None, 3 * 224 * 224)
    assert run(plan, {8: 1.0, 16: 0.8, 32: 0.9}, 8) == [8, 8, 16, 16, 32, 32, 16, 16]
    assert plan.chosen == 16
    plan = _BatchPlan(None, 3 * 224 * 224)  # a model that prefers small batches pays for one larger size only
    assert run(plan, {8: 1.0, 16: 1.1, 32: 0.5}, 6) == [8, 8, 16, 16, 8, 8]
    plan = _BatchPlan(None, 3 * 224 * 224)
    plan.run_in_runtime(3 * 224 * 224)  # onnxruntime's own sizes, from the start
    assert run(plan, {8: 1.0, 16: 0.9, 32: 0.8}, 7) == [8, 8, 16, 16, 32, 32, 32]
    fixed = _BatchPlan(5, 3 * 224 * 224)
    fixed.run_in_runtime(3 * 224 * 224)
    assert run(fixed, {5: 1.0}, 3) == [5, 5, 5] and fixed.chosen == 5
    assert runtime_batch_size(3 * 224 * 224) == 8 and runtime_batch_size(3 * 512 * 512) == 1
    assert runtime_batch_size(1) == 256


def test_runtime_keeps_the_batch_the_caller_fixed():
    result = evaluate(_net(), _data(70, 72), batch_size=5, use_runtime=True)
    assert result.batch_size == 5
    assert result.latency_ms_per_batch * 14 == pytest.approx(result.latency_ms_per_image * 70)


def test_tally_reduced_in_chunks_equals_one_reduction():
    from squeezestudio.core.measure.eval_tally import EvalTally

    g = torch.Generator().manual_seed(3)
    scores = torch.randn(23, 7, generator=g)
    labels = torch.randint(0, 7, (23,), generator=g)
    # Reduced after every batch, after every 2 and once at the end.
    tallies = [EvalTally(23, 3, labels, LOGITS, chunk_elements=c) for c in (1, 70, 10 ** 9)]
    for tally in tallies:
        for start in range(0, 23, 5):
            tally.add(start, scores[start:start + 5])
        tally.flush()
    want_loss = float(torch.nn.functional.cross_entropy(scores.double(), labels, reduction="sum"))
    for tally in tallies:
        assert torch.equal(tally.top, scores.topk(3, dim=1).indices)
        assert tally.loss_sum == pytest.approx(want_loss, rel=1e-6)


def test_a_reference_model_runs_in_its_own_pass_and_agrees_with_itself():
    import copy

    from squeezestudio.core.measure.evaluation import reference_predictions

    model, data = _net(), _data(70, 72)
    seen: list[tuple[float, str]] = []
    result = evaluate(model, data, reference=copy.deepcopy(model), use_runtime=True,
                      progress=lambda f, m="": seen.append((f, m)))
    assert result.agreement == 1.0
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(m.startswith("reference model:") for _, m in seen)
    cached = reference_predictions(model, data, use_runtime=True)
    assert evaluate(model, data, reference=cached, use_runtime=True).agreement == 1.0
    other = _net()  # other random weights
    assert (evaluate(model, data, reference=other, use_runtime=True).agreement
            == evaluate(model, data, reference=reference_predictions(other, data, use_runtime=True),
                        use_runtime=True).agreement)


class _Clock:
    """A perf_counter that advances ``step`` seconds per call: a machine as slow or as fast as wanted."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_runtime_choice_and_the_numbers_do_not_depend_on_the_clock(monkeypatch):
    """The same model and data choose onnxruntime or torch alike on a fast and a slow machine.

    They round differently, so a choice made from timings gave different
    numbers on different machines (the old rule exported whenever the probe
    batch projected a second of torch work).
    """
    from squeezestudio.core.measure import evaluation

    model, data = _net(), _data(70, 72)
    tried: list[int] = []
    real = evaluation.runtime_forward_for

    def spy(*args, **kwargs):
        tried.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "runtime_forward_for", spy)
    results = []
    for step in (10.0, 1e-7):  # torch looks hopelessly slow, then instant
        monkeypatch.setattr(evaluation.time, "perf_counter", _Clock(step))
        tried.clear()
        r = evaluate(model, data)
        results.append((len(tried), r.top1, r.loss, r.batch_size))
    assert results[0] == results[1]


def test_eager_torch_on_the_cpu_runs_large_images_at_one_batch_size():
    from squeezestudio.core.measure.evaluation import _BatchPlan

    plan = _BatchPlan(None, 3 * 224 * 224, timed=False)
    for per_image in (1.0, 0.5, 0.2, 0.1):  # ever faster: a timed plan would move on to larger sizes
        size = plan.next_size()
        plan.record(size, size * per_image, size)
    assert plan.next_size() == plan.chosen == runtime_batch_size(3 * 224 * 224) == 8


def test_work_is_counted_in_macs_of_convolutions_and_linear_layers():
    from squeezestudio.core.measure.runtime_choice import counting_macs

    model = _net()
    with counting_macs(model) as macs, torch.no_grad():
        model(torch.randn(2, 3, 10, 10))
    assert macs.per_image == 10 * 10 * 6 * 3 * 9 + 6 * 4  # conv (padded: 10x10 outputs) + linear
    assert not any(m._forward_hooks for m in model.modules())  # the hooks are gone
