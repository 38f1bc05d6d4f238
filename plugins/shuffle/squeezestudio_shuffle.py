"""Grouped-convolution substitution with channel shuffle, as in ShuffleNet.

Zhang et al., "ShuffleNet" (CVPR 2018). A convolution becomes a grouped
convolution with ``g`` groups -- ``g`` times fewer weights -- preceded by a
channel shuffle (``nn.ChannelShuffle``), so each group sees channels from every
group of the layer before it; stacked grouped layers then still mix all
channels, which is ShuffleNet's point. Output channels keep their order, so
the layers after it need no change. Start (data-free): each group keeps its
block of the original kernel -- the weights linking its outputs to the (shuffled)
inputs it still sees; the cross-group weights are the approximation error.
With calibration images on ``state.calibration`` the grouped convolution is
then fitted to the original layer's outputs (layer-wise reconstruction).
Channel counts must be divisible by ``groups``; other layers are skipped with a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from squeezestudio.plugin_api import ArchitectureMismatchError, Substitute, SubstitutionMethod, param


@dataclass(frozen=True)
class ShuffleConfig:
    """Knobs of the substitution."""

    groups: int = param(4, minimum=2, maximum=64, help="groups of the new convolution (in and out channels must divide)")
    shuffle: bool = param(True, help="shuffle the input channels across groups first (ShuffleNet)")
    reconstruct_steps: int = param(200, minimum=0, maximum=100_000,
                                   help="Adam steps fitting the layer to calibration data (0: block start only)")


def geometry(conv: nn.Conv2d) -> dict[str, Any]:
    """The JSON description of a convolution's hyper-parameters."""
    return {"in": conv.in_channels, "out": conv.out_channels, "kernel": list(conv.kernel_size),
            "stride": list(conv.stride), "padding": list(conv.padding), "dilation": list(conv.dilation),
            "bias": conv.bias is not None}


def build_grouped(g: dict[str, Any], groups: int, shuffle: bool) -> nn.Sequential:
    conv = nn.Conv2d(g["in"], g["out"], tuple(g["kernel"]), stride=tuple(g["stride"]), padding=tuple(g["padding"]),
                     dilation=tuple(g["dilation"]), groups=groups, bias=bool(g["bias"]))
    return nn.Sequential(nn.ChannelShuffle(groups) if shuffle else nn.Identity(), conv)


def input_order(channels: int, groups: int, shuffle: bool) -> torch.Tensor:
    """Which original input channel sits at each position after the (optional) shuffle."""
    order = torch.arange(channels, dtype=torch.float32).reshape(1, channels, 1, 1)
    if shuffle:
        order = nn.ChannelShuffle(groups)(order)
    return order.reshape(-1).long()


@torch.no_grad()
def init_from_conv(new: nn.Sequential, conv: nn.Conv2d, groups: int, shuffle: bool) -> float:
    """Copy each group's block of ``conv``'s kernel; returns the share of ``||W||^2`` kept."""
    w = conv.weight.detach()
    order = input_order(conv.in_channels, groups, shuffle)
    per_in, per_out = conv.in_channels // groups, conv.out_channels // groups
    grouped = torch.empty_like(new[1].weight)
    for j in range(groups):
        rows = slice(j * per_out, (j + 1) * per_out)
        grouped[rows] = w[rows][:, order[j * per_in:(j + 1) * per_in]]
    new[1].weight.copy_(grouped)
    if conv.bias is not None:
        new[1].bias.copy_(conv.bias.detach())
    total = float((w ** 2).sum())
    return float((grouped ** 2).sum()) / total if total > 0 else 1.0


class ChannelShuffleMethod(SubstitutionMethod):
    """Plugin method ``shuffle``: the substitution template with ShuffleNet's grouped layer."""

    name = "shuffle"
    label = "Grouped convolution + channel shuffle"
    description = "Replaces a convolution by a channel shuffle and a grouped convolution, as in ShuffleNet."
    config_class = ShuffleConfig
    layer_types = (nn.Conv2d,)
    paper = "Zhang et al., ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices, CVPR 2018"

    def applies_to(self, module: nn.Module) -> bool:
        return isinstance(module, nn.Conv2d) and module.groups == 1

    def skip_reason(self, module: nn.Module, config: ShuffleConfig) -> Optional[str]:
        if not self.applies_to(module):
            return "it is not an ungrouped Conv2d"
        assert isinstance(module, nn.Conv2d)
        if module.in_channels % config.groups or module.out_channels % config.groups:
            return (f"{module.in_channels} input and {module.out_channels} output channels are not both "
                    f"divisible by {config.groups} groups")
        return None

    def build(self, layer: str, module: nn.Module, config: ShuffleConfig) -> Substitute:
        g = geometry(module)  # type: ignore[arg-type]
        return Substitute(build_grouped(g, config.groups, config.shuffle),
                          {"conv": g, "groups": config.groups, "shuffle": config.shuffle})

    def init(self, new: nn.Module, old: nn.Module, config: ShuffleConfig) -> str:
        kept = init_from_conv(new, old, config.groups, config.shuffle)  # type: ignore[arg-type]
        return f"block start keeps {kept:.1%} of the energy"

    def rebuild_layer(self, current: nn.Module, record: dict[str, Any]) -> nn.Module:
        g, groups, shuffle = dict(record["conv"]), int(record["groups"]), bool(record["shuffle"])
        if not isinstance(current, nn.Conv2d) or geometry(current) != g or groups < 2 \
                or g["in"] % groups or g["out"] % groups:
            raise ArchitectureMismatchError(f"layer {record['layer']!r} is not the convolution the shuffle "
                                            "substitution was recorded for")
        return build_grouped(g, groups, shuffle)
