"""The plain 8-convolution VGG-style baseline of the Residual-Squeeze-CNDS paper ("cnds8").

Qassim et al. (2017) compress an 8-layer VGG-like network trained with deep
supervision; without the auxiliary heads (used only in training) it is eight
3x3 convolution + batch norm + ReLU layers in VGG-11's widths, max-pooled
after the 1st, 2nd, 4th and 6th, then global average pooling and one linear
classifier. It is the "before" network for Fire/residual substitutions.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezestudio.core.model.zoo.vgg import POOL, make_vgg_features
from squeezestudio.core.model.zoo.weight_init import init_classifier_weights

CNDS8_CONFIG = [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512]
# The same network at a quarter of the width: the bundled demo, small enough to
# train in a minute and compress interactively on a laptop CPU.
CNDS8_SLIM_CONFIG = [16, POOL, 32, POOL, 64, 64, POOL, 128, 128, POOL, 128, 128]


class CNDS8(nn.Module):
    """Eight conv-BN-ReLU layers, four max-pools, global average pool, linear classifier.

    Works for inputs of at least 16x16 pixels (four halvings).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, config: list = CNDS8_CONFIG) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = make_vgg_features(config, in_channels, batch_norm=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(int(config[-1]), num_classes)
        init_classifier_weights(self, keep_default=[self.classifier])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
