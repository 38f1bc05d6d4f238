"""VGG-11 and VGG-16 (Simonyan & Zisserman, 2014) without batch norm, as torchvision lays them out.

``features.N`` counts every layer (convolution, ReLU, pool) so convolution
indices match torchvision's; ``classifier.0/3/6`` are the linear layers.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from squeezestudio.core.model.zoo.weight_init import init_classifier_weights

POOL = "M"
"""Marks a 2x2 max-pool in a layer configuration."""

VGG_CONFIGS: dict[str, list[Union[int, str]]] = {
    "vgg11": [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    "vgg16": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL,
              512, 512, 512, POOL, 512, 512, 512, POOL],
}


def make_vgg_features(config: Sequence[Union[int, str]], in_channels: int,
                      batch_norm: bool = False) -> nn.Sequential:
    """3x3 convolutions (+BN) + ReLU per integer in ``config``, a 2x2 max-pool per ``POOL``."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out = int(item)
        layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        channels = out
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """Plain VGG: stacked 3x3 convolutions then three large linear layers.

    The adaptive 7x7 pool keeps the classifier's shapes fixed for any input of
    at least 32x32 pixels.
    """

    def __init__(self, config: Sequence[Union[int, str]], num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = make_vgg_features(config, in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        init_classifier_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)
