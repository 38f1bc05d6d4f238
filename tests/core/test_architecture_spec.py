"""Describing modules as weight-free graphs and rebuilding them with allow-listed parts only."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch
from torch import nn

from squeezestudio.core.compression.method import ORDER_ARCHITECTURE, CompressionMethod
from squeezestudio.core.compression.registry import UnknownMethodError, build_registry
from squeezestudio.core.compression.replay import build_module
from squeezestudio.core.model.architecture_spec import GraphSpecError, build_base_module, describe_architecture
from squeezestudio.core.model.zoo import build_model
from squeezestudio.core.errors import ModelLoadError
from squeezestudio.core.model.handle import ArchitectureSpec
from squeezestudio.core.compression.registry import default_registry


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.scale = nn.Parameter(torch.full((1, 4, 1, 1), 0.7))
        self.register_buffer("shift", torch.linspace(-1, 1, 4).reshape(1, 4, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))) * self.scale + x + self.shift


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.block = _Block()
        self.head = nn.Linear(8 * 4 * 4, 6)
        self.unused = nn.Linear(2, 2)  # in the state dict but never called

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.stem(x))
        x = torch.cat([x, x.flip(2)], dim=1)
        x = nn.functional.max_pool2d(x, 2)
        return self.head(x.view(x.size(0), -1))


def _roundtrip(spec: ArchitectureSpec) -> ArchitectureSpec:
    return ArchitectureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))


def _trained_net() -> nn.Module:
    torch.manual_seed(0)
    net = _Net()
    with torch.no_grad():
        net.block.bn.running_mean.uniform_(-1, 1)
        net.block.bn.running_var.uniform_(0.5, 2)
    return net.eval()


def test_fx_description_rebuilds_an_identical_model() -> None:
    net = _trained_net()
    spec = _roundtrip(describe_architecture(net))
    assert spec.kind == "graph" and spec.name == "_Net"
    rebuilt = build_module(spec, registry=default_registry())
    assert all(float(p.detach().abs().sum()) == 0 for p in rebuilt.parameters() if p.requires_grad)
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    rebuilt.eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(rebuilt(x), net(x))
    assert isinstance(rebuilt.get_submodule("stem.0"), nn.Conv2d)
    # The description is weight free: no value of any parameter appears in it.
    assert "0.699999988079071" not in json.dumps(spec.graph)


def test_described_graph_module_describes_itself_without_tracing() -> None:
    rebuilt = build_module(describe_architecture(_trained_net()), registry=default_registry())
    again = describe_architecture(rebuilt)
    assert again.graph == rebuilt.graph_spec


def test_swapped_layer_is_used_by_the_rebuilt_graph() -> None:
    net = _trained_net()
    rebuilt = build_module(describe_architecture(net), registry=default_registry())
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    x = torch.randn(2, 1, 8, 8)
    before = rebuilt(x)
    rebuilt.stem.add_module("0", nn.Sequential(copy.deepcopy(net.stem[0]), nn.Identity()))
    assert torch.equal(rebuilt(x), before)  # same computation through the replacement
    rebuilt.stem.add_module("0", nn.Conv2d(1, 4, 3, padding=1))
    assert not torch.equal(rebuilt(x), before)


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: not traceable
            return self.fc(x)
        return -self.fc(x)


def test_untraceable_module_raises_or_returns_the_fallback() -> None:
    with pytest.raises(GraphSpecError, match="_Branchy"):
        describe_architecture(_Branchy())
    fallback = ArchitectureSpec(kind="zoo", name="lenet5")
    assert describe_architecture(_Branchy(), fallback=fallback) is fallback


def test_module_type_outside_the_allow_list_is_named() -> None:
    class WithLstm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(4, 4)

        def forward(self, x: torch.Tensor) -> Any:
            return self.rnn(x)

    with pytest.raises(GraphSpecError, match="LSTM"):
        describe_architecture(WithLstm())


def _graph(**overrides: Any) -> dict[str, Any]:
    base = {"format": "squeezestudio.graph", "version": 1,
            "modules": [{"path": "fc", "type": "Linear", "args": {"in_features": 4, "out_features": 2}}],
            "tensors": [],
            "nodes": [{"name": "x", "op": "placeholder"},
                      {"name": "y", "op": "call_module", "target": "fc", "args": [{"ref": "x"}]},
                      {"name": "out", "op": "output", "args": [{"ref": "y"}]}]}
    base.update(overrides)
    return base


def test_a_well_formed_hand_written_graph_builds() -> None:
    module = build_module(ArchitectureSpec(kind="graph", graph=_graph()), registry=default_registry())
    assert module(torch.randn(3, 4)).shape == (3, 2)


@pytest.mark.parametrize("graph,needle", [
    (_graph(modules=[{"path": "fc", "type": "LSTM", "args": {}}]), "LSTM"),
    (_graph(modules=[{"path": "fc", "type": "subprocess.Popen", "args": {}}]), "Popen"),
    (_graph(nodes=[{"name": "x", "op": "placeholder"},
                   {"name": "y", "op": "call_function", "target": "builtins.eval", "args": ["1"]},
                   {"name": "o", "op": "output", "args": [{"ref": "y"}]}]), "builtins.eval"),
    (_graph(nodes=[{"name": "x", "op": "placeholder"},
                   {"name": "y", "op": "call_function", "target": "os.system", "args": ["true"]},
                   {"name": "o", "op": "output", "args": [{"ref": "y"}]}]), "os.system"),
    (_graph(nodes=[{"name": "x", "op": "placeholder"},
                   {"name": "y", "op": "call_method", "target": "__reduce__", "args": [{"ref": "x"}]},
                   {"name": "o", "op": "output", "args": [{"ref": "y"}]}]), "__reduce__"),
    (_graph(modules=[{"path": "__class__", "type": "Linear", "args": {"in_features": 1, "out_features": 1}}]),
     "__class__"),
    (_graph(modules=[{"path": "training", "type": "ReLU", "args": {}}]), "training"),
    (_graph(nodes=[{"name": "x", "op": "placeholder"},
                   {"name": "o", "op": "output", "args": [{"ref": "later"}]}]), "later"),
    (_graph(nodes=[{"name": "x", "op": "placeholder"}]), "output"),
    (_graph(format="pickle"), "not a SqueezeStudio graph"),
    (_graph(version=99), "version"),
    (_graph(modules=[{"path": "fc", "type": "Linear", "args": {"in_features": {"eval": "1"}}}]), "malformed"),
    (_graph(modules=[{"path": "fc", "type": "Linear", "args": {"in_features": 2**20, "out_features": 2**20}}]),
     "too many weights"),
    (_graph(tensors=[{"path": "big", "shape": [2**20, 2**20], "dtype": "float32", "kind": "buffer"}]),
     "too many weights"),
])
def test_forbidden_or_malformed_graphs_are_refused(graph: dict[str, Any], needle: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        build_module(ArchitectureSpec(kind="graph", graph=graph), registry=default_registry())
    assert needle in str(info.value)


def test_getattr_is_limited_to_harmless_attributes() -> None:
    graph = _graph(nodes=[{"name": "x", "op": "placeholder"},
                          {"name": "y", "op": "call_function", "target": "builtins.getattr",
                           "args": [{"ref": "x"}, "__dict__"]},
                          {"name": "o", "op": "output", "args": [{"ref": "y"}]}])
    module = build_module(ArchitectureSpec(kind="graph", graph=graph), registry=default_registry())
    with pytest.raises(ValueError, match="not allowed"):
        module(torch.randn(1, 4))


def test_unknown_kind_and_missing_graph_are_errors() -> None:
    with pytest.raises(GraphSpecError, match="unknown architecture kind"):
        build_module(ArchitectureSpec(kind="python", name="x"), registry=default_registry())
    with pytest.raises(GraphSpecError, match="no graph"):
        build_module(ArchitectureSpec(kind="graph"), registry=default_registry())


class _AppendReLU(CompressionMethod):
    """A test method whose recorded modification appends a ReLU to the model."""

    name = "append_relu"
    label = "Append ReLU"
    description = "test only"
    order = ORDER_ARCHITECTURE
    config_class = dict

    def apply(self, state: Any, layer_configs: dict[str, Any], progress: Any = None, cancel: Any = None) -> None:
        raise AssertionError("only rebuild is exercised")

    def rebuild(self, module: nn.Module, modification: dict[str, Any]) -> nn.Module:
        return nn.Sequential(module, nn.ReLU())


def test_a_zoo_spec_builds_its_base_and_modifications_replay_through_the_given_registry() -> None:
    spec = ArchitectureSpec(kind="zoo", name="lenet5", kwargs={"num_classes": 3, "in_channels": 1, "input_size": 16})
    base = build_base_module(spec)
    assert type(base).__name__ == type(build_model("lenet5", num_classes=3, in_channels=1, input_size=16)).__name__
    registry = build_registry(plugins=False)
    registry.register(_AppendReLU)
    modified = spec.with_modification({"method": "append_relu", "layer": ""})
    module = build_module(modified, registry=registry)
    assert isinstance(module, nn.Sequential) and isinstance(module[1], nn.ReLU)
    assert type(module[0]) is type(base)
    with pytest.raises(UnknownMethodError, match="append_relu"):
        build_module(modified, registry=build_registry(plugins=False))
