"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016), laid out like torchvision's.

Parameter names (``features.N...``, ``classifier.1...``) and shapes equal
torchvision's so a user's torchvision checkpoint loads unchanged. The Fire
module is also what the Fire-substitution compression method inserts.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezestudio.core.model.zoo.weight_init import init_classifier_weights, is_meta


class Fire(nn.Module):
    """A 1x1 "squeeze" convolution feeding parallel 1x1 and 3x3 "expand" convolutions.

    The two expand outputs are concatenated along channels, so the module maps
    ``inplanes`` to ``expand1x1_planes + expand3x3_planes`` channels while the
    squeeze layer keeps the number of 3x3 filters' input channels small.
    """

    def __init__(self, inplanes: int, squeeze_planes: int,
                 expand1x1_planes: int, expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], dim=1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """SqueezeNet; ``version`` "1_0" is the paper's network, "1_1" the cheaper revision.

    The classifier is a 1x1 convolution followed by global average pooling, so
    any input size that survives the pooling stages works.
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 96, kernel_size=7, stride=2), nn.ReLU(), _pool(),
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), _pool(),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=3, stride=2), nn.ReLU(), _pool(),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), _pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), _pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"unknown SqueezeNet version {version!r}; use '1_0' or '1_1'")
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))
        init_classifier_weights(self)
        if not is_meta(self):
            # The paper initialises the last layer with small values so early training is stable.
            nn.init.normal_(final_conv.weight, mean=0.0, std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def mini_fire_widths(expand: int, squeeze_ratio: float, pct3x3: float) -> tuple[int, int, int]:
    """``(squeeze, e1x1, e3x3)`` of a Fire module with ``expand`` output channels.

    SqueezeNet's knobs: squeeze = SR * expand, e3x3 = pct3x3 * expand. Both
    expand branches keep at least one filter (a branch with zero channels
    would change the module's structure), so pct3x3 is clamped to the
    nearest share that leaves one filter of each kind.
    """
    squeeze = max(1, int(round(squeeze_ratio * expand)))
    e3 = min(expand - 1, max(1, int(round(pct3x3 * expand))))
    return squeeze, expand - e3, e3


MINI_EXPANDS = (64, 64, 128, 128, 192, 192)


class SqueezeNetMini(nn.Module):
    """A SqueezeNet for small images (the bundled demo): same Fire modules, later downsampling.

    SqueezeNet 1.1 reduces a 32x32 input to 1x1 after its third pooling stage
    and trains poorly from scratch at that size. This variant follows the
    paper's third strategy (downsample late): a stride-1 3x3 stem, three
    2x2 poolings (32 -> 4), six Fire modules with 64, 64, 128, 128, 192, 192
    expand filters, and a 1x1 convolution classifier without the final ReLU
    (which can switch every logit off early in training). Names follow
    torchvision's SqueezeNet (``features.N``, ``classifier.1``).

    ``squeeze_ratio`` (SR) and ``pct3x3`` are the paper's design-space knobs;
    the defaults (0.125 and 0.5) give the demo's layer sizes exactly.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.2,
                 squeeze_ratio: float = 0.125, pct3x3: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < squeeze_ratio <= 4.0 or not 0.0 <= pct3x3 <= 1.0:
            raise ValueError(f"squeeze_ratio must be in (0, 4] and pct3x3 in [0, 1], "
                             f"not {squeeze_ratio} and {pct3x3}")
        self.num_classes = num_classes

        def fire(inplanes: int, expand: int) -> Fire:
            return Fire(inplanes, *mini_fire_widths(expand, squeeze_ratio, pct3x3))

        e = MINI_EXPANDS
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            fire(32, e[0]), fire(e[0], e[1]), nn.MaxPool2d(2),
            fire(e[1], e[2]), fire(e[2], e[3]), nn.MaxPool2d(2),
            fire(e[3], e[4]), fire(e[4], e[5]),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Conv2d(e[5], num_classes, kernel_size=1), nn.AdaptiveAvgPool2d((1, 1)))
        init_classifier_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)
