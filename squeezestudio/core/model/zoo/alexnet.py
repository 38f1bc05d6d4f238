"""AlexNet in torchvision's one-GPU layout (Krizhevsky, 2014 "one weird trick" variant).

Names and shapes (``features.0/3/6/8/10``, ``classifier.1/4/6``) match
torchvision, so its checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from squeezestudio.core.model.zoo.weight_init import init_classifier_weights


class AlexNet(nn.Module):
    """Five convolutions and three fully connected layers (~61M parameters at 1000 classes).

    An adaptive 6x6 average pool before the classifier makes the classifier
    shapes independent of the input size (inputs must be at least 63x63).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(p=dropout), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )
        init_classifier_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x)
