"""LeNet-5 and LeNet-300-100, the small baselines of the pruning literature.

Both are sized from ``input_size``: their first fully connected layer sees the
flattened feature map, so the input size decides its shape (unlike the
ImageNet models, which pool adaptively).
"""

from __future__ import annotations

import torch
from torch import nn

from squeezestudio.core.model.zoo.weight_init import init_classifier_weights


def lenet5_feature_size(input_size: int) -> int:
    """Side of LeNet-5's last feature map: conv5 (pad 2), pool2, conv5, pool2."""
    return (input_size // 2 - 4) // 2


def lenet5_input_size(feature_size: int) -> int:
    """The smallest input side whose last feature map has side ``feature_size`` (28 for 5)."""
    return 4 * feature_size + 8


class LeNet5(nn.Module):
    """Two 5x5 convolutions (6 and 16 filters) and three linear layers (120, 84, classes).

    The first convolution pads by 2, as in the usual MNIST variant, so a 28x28
    input gives the paper's 16x5x5 feature map; inputs must be at least 12x12.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        self.num_classes = num_classes
        side = lenet5_feature_size(input_size)
        if side < 1:
            raise ValueError(f"LeNet-5 needs inputs of at least 12x12 pixels, not {input_size}")
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)
        # N(0, 0.01) is too small for linear layers of a net this shallow to train fast.
        init_classifier_weights(self, keep_default=[self.fc1, self.fc2, self.fc3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.flatten(self.pool2(self.relu2(self.conv2(x))))
        x = self.relu4(self.fc2(self.relu3(self.fc1(x))))
        return self.fc3(x)


class LeNet300100(nn.Module):
    """A multilayer perceptron with hidden layers of 300 and 100 units over the flattened image."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_channels * input_size * input_size, 300)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(300, 100)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.fc1(self.flatten(x)))
        return self.fc3(self.relu2(self.fc2(x)))
