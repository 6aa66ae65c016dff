"""A tiny two-conv, two-linear network for quick tests on 1x28x28 input.

Module paths: ``conv1``, ``relu1``, ``pool1``, ``conv2``, ``relu2``,
``pool2``, ``flatten``, ``fc1``, ``relu3``, ``fc2``.  Widths are multiples of
8 so structured pruning can round to 8.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(3x3) -> ReLU -> maxpool, twice, then two linear layers.

    Args:
        num_classes: size of the output logits.
        in_channels: channels of the input image.
        input_size: input side length; must be divisible by 4 (two 2x2 pools)
            because it fixes the input width of ``fc1``.
        channels: output channels of ``conv1`` and ``conv2``.
        hidden: width of ``fc1``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
                 channels: tuple[int, int] = (16, 32), hidden: int = 128) -> None:
        super().__init__()
        if input_size < 4 or input_size % 4 != 0:
            raise ValueError(f"input_size must be a positive multiple of 4, got {input_size}")
        c1, c2 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(c2 * (input_size // 4) ** 2, hidden)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def small_cnn(num_classes: int = 10, in_channels: int = 1, input_size: int = 28,
              channels: tuple[int, int] = (16, 32), hidden: int = 128) -> SmallCNN:
    """Build the small CNN (206,922 parameters at defaults); returns an untrained model."""
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, input_size=input_size,
                    channels=channels, hidden=hidden)
