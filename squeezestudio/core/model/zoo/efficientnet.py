"""EfficientNet-B0 (Tan & Le, 2019) with torchvision's layout and parameter names.

``features.0`` is the stem, ``features.1..7`` the seven MBConv stages (each
an ``nn.Sequential`` of blocks whose layers sit in ``block``), ``features.8``
the 1x1 head; ``classifier.1`` is the linear layer. Every MBConv has a
squeeze-excitation of a quarter of its *input* channels, and residual
branches are dropped per sample with a probability growing linearly to 0.2
while training (stochastic depth), as in the reference training.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from squeezestudio.core.model.zoo.blocks import (SqueezeExcitation, StochasticDepth, conv_norm_act,
                                                 make_divisible)
from squeezestudio.core.model.zoo.weight_init import init_classifier_weights


class MBConvStage(NamedTuple):
    """One row of the paper's table 1."""

    expand: int
    kernel: int
    stride: int
    inp: int
    out: int
    repeats: int


B0_STAGES: tuple[MBConvStage, ...] = tuple(MBConvStage(*row) for row in (
    (1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1),
))


class MBConv(nn.Module):
    """Expand 1x1 (unless the ratio is 1), depthwise kxk, squeeze-excitation, linear 1x1 projection."""

    def __init__(self, inp: int, out: int, expand: int, kernel: int, stride: int, drop: float) -> None:
        super().__init__()
        expanded = make_divisible(inp * expand)
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(conv_norm_act(inp, expanded, 1, activation=nn.SiLU))
        layers += [conv_norm_act(expanded, expanded, kernel, stride, groups=expanded, activation=nn.SiLU),
                   SqueezeExcitation(expanded, max(1, inp // 4), nn.SiLU, nn.Sigmoid),
                   conv_norm_act(expanded, out, 1, activation=None)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return self.stochastic_depth(self.block(x)) + x
        return self.block(x)


class EfficientNet(nn.Module):
    """The B0 network: stem, MBConv stages, 4x 1x1 head, dropout + linear."""

    def __init__(self, stages: tuple[MBConvStage, ...] = B0_STAGES, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.2, stochastic_depth: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [conv_norm_act(in_channels, stages[0].inp, 3, 2, activation=nn.SiLU)]
        total = sum(s.repeats for s in stages)
        done = 0
        for s in stages:
            blocks = []
            for i in range(s.repeats):
                blocks.append(MBConv(s.inp if i == 0 else s.out, s.out, s.expand, s.kernel,
                                     s.stride if i == 0 else 1, stochastic_depth * done / total))
                done += 1
            layers.append(nn.Sequential(*blocks))
        head = 4 * stages[-1].out
        layers.append(conv_norm_act(stages[-1].out, head, 1, activation=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(head, num_classes))
        init_classifier_weights(self)
        linear = self.classifier[1]
        if not linear.weight.is_meta:
            bound = 1.0 / math.sqrt(linear.out_features)
            nn.init.uniform_(linear.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
