"""Building blocks shared by the mobile architectures (MobileNet, EfficientNet).

``conv_norm_act`` is the convolution + BatchNorm + activation triple every
mobile network stacks; it is an ``nn.Sequential`` so its children are named
``0``/``1``/``2`` exactly as torchvision's ``Conv2dNormActivation``, which is
what lets torchvision checkpoints load unchanged. ``SqueezeExcitation`` keeps
torchvision's ``fc1``/``fc2`` names for the same reason.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn


ActivationFactory = Optional[Callable[[], nn.Module]]


def make_divisible(value: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% below ``value``.

    The rule of the MobileNet papers' reference code; channel counts of every
    published mobile model are computed with it.
    """
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                  groups: int = 1, activation: ActivationFactory = nn.ReLU,
                  bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> nn.Sequential:
    """Conv2d (no bias, "same" padding) -> BatchNorm2d -> activation (omitted when None)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Hu et al.'s channel attention: pool, squeeze (fc1), excite (fc2), scale the input by a gate."""

    def __init__(self, channels: int, squeeze_channels: int, activation: Callable[[], nn.Module] = nn.ReLU,
                 gate: Callable[[], nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.activation = activation()
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class StochasticDepth(nn.Module):
    """Drop a residual branch for whole samples while training (Huang et al., 2016); identity in eval.

    It has no parameters, so it changes nothing in the state_dict; it matters
    only when the model is fine-tuned.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * noise.bernoulli_(keep).div_(keep)
