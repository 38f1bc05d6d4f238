"""lowrank: full rank reproduces the layer, low rank shrinks it, energy picks the rank, .sqz replays it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from plugin_helpers import TinyCNN, assert_same_outputs, make_state, sqz_round_trip
from squeezestudio.core.compression.codec import encode_sqz
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio_lowrank import LowRankConfig, choose_rank, factorize
from squeezestudio.core.compression.registry import default_registry


@pytest.mark.parametrize("kind", ["spatial", "channel"])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_full_rank_conv_equals_original(kind: str, stride: int, padding: int, dilation: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, (3, 3), stride=stride, padding=padding, dilation=dilation)
    new, kept = factorize(conv, kind, 10_000)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(new(x), conv(x), atol=1e-5)
    assert kept == pytest.approx(1.0)
    assert all(isinstance(m, nn.Conv2d) for m in new)


def test_full_rank_linear_equals_original_and_low_rank_is_best_approximation() -> None:
    torch.manual_seed(1)
    lin = nn.Linear(20, 12)
    full, _ = factorize(lin, "linear", 12)
    x = torch.randn(5, 20)
    with torch.no_grad():
        assert torch.allclose(full(x), lin(x), atol=1e-5)
        low, kept = factorize(lin, "linear", 3)
        product = low[1].weight @ low[0].weight
        s = torch.linalg.svdvals(lin.weight)
    # Eckart-Young: the error of the best rank-3 approximation is the tail of the spectrum
    err = float(torch.linalg.matrix_norm(product - lin.weight.detach()) ** 2)
    assert err == pytest.approx(float((s[3:] ** 2).sum()), rel=1e-4)
    assert kept == pytest.approx(float((s[:3] ** 2).sum() / (s ** 2).sum()), rel=1e-5)


def test_energy_threshold_chooses_the_smallest_sufficient_rank() -> None:
    s = torch.tensor([3.0, 2.0, 1.0, 0.5])  # energies 9, 4, 1, 0.25 of 14.25
    assert choose_rank(s, LowRankConfig(energy=9 / 14.25)) == 1
    assert choose_rank(s, LowRankConfig(energy=0.7)) == 2
    assert choose_rank(s, LowRankConfig(energy=1.0)) == 4
    assert choose_rank(s, LowRankConfig(rank=3)) == 3
    assert choose_rank(s, LowRankConfig(rank=99)) == 4


def test_method_shrinks_the_model_and_round_trips(registry, tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = make_state(TinyCNN())
    original = state.module
    size_before = len(encode_sqz(CompressedModel(handle=state.handle), registry=default_registry()))
    reference = make_state(TinyCNN()).module
    reference.load_state_dict(original.state_dict())
    method = registry.get("lowrank")
    method.apply(state, {"conv2": LowRankConfig(rank=3, min_params=0), "fc1": {"rank": 4, "min_params": 0},
                         "conv1": {"rank": 50, "min_params": 0}})
    assert isinstance(state.layer("conv2"), nn.Sequential) and state.layer("conv2")[0].out_channels == 3
    assert state.layer("fc1")[0].out_features == 4
    assert isinstance(state.layer("conv1"), nn.Conv2d)  # rank 50 would not be smaller: skipped, logged
    assert any("left conv1 alone" in line for line in state.log)
    mods = state.handle.architecture.modifications
    assert [m["layer"] for m in mods] == ["conv2", "fc1"]
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        y, y0 = state.module(x), reference(x)
    assert y.shape == y0.shape and torch.isfinite(y).all() and not torch.allclose(y, y0)
    size_after = len(encode_sqz(CompressedModel(handle=state.handle), registry=default_registry()))
    assert size_after < size_before
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, x)


def test_high_energy_keeps_outputs_close(registry) -> None:
    torch.manual_seed(3)
    state = make_state(TinyCNN())
    reference = make_state(TinyCNN()).module
    reference.load_state_dict(state.module.state_dict())
    registry.get("lowrank").apply(state, {"fc1": {"energy": 0.999, "min_params": 0, "only_if_smaller": False}})
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(state.module(x), reference(x), atol=1e-2)


def test_composes_with_pruning(registry) -> None:
    torch.manual_seed(4)
    state = make_state(TinyCNN())
    registry.get("lowrank").apply(state, {"fc1": {"rank": 4, "min_params": 0}})
    assert "fc1.0" in state.layers() and "fc1.1" in state.layers()
    prune = registry.get("prune")
    prune.apply(state, {"fc1.0": prune.config_class(sparsity=0.5)})
    assert float((state.layer("fc1.0").weight == 0).float().mean()) == pytest.approx(0.5, abs=0.02)
