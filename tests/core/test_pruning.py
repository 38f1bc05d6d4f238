"""Magnitude pruning: exact sparsity, threshold semantics, global scope, masks held in fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.magnitude import kth_smallest_magnitude, smallest_k_masks
from squeezestudio.core.compression.pruning import MagnitudePruning, PruneConfig
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.model.handle import InputSpec, ModelHandle

LAYERS = ("features.0", "features.3", "classifier.1")


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3), nn.ReLU())
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def tiny_state() -> tuple[ModelHandle, CompressionState]:
    torch.manual_seed(0)
    handle = ModelHandle(module=TinyNet(), name="tiny", input_spec=InputSpec(3, 8, 8),
                         class_names=[str(i) for i in range(10)], source_format="zoo")
    return handle, CompressionState.from_handle(handle)


def cfg(**kw) -> PruneConfig:
    return make_config(PruneConfig, kw)


def weight(state: CompressionState, layer: str) -> np.ndarray:
    return state.layer(layer).weight.detach().numpy().copy()


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.999])
def test_layer_scope_prunes_exactly_the_smallest(sparsity: float) -> None:
    handle, state = tiny_state()
    before = {name: weight(state, name) for name in LAYERS}
    MagnitudePruning().apply(state, {name: cfg(sparsity=sparsity) for name in LAYERS})
    for name in LAYERS:
        w, orig = weight(state, name), before[name]
        pruned = w == 0
        assert pruned.sum() == round(sparsity * w.size)
        if 0 < pruned.sum() < w.size:
            assert np.abs(orig[pruned]).max() <= np.abs(orig[~pruned]).min()
        assert np.array_equal(w[~pruned], orig[~pruned])  # kept weights are untouched
        enc = state.encodings[f"{name}.weight"]
        assert np.array_equal(enc.decode(), w)  # file == model, bit for bit
        if sparsity > 0:
            assert enc.kept == w.size - pruned.sum() and enc.mask.dtype == bool
    assert np.array_equal(handle.module.features[0].weight.detach().numpy(), before["features.0"])


def test_threshold_mode_prunes_below_threshold_only() -> None:
    _, state = tiny_state()
    orig = weight(state, "classifier.1")
    t = float(np.median(np.abs(orig)))
    MagnitudePruning().apply(state, {"classifier.1": cfg(mode="threshold", threshold=t)})
    w = weight(state, "classifier.1")
    assert np.all(w[np.abs(orig) < t] == 0)
    assert np.array_equal(w[np.abs(orig) >= t], orig[np.abs(orig) >= t])


def test_global_scope_shares_one_threshold_and_overrides_stay_per_layer() -> None:
    _, state = tiny_state()
    with torch.no_grad():
        state.layer("features.3").weight.mul_(10.0)  # big weights: global pruning should spare them
    orig = {name: weight(state, name) for name in LAYERS}
    shared = cfg(sparsity=0.8, scope="global")
    MagnitudePruning().apply(state, {"features.0": shared, "features.3": shared,
                                     "classifier.1": cfg(sparsity=0.5, scope="global")})
    group = ("features.0", "features.3")
    pruned_vals = np.concatenate([np.abs(orig[n][weight(state, n) == 0]) for n in group])
    kept_vals = np.concatenate([np.abs(orig[n][weight(state, n) != 0]) for n in group])
    assert pruned_vals.max() <= kept_vals.min()
    total = sum(orig[n].size for n in group)
    assert pruned_vals.size == round(0.8 * total)
    assert (weight(state, "features.3") == 0).mean() < 0.8 < (weight(state, "features.0") == 0).mean()
    fc = weight(state, "classifier.1")
    assert (fc == 0).sum() == round(0.5 * fc.size)  # its own config: pruned on its own


def test_ties_are_broken_to_reach_the_exact_count() -> None:
    arrays = [np.array([0.5, 0.1, 0.1, 0.1], np.float32), np.array([0.1, -0.1, 2.0], np.float32)]
    masks = smallest_k_masks(arrays, 3)
    assert sum(int((~m).sum()) for m in masks) == 3
    assert masks[0].tolist() == [True, False, False, False]  # earlier positions go first
    assert masks[1].tolist() == [True, True, True]


def test_large_selection_matches_partition() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.laplace(size=n).astype(np.float32) for n in (1_500_000, 900_000, 3)]
    allabs = np.abs(np.concatenate(arrays))
    for k in (1, 1234, 1_900_000, allabs.size):
        assert kth_smallest_magnitude(arrays, k) == np.partition(allabs, k - 1)[k - 1]
    masks = smallest_k_masks(arrays, 2_000_000)
    assert sum(int((~m).sum()) for m in masks) == 2_000_000


def test_config_rejects_sparsity_one_and_bad_mode() -> None:
    with pytest.raises(RecipeError, match="below 1"):
        cfg(sparsity=1.0)
    with pytest.raises(RecipeError, match="one of"):
        cfg(mode="random")
    with pytest.raises(RecipeError, match="minimum"):
        cfg(threshold=-0.1)


def test_finetune_hooks_hold_pruned_weights_at_zero() -> None:
    _, state = tiny_state()
    configs = {name: cfg(sparsity=0.7) for name in LAYERS}
    method = MagnitudePruning()
    method.apply(state, configs)
    hooks = method.finetune_hooks(state, configs)
    model = state.module
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    before = weight(state, "classifier.1")
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        hooks.before_step()
        assert torch.all(model.classifier[1].weight.grad[torch.from_numpy(before == 0)] == 0)
        opt.step()
        hooks.after_step()
    after = weight(state, "classifier.1")
    assert np.all(after[before == 0] == 0) and not np.array_equal(after, before)
    hooks.finish()
    for name in LAYERS:
        assert np.array_equal(state.encodings[f"{name}.weight"].decode(), weight(state, name))


def test_decode_equals_a_plain_scatter_and_cached_positions_follow_the_mask() -> None:
    from squeezestudio.core.compression.encoding import WeightEncoding, kept_positions

    rng = np.random.default_rng(3)
    shape = (6, 5, 3, 3)
    mask = rng.random(int(np.prod(shape))) < 0.3
    kept = int(mask.sum())
    symbols = rng.integers(0, 4, kept).astype(np.uint8)
    cases = [
        WeightEncoding(shape=shape, kind="float32", mask=mask, values=rng.normal(size=kept).astype(np.float32)),
        WeightEncoding(shape=shape, kind="codebook", mask=mask, symbols=symbols, bits=2,
                       codebook=rng.normal(size=4).astype(np.float32)),
        WeightEncoding(shape=shape, kind="codebook", mask=mask, symbols=symbols, bits=2,
                       codebook=rng.normal(size=(6, 4)).astype(np.float32)),
        WeightEncoding(shape=shape, kind="affine", mask=mask, symbols=symbols, bits=2,
                       scale=rng.random(6).astype(np.float32) + 0.1, zero_point=np.full(6, 2, np.int32)),
    ]
    channel = np.repeat(np.arange(6), mask.size // 6)[mask]
    for enc in cases:
        if enc.kind == "codebook" and enc.codebook.ndim == 2:
            values = enc.codebook[channel, symbols]
        elif enc.kind == "affine":
            values = (symbols.astype(np.float32) - 2) * enc.scale[channel]
        else:
            values = enc.kept_values()
        naive = np.zeros(mask.size, dtype=np.float32)
        naive[mask] = values
        assert np.array_equal(enc.decode().reshape(-1), naive)
        assert np.array_equal(enc.channel_of_kept(), channel)
    assert kept_positions(mask) is kept_positions(mask)  # found once per mask
    mask[np.flatnonzero(~mask)[0]] = True  # an in-place edit is noticed, not served stale
    assert np.array_equal(kept_positions(mask), np.flatnonzero(mask))


def test_threshold_above_every_magnitude_is_refused_like_sparsity_one() -> None:
    _, state = tiny_state()
    orig = weight(state, "classifier.1")
    largest = float(np.abs(orig).max())
    method = MagnitudePruning()
    # features.0 alone would be fine: the refusal names the layer that would be emptied
    configs = {"features.0": cfg(mode="threshold", threshold=1e-6),
               "classifier.1": cfg(mode="threshold", threshold=largest * 1.0001)}
    with pytest.raises(RecipeError, match=r"layer classifier\.1: .*every weight.*largest weight magnitude") as info:
        method.apply(state, configs)
    assert f"{largest:.6g}" in str(info.value)
    assert not state.encodings or all(e.mask is None for e in state.encodings.values())  # nothing changed
    assert np.array_equal(weight(state, "classifier.1"), orig)
    # a threshold just at the largest magnitude still keeps that weight (|w| < t is pruned, not <=)
    method.apply(state, {"classifier.1": cfg(mode="threshold", threshold=largest)})
    assert (weight(state, "classifier.1") != 0).sum() == 1
