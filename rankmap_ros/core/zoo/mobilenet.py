"""MobileNet V1 (Howard et al., 2017) and MobileNet-V2 (Sandler et al., 2018), both at width 1.0.

V1 has 15 units, the OmniBoost figure: the stem convolution, the 13 depthwise-separable blocks
(a depthwise layer alone is too cheap to be worth a pipeline stage, so it stays with its pointwise
layer) and the pooling + fc head. V2 has 20: the stem, one unit per inverted-residual block (its
skip connection spans the whole block), the final 1×1 convolution to 1280 channels and the head.
"""

from __future__ import annotations

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

# (output channels, stride) of V1's 13 depthwise-separable blocks (Table 1 of the paper);
# SSD-MobileNet reuses them.
V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
V1_STEM_CHANNELS = 32

# (expansion t, output channels c, repeats n, first stride s) of V2's bottleneck stages (Table 2).
_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def depthwise_separable(cin: int, cout: int, stride: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """3×3 depthwise then 1×1 pointwise convolution, each followed by batch norm and `act`."""
    return nn.Sequential(
        conv_bn_act(cin, cin, 3, stride=stride, groups=cin, act=act),
        conv_bn_act(cin, cout, 1, act=act),
    )


class _InvertedResidual(nn.Module):
    """1×1 expansion (skipped when t = 1), 3×3 depthwise, linear 1×1 projection; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [conv_bn_act(cin, hidden, 1, act=nn.ReLU6)] if expansion != 1 else []
        layers += [
            conv_bn_act(hidden, hidden, 3, stride=stride, groups=hidden, act=nn.ReLU6),
            conv_bn_act(hidden, cout, 1, act=None),
        ]
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


def build_mobilenet(num_classes: int = 1000) -> UnitNet:
    units = [UnitDef("conv1", UnitKind.CONV, conv_bn_act(3, V1_STEM_CHANNELS, 3, stride=2))]
    cin = V1_STEM_CHANNELS
    for index, (cout, stride) in enumerate(V1_BLOCKS, start=1):
        units.append(UnitDef(f"dwsep{index}", UnitKind.DWCONV, depthwise_separable(cin, cout, stride)))
        cin = cout
    units.append(UnitDef("head", UnitKind.FC, classifier(cin, num_classes)))
    return UnitNet(units)


def build_mobilenet_v2(num_classes: int = 1000) -> UnitNet:
    units = [UnitDef("stem", UnitKind.CONV, conv_bn_act(3, 32, 3, stride=2, act=nn.ReLU6))]
    cin = 32
    for expansion, cout, repeats, first_stride in _V2_STAGES:
        for index in range(repeats):
            stride = first_stride if index == 0 else 1
            block = _InvertedResidual(cin, cout, stride, expansion)
            units.append(UnitDef(f"block{len(units)}", UnitKind.MBCONV, block))
            cin = cout
    units.append(UnitDef("conv_last", UnitKind.CONV, conv_bn_act(cin, 1280, 1, act=nn.ReLU6)))
    units.append(UnitDef("head", UnitKind.FC, classifier(1280, num_classes, dropout=0.2)))
    return UnitNet(units)


SPECS = (
    ModelSpec(
        name="mobilenet",
        title="MobileNet",
        input_shape=(3, 224, 224),
        build=build_mobilenet,
        reference=(
            "Howard et al. MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications. "
            "arXiv:1704.04861, 2017."
        ),
        aliases=("mobilenet_v1", "MobileNet V1", "mobilenet_v1_1.0_224"),
    ),
    ModelSpec(
        name="mobilenet_v2",
        title="MobileNet-V2",
        input_shape=(3, 224, 224),
        build=build_mobilenet_v2,
        reference="Sandler et al. MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR 2018.",
        aliases=("mobilenet_v2_1.0_224",),
    ),
)
