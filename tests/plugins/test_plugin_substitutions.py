"""depthwise and shuffle: exact where the maths says so, smaller, fitted with calibration data, .sqz replays."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from plugin_helpers import TinyCNN, assert_same_outputs, make_state, sqz_round_trip
from squeezestudio.core.compression.pipeline import apply_recipe_to_state
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio_depthwise import DepthwiseConfig, build_separable
from squeezestudio_depthwise import geometry as dw_geometry
from squeezestudio_depthwise import init_from_conv as dw_init
from squeezestudio_shuffle import ShuffleConfig, build_grouped, input_order
from squeezestudio_shuffle import init_from_conv as sh_init


def test_depthwise_start_is_exact_at_full_multiplier() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    pair = build_separable(dw_geometry(conv), 5)  # m >= min(out, k^2) = 5
    kept = dw_init(pair, conv, 5)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(pair(x), conv(x), atol=1e-5)
    assert abs(kept - 1.0) < 1e-9


def test_depthwise_start_is_exact_for_rank_one_slices() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    with torch.no_grad():  # W[o, c] = a[o, c] * K_c: each input channel's slice has rank 1
        conv.weight.copy_(torch.randn(6, 4, 1, 1) * torch.randn(1, 4, 3, 3))
    pair = build_separable(dw_geometry(conv), 1)
    dw_init(pair, conv, 1)
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        assert torch.allclose(pair(x), conv(x), atol=1e-5)


def test_depthwise_method_shrinks_fits_and_round_trips(registry, tmp_path: Path) -> None:
    torch.manual_seed(2)
    state = make_state(TinyCNN())
    reference = make_state(TinyCNN()).module
    reference.load_state_dict(state.module.state_dict())
    calib = torch.randn(32, 3, 8, 8)
    state.calibration = calib
    registry.get("depthwise").apply(state, {"conv2": DepthwiseConfig(reconstruct_steps=60), "fc1": {}})
    pair = state.layer("conv2")
    assert pair[0].groups == 8 and pair[0].weight.numel() + pair[1].weight.numel() < 8 * 16 * 9
    assert isinstance(state.layer("fc1"), nn.Linear)
    line = next(text for text in state.log if text.startswith("depthwise: conv2"))
    before, after = (float(v) for v in line.split("reconstruction error ")[1].rstrip(")").split(" -> "))
    assert after < before
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, calib[:4])


def test_shuffle_order_and_block_start() -> None:
    assert input_order(6, 2, True).tolist() == [0, 3, 1, 4, 2, 5]
    assert input_order(6, 2, False).tolist() == list(range(6))
    torch.manual_seed(3)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    with torch.no_grad():  # keep only weights each group still sees after the shuffle: start is exact
        order = input_order(4, 2, True)
        mask = torch.zeros(4, 4, 1, 1)
        mask[:2, order[:2]] = 1
        mask[2:, order[2:]] = 1
        conv.weight.mul_(mask)
    new = build_grouped(dw_geometry(conv), 2, True)
    kept = sh_init(new, conv, 2, True)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.allclose(new(x), conv(x), atol=1e-5)
    assert abs(kept - 1.0) < 1e-6


def test_shuffle_method_skips_indivisible_layers_and_round_trips(registry, tmp_path: Path) -> None:
    torch.manual_seed(4)
    state = make_state(TinyCNN())
    registry.get("shuffle").apply(state, {"conv1": ShuffleConfig(groups=2), "conv2": {"groups": 4}})
    assert isinstance(state.layer("conv1"), nn.Conv2d)  # 3 input channels: not divisible by 2
    assert any("left conv1 alone" in line for line in state.log)
    new = state.layer("conv2")
    assert isinstance(new[0], nn.ChannelShuffle) and new[1].groups == 4
    assert new[1].weight.numel() == 8 * 16 * 9 // 4
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.isfinite(state.module(x)).all()
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, x)


def test_shuffle_with_calibration_reduces_the_layer_error(registry) -> None:
    torch.manual_seed(5)
    state = make_state(TinyCNN())
    state.calibration = torch.randn(32, 3, 8, 8)
    registry.get("shuffle").apply(state, {"conv2": {"groups": 2, "reconstruct_steps": 60}})
    line = next(text for text in state.log if text.startswith("shuffle: conv2"))
    before, after = (float(v) for v in line.split("reconstruction error ")[1].split(" -> "))
    assert after < before


def test_two_substitutions_mixed_fit_to_the_original_and_round_trip(tmp_path: Path, registry) -> None:
    """lowrank then depthwise on one model: both recorded, the second fitted to the untouched original."""
    torch.manual_seed(7)
    model = TinyCNN()
    original_fc1 = model.fc1.weight.detach().clone()
    state = make_state(model)
    state.calibration = torch.randn(32, 3, 8, 8)
    recipe = Recipe(architecture=[{"method": "lowrank", "layer": "fc1", "rank": 4, "min_params": 0},
                                  {"method": "depthwise", "layer": "conv2", "reconstruct_steps": 40}])
    apply_recipe_to_state(state, recipe, registry=registry)
    assert [m["method"] for m in state.architecture.modifications] == ["lowrank", "depthwise"]
    assert isinstance(state.layer("fc1"), nn.Sequential) and state.layer("conv2")[0].groups == 8
    # The depthwise pair was fitted against the model before ANY substitution (fc1 still one Linear).
    original = state.original_module()
    assert isinstance(original.fc1, nn.Linear) and torch.equal(original.fc1.weight, original_fc1)
    assert isinstance(original.conv2, nn.Conv2d)
    line = next(text for text in state.log if text.startswith("depthwise: conv2"))
    before, after = (float(v) for v in line.split("reconstruction error ")[1].split(" -> "))
    assert after < before
    loaded = sqz_round_trip(state, tmp_path)
    assert [type(loaded.fc1), type(loaded.conv2)] == [nn.Sequential, nn.Sequential]
    assert_same_outputs(state.module, loaded, state.calibration[:4])
