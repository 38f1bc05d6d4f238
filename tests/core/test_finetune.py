"""Fine-tuning keeps the compression: masks, shared values, grids, file size, bitwise .sqz round trip."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.clustering import ClusterConfig, KMeansClustering
from squeezestudio.core.compression.codec import decode_sqz, encode_sqz, size_report
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.pruning import MagnitudePruning, PruneConfig
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.training.finetune import finetune_compressed, finetune_plan, refresh_encoding
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken
from squeezestudio.core.training.loop import TrainConfig, train_classifier
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry

SPEC = PreprocessSpec(channels=1, height=8, width=8, mean=(0.5,), std=(0.5,))
LAYERS = ("fc1", "fc2", "fc3")
FAST = TrainConfig(epochs=1, lr=1e-3, batch_size=64, seed=3, fraction=0.5)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a busy 2-core machine two threads spin against each other (50x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@lru_cache(maxsize=2)
def digits(split: str) -> ImageDataset:
    return load_digits_split(split, SPEC)


@lru_cache(maxsize=1)
def _trained_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    handle = zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8)
    train_classifier(handle.module, digits("train"), None, TrainConfig(epochs=1, lr=2e-3, seed=0))
    return {k: v.clone() for k, v in handle.module.state_dict().items()}


def trained_handle() -> ModelHandle:
    """LeNet-300-100 on 8x8 digits, briefly trained (about 1 s, cached)."""
    handle = zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8)
    handle.module.load_state_dict(_trained_state())
    return handle


def untrained_handle() -> ModelHandle:
    torch.manual_seed(1)
    return zoo_handle("lenet300_100", num_classes=10, in_channels=1, input_size=8)


def prune_cluster(handle: ModelHandle, bits: int = 3) -> CompressedModel:
    recipe = Recipe(methods={"prune": {"sparsity": 0.8, "scope": "global"}, "cluster": {"bits": bits}})
    return compress(handle, recipe, registry=default_registry())


def weights(cm: CompressedModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in cm.handle.module.state_dict().items()}


def assert_model_equals_file(cm: CompressedModel) -> None:
    back = decode_sqz(encode_sqz(cm, registry=default_registry()), registry=default_registry())
    ours, theirs = cm.handle.module.state_dict(), back.handle.module.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


def test_prune_cluster_finetune_keeps_masks_symbols_and_at_most_k_values() -> None:
    cm = prune_cluster(trained_handle(), bits=3)
    before = weights(cm)
    out, result = finetune_compressed(cm, digits("train"), digits("val"), FAST, registry=default_registry())
    assert len(result.history) == 1 and not result.cancelled
    for layer in LAYERS:
        key = f"{layer}.weight"
        old, new = cm.encodings[key], out.encodings[key]
        assert new.kind == "codebook" and new.bits == old.bits
        assert np.array_equal(new.mask, old.mask)
        assert np.array_equal(new.symbols, old.symbols)
        w = out.handle.module.get_parameter(key).detach().numpy().reshape(-1)
        assert np.all(w[~new.mask] == 0.0)
        assert len(np.unique(w[new.mask])) <= 2 ** 3
        assert np.array_equal(new.decode().reshape(-1), w)
    # training moved the shared values, and the input model was left alone
    assert any(not np.array_equal(cm.encodings[f"{n}.weight"].codebook, out.encodings[f"{n}.weight"].codebook)
               for n in LAYERS)
    for key, value in weights(cm).items():
        assert torch.equal(value, before[key]), key
    assert_model_equals_file(out)


def test_file_size_is_kept_up_to_entropy_coding() -> None:
    cm = prune_cluster(trained_handle(), bits=4)
    out, _ = finetune_compressed(cm, digits("train"), None, FAST, registry=default_registry())
    a, b = size_report(cm, registry=default_registry()), size_report(out, registry=default_registry())
    for row_a, row_b in zip(a.layers, b.layers):
        assert (row_a.name, row_a.quantized, row_a.pruned, row_a.index_bytes) == \
            (row_b.name, row_b.quantized, row_b.pruned, row_b.index_bytes)
    assert sum(r.quantized for r in a.layers) == sum(r.quantized for r in b.layers)
    # the coded layers may differ a little (Huffman tables of new values), the header by the fine-tuning record
    assert abs(sum(r.coded for r in b.layers) - sum(r.coded for r in a.layers)) <= 0.03 * a.total_bytes
    assert abs(b.total_bytes - a.total_bytes) <= 0.03 * a.total_bytes
    assert len(encode_sqz(out, registry=default_registry())) == b.total_bytes


@pytest.mark.parametrize("options", [{"bits": 4, "mode": "symmetric"}, {"bits": 3, "mode": "asymmetric",
                                                                        "granularity": "tensor"}])
def test_uniform_quantized_weights_stay_on_their_grid(options: dict) -> None:
    recipe = Recipe(methods={"prune": {"sparsity": 0.5}, "quantize": {"scheme": "uniform", **options}})
    cm = compress(trained_handle(), recipe, registry=default_registry())
    out, _ = finetune_compressed(cm, digits("train"), None, FAST, registry=default_registry())
    for layer in LAYERS:
        enc = out.encodings[f"{layer}.weight"]
        assert enc.kind == "affine" and enc.bits == options["bits"]
        assert np.array_equal(enc.mask, cm.encodings[f"{layer}.weight"].mask)
        assert int(enc.symbols.max()) < 2 ** enc.bits
        w = out.handle.module.get_parameter(f"{layer}.weight").detach().numpy()
        groups = np.zeros(enc.kept, dtype=np.int64) if enc.scale.size == 1 else enc.channel_of_kept()
        steps = w.reshape(-1)[enc.mask] / enc.scale[groups]
        assert np.allclose(steps, np.rint(steps), atol=1e-3)  # every weight is an integer number of steps
    assert_model_equals_file(out)


def test_ternary_layers_keep_three_values_per_channel() -> None:
    cm = compress(trained_handle(), Recipe(methods={"quantize": {"scheme": "ternary"}}), registry=default_registry())
    out, _ = finetune_compressed(cm, digits("train"), None, FAST, registry=default_registry())
    for layer in LAYERS:
        w = out.handle.module.get_parameter(f"{layer}.weight").detach().numpy()
        assert max(len(np.unique(row)) for row in w) <= 3
        assert out.encodings[f"{layer}.weight"].codebook.shape == cm.encodings[f"{layer}.weight"].codebook.shape
    assert_model_equals_file(out)


def test_same_seed_gives_the_same_model_and_another_seed_does_not() -> None:
    cm = prune_cluster(trained_handle())
    a, _ = finetune_compressed(cm, digits("train"), None, FAST, registry=default_registry())
    b, _ = finetune_compressed(cm, digits("train"), None, FAST, registry=default_registry())
    c, _ = finetune_compressed(cm, digits("train"), None, replace(FAST, seed=FAST.seed + 1), registry=default_registry())
    assert encode_sqz(a, registry=default_registry()) == encode_sqz(b, registry=default_registry())
    assert encode_sqz(a, registry=default_registry()) != encode_sqz(c, registry=default_registry())


def test_progress_per_batch_and_validation_per_epoch() -> None:
    seen: list[float] = []
    config = replace(FAST, epochs=2)
    _, result = finetune_compressed(prune_cluster(trained_handle()), digits("train"), digits("val"), config,
                                    progress=lambda f, m="": seen.append(f), registry=default_registry())
    batches = int(np.ceil(np.ceil(len(digits("train")) * config.fraction) / config.batch_size))
    assert len(seen) >= 2 * batches and seen == sorted(seen) and seen[-1] == 1.0
    assert [r.epoch for r in result.history] == [1, 2]
    assert all(r.val_top1 is not None and 0.0 <= r.val_top1 <= 1.0 for r in result.history)
    assert result.best_val_top1 == max(r.val_top1 for r in result.history)


def _cancel_after(steps: int) -> tuple[CancelToken, object]:
    token = CancelToken()
    calls = {"n": 0}

    def progress(fraction: float, message: str = "") -> None:
        if message.startswith("epoch"):
            calls["n"] += 1
            if calls["n"] >= steps:
                token.cancel()

    return token, progress


def test_cancel_keeps_a_consistent_model_and_resume_continues_from_it() -> None:
    cm0 = prune_cluster(untrained_handle(), bits=4)
    config = replace(FAST, epochs=1, fraction=1.0, batch_size=32, lr=3e-3)
    token, progress = _cancel_after(12)
    cm1, r1 = finetune_compressed(cm0, digits("train"), None, config, progress=progress, cancel=token, registry=default_registry())
    assert r1.cancelled and r1.history == []
    assert any(not torch.equal(a, b) for a, b in zip(weights(cm0).values(), weights(cm1).values()))
    for layer in LAYERS:
        assert np.array_equal(cm1.encodings[f"{layer}.weight"].mask, cm0.encodings[f"{layer}.weight"].mask)
        assert np.array_equal(cm1.encodings[f"{layer}.weight"].symbols, cm0.encodings[f"{layer}.weight"].symbols)
    assert_model_equals_file(cm1)
    # resuming starts from the weights the cancelled run returned: its first epoch starts lower
    resumed, r2 = finetune_compressed(cm1, digits("train"), None, config, registry=default_registry())
    fresh, r3 = finetune_compressed(cm0, digits("train"), None, config, registry=default_registry())
    assert r2.history[0].train_loss < r3.history[0].train_loss
    assert [rec["cancelled"] for rec in resumed.provenance["finetune"]] == [True, False]
    assert_model_equals_file(resumed)


def test_cancel_keeps_the_best_epoch_seen() -> None:
    cm = prune_cluster(untrained_handle(), bits=4)
    config = replace(FAST, epochs=3, fraction=1.0)
    per_epoch = int(np.ceil(len(digits("train")) / config.batch_size))
    token, progress = _cancel_after(per_epoch + 3)  # inside epoch 2
    out, result = finetune_compressed(cm, digits("train"), digits("val"), config, progress=progress, cancel=token, registry=default_registry())
    assert result.cancelled and [r.epoch for r in result.history] == [1] and result.best_epoch == 1
    from squeezestudio.core.measure.evaluation import evaluate

    assert evaluate(out.handle.module, digits("val")).top1 == pytest.approx(result.best_val_top1)
    assert_model_equals_file(out)


def test_state_without_recipe_is_understood_from_its_encodings() -> None:
    state = CompressionState.from_handle(trained_handle())
    MagnitudePruning().apply(state, {n: PruneConfig(sparsity=0.7) for n in LAYERS})
    KMeansClustering().apply(state, {"fc1": ClusterConfig(bits=2)})
    steps, frozen = finetune_plan(state, registry=default_registry())
    assert {m.name: sorted(c) for m, c in steps} == {"prune": list(LAYERS), "cluster": ["fc1"]}
    assert frozen == []
    out, _ = finetune_compressed(state, digits("train"), None, FAST, registry=default_registry())
    fc1 = out.handle.module.get_parameter("fc1.weight").detach().numpy()
    assert len(np.unique(fc1)) <= 4 + 1  # 4 shared values plus the pruned zeros
    for layer in ("fc2", "fc3"):
        enc = out.encodings[f"{layer}.weight"]
        assert enc.kind == "float32" and np.array_equal(enc.mask, state.mask(layer))
        w = out.handle.module.get_parameter(f"{layer}.weight").detach().numpy().reshape(-1)
        assert np.all(w[~enc.mask] == 0) and not np.array_equal(enc.values, state.encodings[f"{layer}.weight"].values)
    assert_model_equals_file(out)


def test_refresh_keeps_symbols_and_averages_each_cluster() -> None:
    enc = WeightEncoding(shape=(2, 3), kind="codebook", mask=np.array([1, 1, 0, 1, 1, 1], dtype=bool),
                         symbols=np.array([0, 1, 0, 1, 1], dtype=np.uint8), bits=1,
                         codebook=np.array([-1.0, 1.0], dtype=np.float32))
    weight = np.array([[-2.0, 1.5, 0.3], [0.0, 0.5, 1.0]], dtype=np.float32)
    new = refresh_encoding(enc, weight)
    assert np.array_equal(new.symbols, enc.symbols) and np.array_equal(new.mask, enc.mask)
    assert np.allclose(new.codebook, [-1.0, 1.0])  # means of {-2, 0} and {1.5, 0.5, 1}
    weight2 = weight.copy()
    weight2[0, 0] = -4.0
    assert np.allclose(refresh_encoding(enc, weight2).codebook, [-2.0, 1.0])
    assert refresh_encoding(new, new.decode()) is new  # already consistent: unchanged


def test_refresh_requantizes_on_the_same_grid() -> None:
    enc = WeightEncoding(shape=(4,), kind="affine", symbols=np.array([8, 9, 7, 8], dtype=np.uint8), bits=4,
                         scale=np.array([0.5], dtype=np.float32), zero_point=np.array([8], dtype=np.int32))
    new = refresh_encoding(enc, np.array([0.1, 0.9, -3.0, 100.0], dtype=np.float32))
    assert new.symbols.tolist() == [8, 10, 2, 15]
    assert np.array_equal(new.scale, enc.scale) and new.bits == 4


def test_distillation_needs_a_teacher() -> None:
    with pytest.raises(RecipeError, match="teacher"):
        finetune_compressed(prune_cluster(trained_handle()), digits("train"), None,
                            replace(FAST, distill_temperature=4.0), registry=default_registry())


def test_distillation_with_alpha_one_learns_the_teacher_not_the_labels() -> None:
    torch.manual_seed(5)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        teacher[1].weight.mul_(8.0)
    train = digits("train")
    wrong = ImageDataset(images=train.images, labels=(train.labels + 1) % 10, class_names=train.class_names)
    cm = compress(untrained_handle(), Recipe(methods={"prune": {"sparsity": 0.5}}), registry=default_registry())

    def agreement(model: nn.Module) -> float:
        with torch.no_grad():
            return float((model(train.images).argmax(1) == teacher(train.images).argmax(1)).float().mean())

    config = replace(FAST, epochs=3, fraction=1.0, lr=3e-3, distill_temperature=2.0, distill_alpha=1.0)
    student, _ = finetune_compressed(cm, wrong, None, config, teacher=teacher, registry=default_registry())
    labels_only, _ = finetune_compressed(cm, wrong, None, replace(config, distill_alpha=0.0), teacher=teacher, registry=default_registry())
    assert agreement(cm.handle.module) < 0.2
    assert agreement(student.handle.module) > 0.7  # it learned the teacher ...
    assert agreement(labels_only.handle.module) < 0.2  # ... which the (shifted) labels alone do not teach
    for layer in LAYERS:
        w = student.handle.module.get_parameter(f"{layer}.weight").detach().numpy().reshape(-1)
        assert np.all(w[~cm.encodings[f"{layer}.weight"].mask] == 0)
    assert_model_equals_file(student)
