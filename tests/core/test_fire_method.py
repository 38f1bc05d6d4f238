"""The "fire" compression method: substitution, records and rebuild, training, pruning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from squeezestudio.core.compression.substitution.fire_module import FireConv
from squeezestudio.core.compression.substitution.module_surgery import replace_module
from squeezestudio.core.compression.codec import decode_sqz, encode_sqz
from squeezestudio.core.compression.config import make_config
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.compression.fire import FireConfig, FireMethod, select_largest_convs
from squeezestudio.core.compression.method import ORDER_ARCHITECTURE
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.pruning import MagnitudePruning, PruneConfig
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.errors import ArchitectureMismatchError, CodecError, RecipeError
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.compression.registry import default_registry


class Net(nn.Module):
    """Convs as Sequential children, a named attribute and a ModuleDict entry."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Conv2d(8, 12, 5, stride=2, padding=2, bias=False)
        self.heads = nn.ModuleDict({"main": nn.Conv2d(12, 12, 3, padding=1),
                                    "point": nn.Conv2d(12, 12, 1),
                                    "depthwise": nn.Conv2d(12, 12, 3, padding=1, groups=12)})
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.down(self.features(x)))
        x = self.heads["depthwise"](self.heads["point"](self.heads["main"](x)))
        return self.fc(x.mean(dim=(2, 3)))


def _state(seed: int = 0) -> CompressionState:
    torch.manual_seed(seed)
    handle = ModelHandle(module=Net().eval(), name="net", input_spec=InputSpec(3, 12, 12),
                         class_names=list("abcde"), source_format="zoo",
                         architecture=ArchitectureSpec(kind="zoo", name="net"))
    return CompressionState.from_handle(handle)


X = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(5))
ALL = ("features.2", "down", "heads.main")


def test_method_contract():
    method = FireMethod()
    assert method.name == "fire" and method.order == ORDER_ARCHITECTURE
    assert method.layer_types == (nn.Conv2d,)
    assert method.applies_to(nn.Conv2d(3, 3, 3)) and not method.applies_to(nn.Conv2d(3, 3, 1))
    assert not method.applies_to(nn.Conv2d(4, 4, 3, groups=2)) and not method.applies_to(nn.Linear(2, 2))
    with pytest.raises(RecipeError, match="squeeze_ratio"):
        make_config(FireConfig, {"squeeze_ratio": 0.0})
    with pytest.raises(RecipeError, match="init"):
        make_config(FireConfig, {"init": "magic"})
    assert make_config(FireConfig, {"bypass": "yes", "pct3x3": "1"}) == FireConfig(bypass=True, pct3x3=1.0)


def test_apply_substitutes_in_sequential_attribute_and_moduledict():
    state = _state()
    expected = state.module(X).shape
    FireMethod().apply(state, {name: FireConfig() for name in ALL})
    for name in ALL:
        assert isinstance(state.layer(name), FireConv)
    assert state.module(X).shape == expected
    records = state.architecture.modifications
    assert [r["layer"] for r in records] == list(ALL)
    down = records[1]
    assert down["method"] == "fire" and down["conv"]["stride"] == [2, 2] and down["conv"]["bias"] is False
    assert (down["squeeze"], down["e1"], down["e3"]) == (3, 6, 6)
    assert {"squeeze_ratio", "pct3x3", "bypass", "squeeze_relu", "init", "strategy"} <= set(down)


def test_skips_pointwise_and_grouped_convs_with_a_log_line():
    state = _state()
    FireMethod().apply(state, {"heads.point": FireConfig(), "heads.depthwise": FireConfig()})
    assert type(state.layer("heads.point")) is nn.Conv2d
    assert type(state.layer("heads.depthwise")) is nn.Conv2d
    assert state.architecture.modifications == ()
    assert any("heads.point" in line and "1x1" in line for line in state.log)
    assert any("heads.depthwise" in line and "grouped" in line for line in state.log)


def test_bypass_is_kept_where_valid_and_dropped_with_a_warning_elsewhere():
    state = _state()
    FireMethod().apply(state, {"features.2": FireConfig(bypass=True), "down": FireConfig(bypass=True)})
    assert state.layer("features.2").bypass is True
    assert state.layer("down").bypass is False
    assert [r["bypass"] for r in state.architecture.modifications] == [True, False]
    assert any("warning" in line and "down" in line for line in state.log)


def test_svd_reconstruct_without_calibration_falls_back_to_svd():
    state = _state()
    FireMethod().apply(state, {"features.2": FireConfig(init="svd+reconstruct")})
    assert any("no calibration" in line for line in state.log)
    assert isinstance(state.layer("features.2"), FireConv)


def test_svd_start_with_full_linear_bottleneck_keeps_the_model_output():
    state = _state()
    original = state.module(X)
    config = FireConfig(squeeze_ratio=1.0, pct3x3=1.0, squeeze_relu=False)
    FireMethod().apply(state, {name: config for name in ALL})
    assert torch.allclose(state.module(X), original, atol=1e-4)


