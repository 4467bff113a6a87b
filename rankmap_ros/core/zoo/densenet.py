"""DenseNet-121 and DenseNet-169 (Huang et al., 2017; DenseNet-BC, growth rate 32, compression 0.5).

Every dense layer reads the concatenation of all feature maps before it in its block, so that
running concatenation is the one tensor flowing between dense layers and a block can be cut
between any two of them. Units: the stem, each dense block split into equal groups of
consecutive dense layers (each takes the running concatenation and returns it extended by 32
channels per layer), the transitions, and the head. Early blocks run at high resolution and cost
the most per layer, so they get smaller groups, which keeps the units' MACs within a few times of
each other: 17 units for DenseNet-121, 19 for DenseNet-169.
"""

from __future__ import annotations

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

_GROWTH = 32
_BOTTLENECK = 4  # the 1×1 convolution of a dense layer outputs 4 × growth channels


def _bn_relu_conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    """DenseNet's pre-activation composite function."""
    return [
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
    ]


class _DenseGroup(nn.Module):
    """Consecutive dense layers: each appends its `growth` new channels to the running concatenation."""

    def __init__(self, cin: int, layers: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                *_bn_relu_conv(cin + i * growth, _BOTTLENECK * growth, 1),
                *_bn_relu_conv(_BOTTLENECK * growth, growth, 3),
            )
            for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x


def build_densenet(blocks: tuple[int, ...], groups: tuple[int, ...], num_classes: int = 1000) -> UnitNet:
    """`blocks[i]` dense layers in block i, cut into `groups[i]` units of equal length."""
    stem = nn.Sequential(*conv_bn_act(3, 2 * _GROWTH, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
    units = [UnitDef("stem", UnitKind.CONV, stem)]
    channels = 2 * _GROWTH
    for block, (layers, parts) in enumerate(zip(blocks, groups, strict=True), start=1):
        if layers % parts:
            raise ValueError(f"dense block {block} has {layers} layers, which {parts} equal groups cannot hold")
        for part in range(1, parts + 1):
            group = _DenseGroup(channels, layers // parts, _GROWTH)
            units.append(UnitDef(f"dense{block}_{part}", UnitKind.DENSE, group))
            channels += layers // parts * _GROWTH
        if block < len(blocks):
            transition = nn.Sequential(*_bn_relu_conv(channels, channels // 2, 1), nn.AvgPool2d(2, stride=2))
            units.append(UnitDef(f"transition{block}", UnitKind.TRANSITION, transition))
            channels //= 2
    head = nn.Sequential(
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(channels, num_classes),
    )
    units.append(UnitDef("head", UnitKind.FC, head))
    return UnitNet(units)


def build_densenet121() -> UnitNet:
    return build_densenet((6, 12, 24, 16), (3, 3, 4, 2))


def build_densenet169() -> UnitNet:
    return build_densenet((6, 12, 32, 32), (3, 3, 4, 4))


_REFERENCE = "Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017."

SPECS = (
    ModelSpec(
        name="densenet121",
        title="DenseNet-121",
        input_shape=(3, 224, 224),
        build=build_densenet121,
        reference=_REFERENCE,
    ),
    ModelSpec(
        name="densenet169",
        title="DenseNet-169",
        input_shape=(3, 224, 224),
        build=build_densenet169,
        reference=_REFERENCE,
    ),
)
