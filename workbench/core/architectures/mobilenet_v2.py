"""MobileNetV2 (Sandler et al., 2018) in plain ``torch.nn``.

Module paths follow the layout ``features.<i>`` for the stem, the inverted
residual blocks and the last 1x1 conv, then ``classifier.<j>``.  Inside a
block, ``conv.<k>`` indexes the expand / depthwise / project layers, e.g.
``features.3.conv.0`` is the expansion ConvBNReLU of the fourth feature stage.

The same building blocks also make the small ``demo_digits`` network, so a
pruner written against MobileNetV2 works on the demo unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), as in the paper.
IMAGENET_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

# Reduced stage list for 28x28 digits: three resolutions (28 -> 14 -> 7 -> 4)
# and channel counts that stay multiples of 8 so pruning can round to 8.
DEMO_DIGITS_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (4, 24, 2, 2),
    (4, 40, 2, 2),
    (4, 64, 2, 2),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``.

    Takes a (possibly fractional) channel count, returns an int that is a
    multiple of ``divisor``, at least ``min_value`` (default ``divisor``), and
    never more than 10 % below ``value`` (hardware-friendly widths without
    silently dropping much capacity).
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU6; children are ``0``, ``1``, ``2``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear project (1x1), with a skip
    connection when the block keeps both resolution and channel count.

    ``conv`` holds the layers in order; the expansion layer is omitted when
    ``expand_ratio == 1`` (as in the paper's first stage).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_ch * expand_ratio))
        self.use_res_connect = stride == 1 and in_ch == out_ch

        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_ch, hidden, kernel_size=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            # The projection is linear on purpose: ReLU on the narrow
            # bottleneck destroys information (paper, section 3.2).
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 classifier.

    Args:
        num_classes: size of the output logits.
        width_mult: multiplier on every channel count (rounded to ``round_nearest``).
        in_channels: channels of the input image.
        input_size: nominal input side length; not structural (the head uses
            global average pooling) but checked and kept as ``self.input_size``
            so tools can build an example input.
        stem_stride: stride of the first conv; 2 for ImageNet, 1 suits 28x28.
        inverted_residual_setting: rows of (t, c, n, s); defaults to the paper's.
        stem_channels: output channels of the first conv before ``width_mult``.
        last_channel: channels of the final 1x1 conv before ``width_mult``
            (only scaled up, never down, as in the paper).
        dropout: dropout probability before the linear classifier.
        round_nearest: channel counts are rounded to multiples of this.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        in_channels: int = 3,
        input_size: int = 224,
        stem_stride: int = 2,
        inverted_residual_setting: Sequence[Sequence[int]] | None = None,
        stem_channels: int = 32,
        last_channel: int = 1280,
        dropout: float = 0.2,
        round_nearest: int = 8,
    ) -> None:
        super().__init__()
        setting = IMAGENET_SETTING if inverted_residual_setting is None else inverted_residual_setting
        _check_config(num_classes, width_mult, in_channels, input_size, stem_stride, setting)

        self.input_size = input_size
        in_ch = make_divisible(stem_channels * width_mult, round_nearest)
        self.last_channel = make_divisible(last_channel * max(1.0, width_mult), round_nearest)

        features: list[nn.Module] = [ConvBNReLU(in_channels, in_ch, stride=stem_stride)]
        for t, c, n, s in setting:
            out_ch = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        features.append(ConvBNReLU(in_ch, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(self.last_channel, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.flatten(self.pool(x))
        return self.classifier(x)


def _check_config(num_classes: int, width_mult: float, in_channels: int, input_size: int,
                  stem_stride: int, setting: Sequence[Sequence[int]]) -> None:
    """Raise ValueError on a configuration that cannot build a sensible net."""
    if num_classes < 1 or in_channels < 1:
        raise ValueError("num_classes and in_channels must be >= 1")
    if width_mult <= 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
    if not setting or any(len(row) != 4 for row in setting):
        raise ValueError("inverted_residual_setting must be a non-empty list of (t, c, n, s) rows")
    if input_size < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size}")
    total_stride = stem_stride
    for _, _, _, s in setting:
        total_stride *= s
    # Stride-2 convs with padding never reach 0x0, but an input smaller than
    # the total stride degenerates to 1x1 maps early; this is almost always a
    # forgotten ``stem_stride=1`` for small images.
    if input_size < total_stride // 2:
        raise ValueError(
            f"input_size {input_size} is far below the network's total stride {total_stride}; "
            "use a smaller stem_stride or a reduced stage list"
        )


def mobilenet_v2(width_mult: float = 1.0, num_classes: int = 1000, in_channels: int = 3,
                 input_size: int = 224, stem_stride: int = 2, **kwargs) -> MobileNetV2:
    """Build MobileNetV2; with defaults it has 3,504,872 parameters.

    Extra keyword arguments go to :class:`MobileNetV2` (e.g. ``dropout``).
    Returns the model in training mode with freshly initialised weights.
    """
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, in_channels=in_channels,
                       input_size=input_size, stem_stride=stem_stride, **kwargs)


def demo_digits(num_classes: int = 10, in_channels: int = 1, input_size: int = 28) -> MobileNetV2:
    """Build the demo digit classifier: a reduced MobileNetV2 for 1x28x28 input.

    Stem stride 1 keeps the 28x28 resolution for the first block, then three
    stride-2 stages go 28 -> 14 -> 7 -> 4.  All widths are multiples of 8.
    Returns an untrained model (106,954 parameters at defaults).
    """
    return MobileNetV2(
        num_classes=num_classes,
        width_mult=1.0,
        in_channels=in_channels,
        input_size=input_size,
        stem_stride=1,
        inverted_residual_setting=DEMO_DIGITS_SETTING,
        stem_channels=16,
        last_channel=256,
        dropout=0.1,
    )
