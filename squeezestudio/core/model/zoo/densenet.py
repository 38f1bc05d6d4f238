"""DenseNet-121 (Huang et al., 2017) with torchvision's layout and parameter names.

Inside a dense block every layer reads the concatenation of the block's
input and all earlier layers' outputs and adds ``growth`` new channels;
transitions halve channels (1x1) and resolution (2x2 average pool). Names
(``features.denseblockK.denselayerJ.norm1/conv1/norm2/conv2``,
``features.transitionK.norm/conv``, ``features.norm5``, ``classifier``) are
those of ``torchvision.models.densenet121().state_dict()``. Checkpoints
saved by torchvision releases before 0.3 name a dense layer's parts
``norm.1``/``conv.1``/``norm.2``/``conv.2``; :func:`current_key_names` renames
them, and the checkpoint loader applies it to any checkpoint meant for a zoo
DenseNet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from squeezestudio.core.model.zoo.weight_init import init_classifier_weights

DENSENET121_BLOCKS = (6, 12, 24, 16)

T = TypeVar("T")
_DOTTED_PART = re.compile(r"(\.denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def current_key_names(state: Mapping[str, T]) -> dict[str, T]:
    """``state`` with old torchvision dense-layer names (``denselayer1.norm.1.weight``) made current
    (``denselayer1.norm1.weight``); other keys, and a state that already uses current names, are unchanged.

    Old torchvision built a dense layer with ``add_module("norm.1", ...)``, a
    dot inside a module name, which newer PyTorch refuses; the published
    ImageNet weights of that era still use those keys. A state holding both
    spellings of one key is returned as it is, so that the loader's key check
    reports the clash instead of one tensor silently replacing the other.
    """
    renamed = {_DOTTED_PART.sub(r"\1\2.", key): value for key, value in state.items()}
    return renamed if len(renamed) == len(state) else dict(state)


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (to ``bn_size * growth``) then BN-ReLU-3x3 (to ``growth``) on the concatenated inputs."""

    def __init__(self, inp: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(inp)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(inp, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """``count`` dense layers named ``denselayer1..count``; outputs all features concatenated."""

    def __init__(self, count: int, inp: int, growth: int, bn_size: int) -> None:
        super().__init__({f"denselayer{i + 1}": DenseLayer(inp + i * growth, growth, bn_size)
                          for i in range(count)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 convolution then a 2x2 average pool."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(inp)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(inp, out, 1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """7x7 stem, dense blocks with transitions, a final BN, global pooling, linear classifier."""

    def __init__(self, blocks: tuple[int, ...] = DENSENET121_BLOCKS, growth: int = 32, init_features: int = 64,
                 bn_size: int = 4, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(in_channels, init_features, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(init_features))
        self.features.add_module("relu0", nn.ReLU())
        self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        channels = init_features
        for i, count in enumerate(blocks):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(count, channels, growth, bn_size))
            channels += count * growth
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_classifier_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x))
        return self.classifier(torch.flatten(self.avgpool(x), 1))
