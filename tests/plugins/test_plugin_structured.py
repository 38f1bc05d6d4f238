"""structured: ratio 0 is the identity; 0.5 shrinks Fire concats and ResNet blocks (across the residual)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from plugin_helpers import (TinyCNN, TinyResNet, TinySqueezeNet, assert_same_outputs, make_state, randomize_bn,
                            sqz_round_trip)
from squeezestudio_structured import StructuredConfig, filters_to_keep


def _convs(module: nn.Module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, nn.Conv2d)]


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_ratio_zero_is_the_identity(registry) -> None:
    torch.manual_seed(0)
    state = make_state(TinySqueezeNet())
    before = {k: v.clone() for k, v in state.module.state_dict().items()}
    registry.get("structured").apply(state, {n: StructuredConfig(ratio=0.0) for n in _convs(state.module)})
    after = state.module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert state.handle.architecture.modifications == ()


def test_filters_to_keep_takes_the_largest_l1_norms() -> None:
    conv = nn.Conv2d(1, 4, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.1, -3.0, 0.5, 2.0]).reshape(4, 1, 1, 1))
    assert filters_to_keep(conv, StructuredConfig(ratio=0.5)) == [1, 3]
    assert filters_to_keep(conv, StructuredConfig(ratio=0.95)) == [1]
    assert filters_to_keep(conv, StructuredConfig(ratio=0.95, min_channels=3)) == [1, 2, 3]


def test_squeezenet_like_fire_concats_shrink_consistently(registry, tmp_path: Path) -> None:
    torch.manual_seed(1)
    state = make_state(TinySqueezeNet(), size=8)
    params = _params(state.module)
    registry.get("structured").apply(state, {n: {"ratio": 0.5} for n in _convs(state.module)})
    f = state.module.features
    assert f[0].out_channels == 8 and f[3].squeeze.in_channels == 8
    assert f[3].expand1x1.out_channels == 8 and f[3].expand3x3.out_channels == 8
    assert f[4].squeeze.in_channels == 16  # both halves of the concatenation lost half
    assert state.module.classifier[0].in_channels == 16 and state.module.classifier[0].out_channels == 4
    assert any("left classifier.0 alone" in line and "output" in line for line in state.log)
    assert _params(state.module) < 0.45 * params
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        y = state.module(x)
    assert y.shape == (3, 4) and torch.isfinite(y).all()
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, x)


def test_concat_offsets_keep_the_right_input_channels(registry) -> None:
    """Pruning only expand3x3 must cut the next squeeze's inputs after the expand1x1 part."""
    torch.manual_seed(2)
    state = make_state(TinySqueezeNet())
    original = state.module.features[4].squeeze.weight.detach().clone()
    keep = filters_to_keep(state.module.features[3].expand3x3, StructuredConfig(ratio=0.5))
    registry.get("structured").apply(state, {"features.3.expand3x3": {"ratio": 0.5}})
    new = state.module.features[4].squeeze.weight.detach()
    expected = torch.cat([original[:, :16], original[:, [16 + k for k in keep]]], dim=1)
    assert torch.equal(new, expected)


def test_pruning_dead_filters_keeps_outputs_exact(registry) -> None:
    """Filters that are exactly zero (and feed a ReLU) contribute nothing: removing them changes nothing."""
    torch.manual_seed(3)
    state = make_state(TinyCNN())
    with torch.no_grad():
        state.module.conv1.weight[::2] = 0.0
        state.module.conv1.bias[::2] = 0.0
    reference = make_state(TinyCNN()).module
    reference.load_state_dict(state.module.state_dict())
    registry.get("structured").apply(state, {"conv1": {"ratio": 0.5}})
    assert state.module.conv1.out_channels == 4 and state.module.conv2.in_channels == 4
    assert_same_outputs(state.module, reference, torch.randn(2, 3, 8, 8), atol=1e-5)


def test_flatten_into_linear_drops_each_channels_features(registry, tmp_path: Path) -> None:
    torch.manual_seed(4)
    state = make_state(TinyCNN())
    registry.get("structured").apply(state, {"conv2": {"ratio": 0.25}})
    assert state.module.conv2.out_channels == 12 and state.module.fc1.in_features == 12 * 4
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, torch.randn(2, 3, 8, 8))


def test_resnet_block_prunes_inside_and_across_the_residual(registry, tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = TinyResNet()
    randomize_bn(model)
    state = make_state(model)
    params = _params(state.module)
    registry.get("structured").apply(state, {n: {"ratio": 0.5} for n in _convs(state.module)})
    m = state.module
    assert m.block.conv1.out_channels == 8 and m.block.bn1.num_features == 8 and m.block.conv2.in_channels == 8
    # the stem and the block's second conv are added together: they lose the same 8 channels
    assert m.conv1.out_channels == m.block.conv2.out_channels == m.bn1.num_features == 8
    assert m.block.conv1.in_channels == 8 and m.fc.in_features == 8
    assert any("coupled" in line and "conv1" in line and "block.conv2" in line for line in state.log)
    assert _params(state.module) < 0.4 * params
    x = torch.randn(2, 3, 8, 8)
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, x)


def test_dead_channels_across_a_residual_are_removed_exactly(registry) -> None:
    """Channels that are zero in the stem and in the block they are added to carry nothing."""
    torch.manual_seed(6)
    model = TinyResNet()
    randomize_bn(model)
    dead = list(range(0, 16, 2))
    with torch.no_grad():
        for conv, bn in ((model.conv1, model.bn1), (model.block.conv2, model.block.bn2)):
            conv.weight[dead] = 0.0
            bn.weight[dead] = 0.0
            bn.bias[dead] = 0.0
    reference = TinyResNet()
    reference.load_state_dict(model.state_dict())
    state = make_state(model)
    registry.get("structured").apply(state, {"conv1": {"ratio": 0.5}})  # block.conv2 goes with it
    assert state.module.block.conv2.out_channels == 8 and state.module.block.conv1.out_channels == 16
    assert_same_outputs(state.module, reference.eval(), torch.randn(3, 3, 8, 8), atol=1e-5)


@pytest.mark.parametrize("bad", [{"ratio": 1.5}, {"ratio": "lots"}])
def test_bad_ratio_is_a_recipe_error(registry, bad) -> None:
    from squeezestudio.core.errors import RecipeError

    state = make_state(TinyCNN())
    with pytest.raises(RecipeError):
        registry.get("structured").apply(state, {"conv1": bad})
