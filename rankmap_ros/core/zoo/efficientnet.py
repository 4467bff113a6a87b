"""EfficientNet-B0, B1 and B2 (Tan & Le, 2019).

Units: the stem, one unit per MBConv block (its skip connection and squeeze-excitation stay
inside it), the final 1×1 convolution and the pooling + fc head: 19 units for B0 and 26 for B1
and B2 (depth 1.1 and 1.2 both round every stage up to the same repeat counts).
Channels and repeats are scaled as in the paper's reference implementation: channels rounded to
a multiple of 8 (never more than 10% below the scaled value), repeats rounded up. There is no
stochastic depth: it only acts in training.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

# (expansion, kernel, first stride, output channels, repeats) of B0's seven MBConv stages (Table 1).
_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_SE_RATIO = 0.25
_DIVISOR = 8


def _round_channels(channels: int, width: float) -> int:
    scaled = channels * width
    rounded = max(_DIVISOR, int(scaled + _DIVISOR / 2) // _DIVISOR * _DIVISOR)
    return rounded + _DIVISOR if rounded < 0.9 * scaled else rounded


class _SqueezeExcite(nn.Module):
    """Global pool, 1×1 reduce, SiLU, 1×1 expand, sigmoid: a per-channel gate on the input."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, reduced, 1),
            nn.SiLU(inplace=True),
            nn.Conv2d(reduced, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class _MBConv(nn.Module):
    """1×1 expansion (skipped when the ratio is 1), k×k depthwise, squeeze-excitation, linear 1×1 projection.

    The squeeze width is a quarter of the block's input channels, as in the reference implementation.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [conv_bn_act(cin, hidden, 1, act=nn.SiLU)] if expansion != 1 else []
        layers += [
            conv_bn_act(hidden, hidden, kernel, stride=stride, groups=hidden, act=nn.SiLU),
            _SqueezeExcite(hidden, max(1, int(cin * _SE_RATIO))),
            conv_bn_act(hidden, cout, 1, act=None),
        ]
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


def build_efficientnet(width: float, depth: float, dropout: float, num_classes: int = 1000) -> UnitNet:
    stem = _round_channels(32, width)
    units = [UnitDef("stem", UnitKind.CONV, conv_bn_act(3, stem, 3, stride=2, act=nn.SiLU))]
    cin = stem
    for stage, (expansion, kernel, first_stride, channels, repeats) in enumerate(_B0_STAGES, start=1):
        cout = _round_channels(channels, width)
        for index in range(math.ceil(depth * repeats)):
            block = _MBConv(cin, cout, kernel, first_stride if index == 0 else 1, expansion)
            units.append(UnitDef(f"block{stage}_{index + 1}", UnitKind.MBCONV, block))
            cin = cout
    top = _round_channels(1280, width)
    units.append(UnitDef("conv_last", UnitKind.CONV, conv_bn_act(cin, top, 1, act=nn.SiLU)))
    units.append(UnitDef("head", UnitKind.FC, classifier(top, num_classes, dropout=dropout)))
    return UnitNet(units)


_REFERENCE = "Tan, Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks. ICML 2019."

# (suffix, width, depth, input resolution, dropout) from the reference implementation's table.
_VARIANTS = (("b0", 1.0, 1.0, 224, 0.2), ("b1", 1.0, 1.1, 240, 0.2), ("b2", 1.1, 1.2, 260, 0.3))

SPECS = tuple(
    ModelSpec(
        name=f"efficientnet_{suffix}",
        title=f"EfficientNet-{suffix.upper()}",
        input_shape=(3, size, size),
        build=partial(build_efficientnet, width, depth, dropout),
        reference=_REFERENCE,
    )
    for suffix, width, depth, size, dropout in _VARIANTS
)
