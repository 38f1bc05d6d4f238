"""k-means weight sharing: codebook size, masks kept, exact decode, trained centroids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.clustering import ClusterConfig, KMeansClustering, cluster_weight
from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.pruning import MagnitudePruning, PruneConfig
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import RecipeError
from squeezestudio.core.model.handle import InputSpec, ModelHandle

LAYERS = ("features.0", "classifier.1")


def tiny_state() -> CompressionState:
    torch.manual_seed(0)
    module = nn.Sequential()
    module.add_module("features", nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    module.add_module("classifier", nn.Sequential(nn.Flatten(), nn.Linear(8 * 6 * 6, 10)))
    handle = ModelHandle(module=module, name="tiny", input_spec=InputSpec(3, 8, 8),
                         class_names=[str(i) for i in range(10)], source_format="zoo")
    return CompressionState.from_handle(handle)


def w(state: CompressionState, layer: str) -> np.ndarray:
    return state.layer(layer).weight.detach().numpy().copy()


@pytest.mark.parametrize("bits", [1, 2, 5])
def test_codebook_size_and_exact_decode(bits: int) -> None:
    state = tiny_state()
    method = KMeansClustering()
    method.apply(state, {name: make_config(ClusterConfig, {"bits": bits}) for name in LAYERS})
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        assert enc.kind == "codebook" and enc.codebook.ndim == 1
        assert 1 < enc.codebook.size <= 2 ** bits and enc.bits == bits
        assert int(enc.symbols.max()) < enc.codebook.size and enc.entropy_coded
        assert len(np.unique(w(state, name))) == enc.codebook.size
        assert np.array_equal(enc.decode(), w(state, name))


def test_clusters_option_overrides_bits() -> None:
    cfg = make_config(ClusterConfig, {"bits": 8, "clusters": 3})
    enc = cluster_weight(np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32), None, cfg)
    assert enc.codebook.size == 3 and enc.bits == 2


def test_pruned_weights_stay_pruned_and_are_not_clustered() -> None:
    state = tiny_state()
    MagnitudePruning().apply(state, {n: make_config(PruneConfig, {"sparsity": 0.8}) for n in LAYERS})
    masks = {n: state.mask(n).copy() for n in LAYERS}
    KMeansClustering().apply(state, {n: make_config(ClusterConfig, {"bits": 3}) for n in LAYERS})
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        assert np.array_equal(enc.mask, masks[name])
        weights = w(state, name).reshape(-1)
        assert np.all(weights[~masks[name]] == 0)
        assert enc.symbols.size == masks[name].sum()
        # zero is not a codebook entry pulled in by the pruned positions
        assert not np.any(enc.codebook == 0)


def test_kmeans_beats_uniform_grid_error() -> None:
    x = np.random.default_rng(2).laplace(0, 0.02, size=(64, 32)).astype(np.float32)
    enc = cluster_weight(x, None, make_config(ClusterConfig, {"bits": 3}))
    grid = np.linspace(x.min(), x.max(), 8)
    uniform_err = ((x[..., None] - grid) ** 2).min(axis=-1).sum()
    assert ((enc.decode() - x) ** 2).sum() < uniform_err


def test_bad_bits_are_rejected() -> None:
    with pytest.raises(RecipeError, match="maximum"):
        make_config(ClusterConfig, {"bits": 9})
    with pytest.raises(RecipeError, match="minimum"):
        make_config(ClusterConfig, {"bits": 0})


@pytest.mark.parametrize("update", ["sum", "mean"])
def test_finetune_trains_centroids_and_keeps_sharing_and_mask(update: str) -> None:
    state = tiny_state()
    MagnitudePruning().apply(state, {n: make_config(PruneConfig, {"sparsity": 0.5}) for n in LAYERS})
    configs = {n: make_config(ClusterConfig, {"bits": 2, "centroid_update": update}) for n in LAYERS}
    method = KMeansClustering()
    method.apply(state, configs)
    hooks = method.finetune_hooks(state, configs)
    old = {n: state.encodings[f"{n}.weight"].codebook.copy() for n in LAYERS}
    model = state.module
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    nn.functional.cross_entropy(model(torch.randn(6, 3, 8, 8)), torch.arange(6)).backward()
    hooks.before_step()
    opt.step()
    hooks.after_step()
    for name in LAYERS:  # between steps: weights shared and masked, encodings not yet rewritten
        flat = w(state, name).reshape(-1)
        mask = state.encodings[f"{name}.weight"].mask
        assert np.all(flat[~mask] == 0) and len(np.unique(flat[mask])) <= 4
        assert np.array_equal(state.encodings[f"{name}.weight"].codebook, old[name])
    hooks.finish()
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        counts = np.bincount(enc.symbols, minlength=old[name].size)
        grads = method_grads(hooks, name)
        expected = old[name] - lr * (grads if update == "sum" else grads / np.maximum(counts, 1))
        assert np.allclose(enc.codebook, expected, rtol=1e-5, atol=1e-7)
        assert not np.array_equal(enc.codebook, old[name])
        weights = w(state, name)
        assert np.array_equal(weights, enc.decode())
        assert np.all(weights.reshape(-1)[~enc.mask] == 0)
        assert len(np.unique(weights.reshape(-1)[enc.mask])) <= 4
        assert grads.shape == old[name].shape


def method_grads(hooks, name: str) -> np.ndarray:
    """The per-centroid gradient sums recorded by before_step (bound method's owner)."""
    return hooks.before_step.__self__.centroid_grads[name]


def test_default_centroid_update_is_mean_and_finish_reads_restored_weights() -> None:
    assert ClusterConfig().centroid_update == "mean"  # "sum" with Adam moves centroids far
    state = tiny_state()
    configs = {n: make_config(ClusterConfig, {"bits": 2}) for n in LAYERS}
    method = KMeansClustering()
    method.apply(state, configs)
    hooks = method.finetune_hooks(state, configs)
    saved = {k: v.clone() for k, v in state.module.state_dict().items()}
    opt = torch.optim.Adam(state.module.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(state.module(torch.randn(6, 3, 8, 8)), torch.arange(6)).backward()
        hooks.before_step()
        opt.step()
        hooks.after_step()
    state.module.load_state_dict(saved)  # what the training loop does to keep a best epoch
    hooks.finish()
    for name in LAYERS:
        enc = state.encodings[f"{name}.weight"]
        assert np.array_equal(enc.decode(), w(state, name))
        assert np.array_equal(w(state, name), saved[f"{name}.weight"].numpy())
