"""structured on the modern zoo: coupled channels go together, every layer shrinks, files round-trip.

ResNet-50 and MobileNetV2 are built at reduced width (the same topology --
every residual, depthwise convolution and stage -- with fewer channels) so
the tests stay fast; the published widths are measured by
``benchmarks/bench_structured_pruning.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from plugin_helpers import assert_same_outputs, make_handle, make_state, randomize_bn, sqz_round_trip
from squeezestudio.core.compression.state import CompressionState
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.model.zoo import zoo_handle
from squeezestudio.core.model.zoo.blocks import conv_norm_act
from squeezestudio.core.model.zoo.densenet import DenseBlock
from squeezestudio.core.model.zoo.mobilenet import MobileNetV2, V3Block, V3Setting
from squeezestudio.core.model.zoo.resnet import Bottleneck, ResNet
from squeezestudio.core.model.zoo.shufflenet import ShuffleUnit


def _prunable(registry, module: nn.Module) -> list[str]:
    method = registry.get("structured")
    return [n for n, m in module.named_modules() if method.applies_to(m)]


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(m.weight.shape) for n, m in module.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))}


def _halved(before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    return after[0] == before[0] // 2


def test_resnet50_topology_shrinks_at_every_layer(registry, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ResNet((3, 4, 6, 3), num_classes=10, block=Bottleneck, width=8)
    randomize_bn(model)
    state = make_state(model, size=32)
    before = _shapes(state.module)
    registry.get("structured").apply(state, {n: {"ratio": 0.5} for n in _prunable(registry, state.module)})
    after = _shapes(state.module)
    assert after["fc"] == (10, before["fc"][1] // 2)
    assert after["conv1"] == (4, 3, 7, 7)
    for name, shape in before.items():
        if name not in ("fc", "conv1"):
            assert after[name][0] == shape[0] // 2, name  # outputs (and BatchNorm channels) halved
            if len(shape) == 4:
                assert after[name][1] == shape[1] // 2, name  # and inputs
    x = torch.randn(2, 3, 32, 32)
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, x)


def test_mobilenet_v2_topology_keeps_depthwise_convolutions_depthwise(registry, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = MobileNetV2(num_classes=10, width_mult=0.25)
    randomize_bn(model)
    state = make_state(model, size=32)
    params = sum(p.numel() for p in state.module.parameters())
    registry.get("structured").apply(state, {n: {"ratio": 0.5} for n in _prunable(registry, state.module)})
    convs = {n: m for n, m in state.module.named_modules() if isinstance(m, nn.Conv2d)}
    originals = dict(model.named_modules())
    depthwise = [n for n, m in convs.items() if m.groups > 1]
    assert len(depthwise) == 17
    for name in depthwise:
        conv = convs[name]
        assert conv.groups == conv.in_channels == conv.out_channels == originals[name].out_channels // 2
    assert all(convs[n].out_channels < originals[n].out_channels for n in convs)
    assert sum(p.numel() for p in state.module.parameters()) < 0.45 * params
    loaded = sqz_round_trip(state, tmp_path)
    assert_same_outputs(state.module, loaded, torch.randn(2, 3, 32, 32))


def _kill(module: nn.Module, rows: dict[str, list[int]], norms: list[str], channels: list[int]) -> None:
    with torch.no_grad():
        for name, where in rows.items():
            module.get_submodule(name).weight[where] = 0.0
        for name in norms:
            bn = module.get_submodule(name)
            bn.weight[channels] = 0.0
            bn.bias[channels] = 0.0


def test_squeeze_excitation_channels_go_with_their_gate_exactly(registry, tmp_path: Path) -> None:
    """Dead expanded channels of a MobileNetV3 block (expand, depthwise, SE gate) are removed without a trace."""
    torch.manual_seed(2)
    handle = zoo_handle("mobilenet_v3_small", num_classes=10, input_size=32)
    randomize_bn(handle.module)
    block = "features.4.block"  # expand 24 -> 96, depthwise 5x5, SE (fc1 96 -> 24, fc2 24 -> 96), project
    dead = list(range(1, 96, 2))
    _kill(handle.module, {f"{block}.0.0": dead, f"{block}.1.0": dead, f"{block}.2.fc2": dead},
          [f"{block}.0.1", f"{block}.1.1"], dead)
    with torch.no_grad():
        handle.module.get_submodule(f"{block}.2.fc2").bias[dead] = 0.0
    state = CompressionState.from_handle(handle)
    registry.get("structured").apply(state, {f"{block}.0.0": {"ratio": 0.5}})
    m = state.module
    assert m.get_submodule(f"{block}.1.0").groups == 48
    assert m.get_submodule(f"{block}.2.fc1").in_channels == 48
    assert m.get_submodule(f"{block}.2.fc2").out_channels == 48
    assert m.get_submodule(f"{block}.3.0").in_channels == 48
    x = torch.randn(2, 3, 32, 32)
    assert_same_outputs(m, handle.module, x, atol=1e-5)
    assert state.handle.architecture.kind == "zoo" and state.handle.architecture.modifications
    assert_same_outputs(m, sqz_round_trip(state, tmp_path), x)


class _EveryCoupling(nn.Module):
    """The zoo's own blocks in miniature: SE + residual, ShuffleNet split/shuffle, a DenseNet block."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_norm_act(3, 16, 3, 2)
        self.se_block = V3Block(V3Setting(16, 3, 32, 16, True, True, 1))
        self.down = ShuffleUnit(16, 32, 2)
        self.unit = ShuffleUnit(32, 32, 1)
        self.dense = DenseBlock(2, 32, growth=8, bn_size=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.unit(self.down(self.se_block(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_every_coupling_prunes_to_a_model_that_exports_to_onnx(registry, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = _EveryCoupling()
    randomize_bn(model)
    state = make_state(model, size=16)
    params = sum(p.numel() for p in state.module.parameters())
    registry.get("structured").apply(state, {n: {"ratio": 0.5} for n in _prunable(registry, state.module)})
    m = state.module
    assert m.stem[0].out_channels == 8 == m.se_block.block[3][0].out_channels  # the residual pair
    assert m.se_block.block[2].fc2.out_channels == m.se_block.block[1][0].groups == 16
    assert m.down.branch2[5].out_channels == m.down.branch1[2].out_channels  # shuffled halves stay equal
    assert m.unit.branch2[0].in_channels == m.unit.branch2[0].out_channels * 2 - m.unit.branch2[0].out_channels
    assert m.dense.denselayer2.norm1.num_features == m.dense.denselayer1.conv1.in_channels + 4
    assert sum(p.numel() for p in m.parameters()) < 0.5 * params
    size = export_onnx(state.handle, tmp_path / "pruned.onnx")  # checked against onnxruntime before writing
    assert size == (tmp_path / "pruned.onnx").stat().st_size
    assert_same_outputs(m, sqz_round_trip(state, tmp_path), torch.randn(2, 3, 16, 16))