@pytest.mark.parametrize("strategy", ["fire", "1x1"])
def test_rebuild_reproduces_names_shapes_and_outputs(strategy):
    state = _state()
    configs = {name: FireConfig(strategy=strategy, bypass=True, pct3x3=0.25) for name in ALL}
    FireMethod().apply(state, configs)
    rebuilt = Net().eval()
    for record in state.architecture.modifications:
        rebuilt = FireMethod().rebuild(rebuilt, record)
    want = {k: tuple(v.shape) for k, v in state.module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    assert got == want
    rebuilt.load_state_dict(state.module.state_dict())
    assert torch.allclose(rebuilt(X), state.module(X))


def test_rebuild_rejects_a_mismatched_layer_and_an_incomplete_record():
    state = _state()
    FireMethod().apply(state, {"down": FireConfig()})
    record = dict(state.architecture.modifications[0])
    with pytest.raises(ArchitectureMismatchError):
        FireMethod().rebuild(Net(), dict(record, layer="heads.main"))
    with pytest.raises(CodecError):
        FireMethod().rebuild(Net(), {k: v for k, v in record.items() if k != "conv"})
    with pytest.raises(RecipeError):
        FireMethod().rebuild(Net(), dict(record, layer="nowhere"))


def test_strategy_1x1_uses_the_centre_tap_and_keeps_shapes():
    state = _state()
    weight = state.layer("down").weight.detach().clone()
    expected = state.module(X).shape
    FireMethod().apply(state, {"features.2": FireConfig(strategy="1x1"), "down": FireConfig(strategy="1x1")})
    assert state.layer("features.2").kernel_size == (1, 1)
    assert torch.equal(state.layer("down").weight[:, :, 0, 0], weight[:, :, 2, 2])
    assert state.module(X).shape == expected


def test_select_largest_convs_picks_replaceable_kxk_convs_by_size():
    assert select_largest_convs(Net(), 2) == ["down", "heads.main"]
    assert select_largest_convs(Net(), 10) == ["features.0", "features.2", "down", "heads.main"]
    assert select_largest_convs(Net(), 0) == []


def test_a_substituted_model_trains():
    state = _state()
    FireMethod().apply(state, {name: FireConfig(init="random") for name in ALL})
    model = state.module.train()
    labels = torch.arange(4) % 5
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X), labels)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    fire = state.layer("down")
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fire.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_fire_convs_are_ordinary_layers_that_pruning_can_mask():
    state = _state()
    FireMethod().apply(state, {"down": FireConfig(), "heads.main": FireConfig()})
    names = set(state.layers())
    for part in ("squeeze", "expand1x1", "expand3x3"):
        assert f"down.{part}" in names and f"heads.main.{part}" in names
    targets = ["down.squeeze", "down.expand1x1", "heads.main.expand3x3"]
    MagnitudePruning().apply(state, {name: PruneConfig(sparsity=0.5) for name in targets})
    for name in targets:
        weight = state.layer(name).weight.detach().numpy()
        mask = state.mask(name)
        assert mask is not None and mask.sum() == weight.size - round(0.5 * weight.size)
        assert np.count_nonzero(weight) <= mask.sum()
    out = state.module(X)
    assert out.shape == (4, 5) and torch.isfinite(out).all()


def test_stale_encodings_of_a_replaced_conv_are_dropped():
    state = _state()
    weight = state.layer("down").weight.detach().numpy()
    state.set_encoding("down", WeightEncoding.dense(weight))
    FireMethod().apply(state, {"down": FireConfig()})
    assert "down.weight" not in state.encodings


def test_replace_module_rejects_unknown_names_and_the_root():
    model = Net()
    with pytest.raises(RecipeError):
        replace_module(model, "features.9", nn.Identity())
    with pytest.raises(RecipeError):
        replace_module(model, "", nn.Identity())
    old = replace_module(model, "heads.point", nn.Identity())
    assert isinstance(old, nn.Conv2d) and isinstance(model.heads["point"], nn.Identity)


@pytest.mark.parametrize("strategy", ["fire", "1x1"])
def test_recipe_to_sqz_and_back_replays_the_substitution(strategy):
    """Through the pipeline and the codec: the .sqz rebuilds the Fire layers bit for bit."""
    handle = zoo_handle("lenet5")
    handle.module.eval()
    recipe = recipe_from_dict({"architecture": [{"method": "fire", "layer": "conv2", "strategy": strategy,
                                                 "pct3x3": 0.5}],
                               "methods": {"prune": {"sparsity": 0.5}}})
    compressed = compress(handle, recipe, registry=default_registry())
    assert [m["layer"] for m in compressed.handle.architecture.modifications] == ["conv2"]
    restored = decode_sqz(encode_sqz(compressed, registry=default_registry()), registry=default_registry())
    x = torch.randn(2, 1, 28, 28)
    original_type = type(compressed.handle.module.conv2)
    assert type(restored.handle.module.conv2) is original_type
    assert torch.equal(restored.handle.module.eval()(x), compressed.handle.module.eval()(x))
