"""MobileNetV2 (Sandler et al., 2018) and MobileNetV3 small/large (Howard et al., 2019).

Laid out as torchvision lays them out -- ``features.N`` stages, each
inverted residual's layers in ``conv`` (V2) or ``block`` (V3), the
convolution/BatchNorm/activation triples numbered ``0/1/2`` -- so torchvision
checkpoints load unchanged. The tables below are the papers' (and
torchvision's) stage settings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from squeezestudio.core.model.zoo.blocks import SqueezeExcitation, conv_norm_act, make_divisible
from squeezestudio.core.model.zoo.weight_init import init_classifier_weights

V2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    # expansion t, output channels c, repeats n, first stride s
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


class V2Block(nn.Module):
    """Expand 1x1 (unless t = 1), depthwise 3x3, linear 1x1 projection; a shortcut when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_norm_act(inp, hidden, 1, activation=nn.ReLU6))
        layers += [conv_norm_act(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """32-channel stem, 17 inverted residuals, a 1280-channel 1x1 head, dropout + linear.

    ``width_mult`` scales every width but the head's, as in the paper (1.0 is the published model).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 width_mult: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        channels, last = make_divisible(32 * width_mult), make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [conv_norm_act(in_channels, channels, 3, 2, activation=nn.ReLU6)]
        for t, c, n, s in V2_SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(V2Block(channels, out, s if i == 0 else 1, t))
                channels = out
        layers.append(conv_norm_act(channels, last, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))
        init_classifier_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class V3Setting(NamedTuple):
    """One MobileNetV3 bottleneck: the rows of the paper's tables 1 and 2."""

    inp: int
    kernel: int
    expanded: int
    out: int
    se: bool
    hardswish: bool
    stride: int


_RE, _HS = False, True
V3_LARGE: tuple[V3Setting, ...] = tuple(V3Setting(*row) for row in (
    (16, 3, 16, 16, False, _RE, 1), (16, 3, 64, 24, False, _RE, 2), (24, 3, 72, 24, False, _RE, 1),
    (24, 5, 72, 40, True, _RE, 2), (40, 5, 120, 40, True, _RE, 1), (40, 5, 120, 40, True, _RE, 1),
    (40, 3, 240, 80, False, _HS, 2), (80, 3, 200, 80, False, _HS, 1), (80, 3, 184, 80, False, _HS, 1),
    (80, 3, 184, 80, False, _HS, 1), (80, 3, 480, 112, True, _HS, 1), (112, 3, 672, 112, True, _HS, 1),
    (112, 5, 672, 160, True, _HS, 2), (160, 5, 960, 160, True, _HS, 1), (160, 5, 960, 160, True, _HS, 1),
))
V3_SMALL: tuple[V3Setting, ...] = tuple(V3Setting(*row) for row in (
    (16, 3, 16, 16, True, _RE, 2), (16, 3, 72, 24, False, _RE, 2), (24, 3, 88, 24, False, _RE, 1),
    (24, 5, 96, 40, True, _HS, 2), (40, 5, 240, 40, True, _HS, 1), (40, 5, 240, 40, True, _HS, 1),
    (40, 5, 120, 48, True, _HS, 1), (48, 5, 144, 48, True, _HS, 1), (48, 5, 288, 96, True, _HS, 2),
    (96, 5, 576, 96, True, _HS, 1), (96, 5, 576, 96, True, _HS, 1),
))
_V3_BN = {"bn_eps": 1e-3, "bn_momentum": 0.01}  # the V3 reference training's BatchNorm settings


class V3Block(nn.Module):
    """Expand 1x1, depthwise kxk, optional squeeze-excitation (hard-sigmoid gate), 1x1 projection."""

    def __init__(self, cfg: V3Setting) -> None:
        super().__init__()
        act = nn.Hardswish if cfg.hardswish else nn.ReLU
        self.use_res_connect = cfg.stride == 1 and cfg.inp == cfg.out
        layers: list[nn.Module] = []
        if cfg.expanded != cfg.inp:
            layers.append(conv_norm_act(cfg.inp, cfg.expanded, 1, activation=act, **_V3_BN))
        layers.append(conv_norm_act(cfg.expanded, cfg.expanded, cfg.kernel, cfg.stride, groups=cfg.expanded,
                                    activation=act, **_V3_BN))
        if cfg.se:
            layers.append(SqueezeExcitation(cfg.expanded, make_divisible(cfg.expanded // 4), nn.ReLU,
                                            nn.Hardsigmoid))
        layers.append(conv_norm_act(cfg.expanded, cfg.out, 1, activation=nn.Identity, **_V3_BN))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + x if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    """Hard-swish stem, the bottlenecks of ``settings``, a 6x 1x1 head, then Linear-Hardswish-Linear."""

    def __init__(self, settings: tuple[V3Setting, ...], last_channel: int, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = [conv_norm_act(in_channels, settings[0].inp, 3, 2, activation=nn.Hardswish,
                                                 **_V3_BN)]
        layers += [V3Block(cfg) for cfg in settings]
        head = 6 * settings[-1].out
        layers.append(conv_norm_act(settings[-1].out, head, 1, activation=nn.Hardswish, **_V3_BN))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(head, last_channel), nn.Hardswish(), nn.Dropout(p=dropout),
                                        nn.Linear(last_channel, num_classes))
        init_classifier_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
