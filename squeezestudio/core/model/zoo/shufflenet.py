"""ShuffleNetV2 1.0x (Ma et al., 2018) with torchvision's layout and parameter names.

Each unit either splits its input in two halves and transforms one
(stride 1), or transforms the whole input twice (stride 2, ``branch1`` and
``branch2``); the halves are concatenated and shuffled between two groups so
information crosses branches. The shuffle is ``nn.ChannelShuffle`` (an
ordinary torch layer, which the compression analysis and the ONNX exporter
understand) rather than hand-written reshapes; it has no parameters, so the
state_dict equals torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezestudio.core.model.zoo.weight_init import init_classifier_weights

X1_0_REPEATS = (4, 8, 4)
X1_0_CHANNELS = (24, 116, 232, 464, 1024)


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's building block (the paper's figure 3 c/d)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(_depthwise(inp, stride), nn.BatchNorm2d(inp),
                                         nn.Conv2d(inp, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU())
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(),
            _depthwise(half, stride), nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU())
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, changed = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch2(changed)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out)


class ShuffleNetV2(nn.Module):
    """3x3 stem + max-pool, three stages of shuffle units, a 1x1 head, global mean, linear."""

    def __init__(self, repeats: tuple[int, ...] = X1_0_REPEATS, channels: tuple[int, ...] = X1_0_CHANNELS,
                 num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, channels[0], 3, 2, 1, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inp = channels[0]
        for index, (count, out) in enumerate(zip(repeats, channels[1:]), start=2):
            units = [ShuffleUnit(inp, out, 2)] + [ShuffleUnit(out, out, 1) for _ in range(count - 1)]
            setattr(self, f"stage{index}", nn.Sequential(*units))
            inp = out
        self.conv5 = nn.Sequential(nn.Conv2d(inp, channels[-1], 1, bias=False), nn.BatchNorm2d(channels[-1]),
                                   nn.ReLU())
        self.fc = nn.Linear(channels[-1], num_classes)
        init_classifier_weights(self, keep_default=[self.fc])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(self.conv5(x).mean([2, 3]))
