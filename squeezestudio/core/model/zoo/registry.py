"""The zoo's table of architectures: how to build each one and its defaults.

Each entry also names the parameter whose shape reveals the input channels and
the one whose shape reveals the number of classes, which is what lets the
loader recognise a bare state_dict as "a ResNet-18 with 10 classes on
grayscale input" without the user saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Optional

import torch
from torch import nn

from squeezestudio.core.model.zoo.alexnet import AlexNet
from squeezestudio.core.model.zoo.cnds import CNDS8, CNDS8_SLIM_CONFIG
from squeezestudio.core.model.zoo.lenet import LeNet5, LeNet300100
from squeezestudio.core.model.zoo.densenet import DenseNet, current_key_names
from squeezestudio.core.model.zoo.efficientnet import EfficientNet
from squeezestudio.core.model.zoo.mobilenet import V3_LARGE, V3_SMALL, MobileNetV2, MobileNetV3
from squeezestudio.core.model.zoo.resnet import Bottleneck, ResNet
from squeezestudio.core.model.zoo.shufflenet import ShuffleNetV2
from squeezestudio.core.model.zoo.squeezenet import SqueezeNet, SqueezeNetMini
from squeezestudio.core.model.zoo.vgg import VGG, VGG_CONFIGS

Builder = Callable[[int, int, int], nn.Module]
"""``builder(num_classes, in_channels, input_size) -> module``."""
KeyRenamer = Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]
"""``renamer(state_dict) -> state_dict`` with an older release's keys renamed to the zoo's."""


@dataclass(frozen=True)
class ZooEntry:
    """One zoo architecture.

    ``min_input_size`` is the smallest square input its pooling stages accept.
    ``first_weight`` / ``last_weight`` are the state_dict keys whose dim 1 is
    the input channel count (or flattened input size for an MLP) and whose
    dim 0 is the class count. ``size_dependent`` is True when parameter
    shapes depend on ``input_size`` (the LeNets). ``current_keys``, where
    older releases of the reference implementation named parameters
    differently, renames a checkpoint's keys to this definition's names.
    """

    name: str
    title: str
    builder: Builder
    default_num_classes: int
    default_in_channels: int
    default_input_size: int
    min_input_size: int
    first_weight: str
    last_weight: str
    size_dependent: bool = False
    current_keys: Optional[KeyRenamer] = None


def _entries() -> dict[str, ZooEntry]:
    imagenet = dict(default_num_classes=1000, default_in_channels=3, default_input_size=224)
    table = [
        ZooEntry("squeezenet1_0", "SqueezeNet 1.0",
                 lambda n, c, s: SqueezeNet("1_0", num_classes=n, in_channels=c),
                 min_input_size=21, first_weight="features.0.weight",
                 last_weight="classifier.1.weight", **imagenet),
        ZooEntry("squeezenet1_1", "SqueezeNet 1.1",
                 lambda n, c, s: SqueezeNet("1_1", num_classes=n, in_channels=c),
                 min_input_size=17, first_weight="features.0.weight",
                 last_weight="classifier.1.weight", **imagenet),
        ZooEntry("alexnet", "AlexNet", lambda n, c, s: AlexNet(num_classes=n, in_channels=c),
                 min_input_size=63, first_weight="features.0.weight",
                 last_weight="classifier.6.weight", **imagenet),
        ZooEntry("vgg11", "VGG-11",
                 lambda n, c, s: VGG(VGG_CONFIGS["vgg11"], num_classes=n, in_channels=c),
                 min_input_size=32, first_weight="features.0.weight",
                 last_weight="classifier.6.weight", **imagenet),
        ZooEntry("vgg16", "VGG-16",
                 lambda n, c, s: VGG(VGG_CONFIGS["vgg16"], num_classes=n, in_channels=c),
                 min_input_size=32, first_weight="features.0.weight",
                 last_weight="classifier.6.weight", **imagenet),
        ZooEntry("resnet18", "ResNet-18",
                 lambda n, c, s: ResNet((2, 2, 2, 2), num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="conv1.weight", last_weight="fc.weight", **imagenet),
        ZooEntry("resnet34", "ResNet-34",
                 lambda n, c, s: ResNet((3, 4, 6, 3), num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="conv1.weight", last_weight="fc.weight", **imagenet),
        ZooEntry("resnet50", "ResNet-50",
                 lambda n, c, s: ResNet((3, 4, 6, 3), num_classes=n, in_channels=c, block=Bottleneck),
                 min_input_size=1, first_weight="conv1.weight", last_weight="fc.weight", **imagenet),
        ZooEntry("mobilenet_v2", "MobileNetV2",
                 lambda n, c, s: MobileNetV2(num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="features.0.0.weight", last_weight="classifier.1.weight",
                 **imagenet),
        ZooEntry("mobilenet_v3_small", "MobileNetV3 small",
                 lambda n, c, s: MobileNetV3(V3_SMALL, 1024, num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="features.0.0.weight", last_weight="classifier.3.weight",
                 **imagenet),
        ZooEntry("mobilenet_v3_large", "MobileNetV3 large",
                 lambda n, c, s: MobileNetV3(V3_LARGE, 1280, num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="features.0.0.weight", last_weight="classifier.3.weight",
                 **imagenet),
        ZooEntry("shufflenet_v2_x1_0", "ShuffleNetV2 1.0x",
                 lambda n, c, s: ShuffleNetV2(num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="conv1.0.weight", last_weight="fc.weight", **imagenet),
        ZooEntry("efficientnet_b0", "EfficientNet-B0",
                 lambda n, c, s: EfficientNet(num_classes=n, in_channels=c),
                 min_input_size=1, first_weight="features.0.0.weight", last_weight="classifier.1.weight",
                 **imagenet),
        ZooEntry("densenet121", "DenseNet-121",
                 lambda n, c, s: DenseNet(num_classes=n, in_channels=c),
                 min_input_size=29, first_weight="features.conv0.weight", last_weight="classifier.weight",
                 current_keys=current_key_names, **imagenet),
        ZooEntry("lenet5", "LeNet-5",
                 lambda n, c, s: LeNet5(num_classes=n, in_channels=c, input_size=s),
                 default_num_classes=10, default_in_channels=1, default_input_size=28,
                 min_input_size=12, first_weight="conv1.weight", last_weight="fc3.weight",
                 size_dependent=True),
        ZooEntry("lenet300_100", "LeNet-300-100",
                 lambda n, c, s: LeNet300100(num_classes=n, in_channels=c, input_size=s),
                 default_num_classes=10, default_in_channels=1, default_input_size=28,
                 min_input_size=1, first_weight="fc1.weight", last_weight="fc3.weight",
                 size_dependent=True),
        ZooEntry("cnds8", "CNDS-8 (plain VGG-style, 8 convolutions)",
                 lambda n, c, s: CNDS8(num_classes=n, in_channels=c),
                 default_num_classes=10, default_in_channels=3, default_input_size=32,
                 min_input_size=16, first_weight="features.0.weight", last_weight="classifier.weight"),
        ZooEntry("squeezenet_mini", "SqueezeNet for small images (the bundled demo model)",
                 lambda n, c, s: SqueezeNetMini(num_classes=n, in_channels=c),
                 default_num_classes=10, default_in_channels=1, default_input_size=32,
                 min_input_size=8, first_weight="features.0.weight", last_weight="classifier.1.weight"),
        ZooEntry("cnds8_slim", "CNDS-8 at a quarter of the width (the bundled demo baseline)",
                 lambda n, c, s: CNDS8(num_classes=n, in_channels=c, config=CNDS8_SLIM_CONFIG),
                 default_num_classes=10, default_in_channels=3, default_input_size=32,
                 min_input_size=16, first_weight="features.0.weight", last_weight="classifier.weight"),
    ]
    return {entry.name: entry for entry in table}


ZOO_ENTRIES: Mapping[str, ZooEntry] = MappingProxyType(_entries())
"""Read-only: architectures are added in ``_entries``, not at run time."""

ZOO_NAMES: tuple[str, ...] = tuple(ZOO_ENTRIES)
