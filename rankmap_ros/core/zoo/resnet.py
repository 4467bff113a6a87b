"""Residual networks: ResNet-12, ResNet-50 (v1.5), ResNet-50 V2 and ResNeXt-50 (32×4d).

A residual block is the smallest piece with a single tensor at both ends (its skip connection
spans the whole block), so each block is one unit. The 50-layer networks have 18 units, as in
ARM-CL partitions: a stem, the 16 bottlenecks named after their stage as in the original Caffe
models (res2a .. res5c) and a global-pooling classification head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

# (bottleneck width for ResNet-50, blocks) of stages res2..res5; outputs are 4× the width.
_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
_EXPANSION = 4


class _Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (grouped for ResNeXt, strided in a stage's first block), 1×1 expand, add, ReLU."""

    def __init__(self, cin: int, width: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_act(cin, width, 1),
            conv_bn_act(width, width, 3, stride=stride, groups=groups),
            conv_bn_act(width, cout, 1, act=None),
        )
        projects = stride != 1 or cin != cout
        self.projection = conv_bn_act(cin, cout, 1, stride=stride, act=None) if projects else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.projection is None else self.projection(x)
        return self.relu(self.body(x) + skip)


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]


class _PreActBottleneck(nn.Module):
    """He et al.'s identity-mapping bottleneck: BN-ReLU before each convolution, nothing after the add.

    A projection shortcut reads the pre-activated input, an identity shortcut the raw input.
    """

    def __init__(self, cin: int, width: int, cout: int, stride: int) -> None:
        super().__init__()
        self.preact = nn.Sequential(*_bn_relu(cin))
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False),
            *_bn_relu(width),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
            *_bn_relu(width),
            nn.Conv2d(width, cout, 1, bias=False),
        )
        projects = stride != 1 or cin != cout
        self.projection = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if projects else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.preact(x)
        skip = x if self.projection is None else self.projection(activated)
        return self.body(activated) + skip


def _stem(batch_norm: bool) -> nn.Sequential:
    """7×7/2 convolution and 3×3/2 max-pool; the pre-activation network normalises inside its blocks."""
    conv = conv_bn_act(3, 64, 7, stride=2) if batch_norm else [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)]
    return nn.Sequential(*conv, nn.MaxPool2d(3, stride=2, padding=1))


def _bottleneck_units(make: Callable[[int, int, int, int], nn.Module], width_factor: int) -> list[UnitDef]:
    """The 16 bottlenecks; `make(cin, width, cout, stride)` builds one, strided first in res3..res5."""
    units: list[UnitDef] = []
    cin = 64
    for stage, (width, blocks) in enumerate(_STAGES, start=2):
        cout = width * _EXPANSION
        for index in range(blocks):
            stride = 2 if index == 0 and stage > 2 else 1
            name = f"res{stage}{'abcdef'[index]}"
            units.append(UnitDef(name, UnitKind.RESIDUAL, make(cin, width * width_factor, cout, stride)))
            cin = cout
    return units


def build_resnet50(num_classes: int = 1000) -> UnitNet:
    """ResNet-50 v1.5: the original post-activation network with the stride on the 3×3 convolution."""
    return UnitNet(
        [
            UnitDef("stem", UnitKind.CONV, _stem(batch_norm=True)),
            *_bottleneck_units(lambda cin, width, cout, stride: _Bottleneck(cin, width, cout, stride, 1), 1),
            UnitDef("head", UnitKind.FC, classifier(2048, num_classes)),
        ]
    )


def build_resnext50(num_classes: int = 1000) -> UnitNet:
    """ResNeXt-50 32×4d: ResNet-50 with 32 groups of 4 channels (2× the width) in each 3×3 convolution."""
    return UnitNet(
        [
            UnitDef("stem", UnitKind.CONV, _stem(batch_norm=True)),
            *_bottleneck_units(lambda cin, width, cout, stride: _Bottleneck(cin, width, cout, stride, 32), 2),
            UnitDef("head", UnitKind.FC, classifier(2048, num_classes)),
        ]
    )


def build_resnet50_v2(num_classes: int = 1000) -> UnitNet:
    """ResNet-50 V2: pre-activation bottlenecks, the final BN-ReLU in the head before pooling."""
    return UnitNet(
        [
            UnitDef("stem", UnitKind.CONV, _stem(batch_norm=False)),
            *_bottleneck_units(_PreActBottleneck, 1),
            UnitDef("head", UnitKind.FC, nn.Sequential(*_bn_relu(2048), *classifier(2048, num_classes))),
        ]
    )


def _conv3x3_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]


class _ResNet12Block(nn.Module):
    """Three 3×3 conv-BN(-LeakyReLU) layers plus a 1×1 conv-BN shortcut, then LeakyReLU and a 2×2 max-pool."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv3x3_bn(cin, cout),
            nn.LeakyReLU(0.1, inplace=True),
            *_conv3x3_bn(cout, cout),
            nn.LeakyReLU(0.1, inplace=True),
            *_conv3x3_bn(cout, cout),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.out = nn.Sequential(nn.LeakyReLU(0.1, inplace=True), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


def build_resnet12(num_classes: int = 1000) -> UnitNet:
    """The few-shot-learning ResNet-12 (84×84 inputs) with a global-pooling linear head; DropBlock is training-only."""
    units: list[UnitDef] = []
    cin = 3
    for index, width in enumerate((64, 160, 320, 640), start=1):
        units.append(UnitDef(f"block{index}", UnitKind.RESIDUAL, _ResNet12Block(cin, width)))
        cin = width
    units.append(UnitDef("head", UnitKind.FC, classifier(cin, num_classes)))
    return UnitNet(units)


_RESNET = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016."

SPECS = (
    ModelSpec(
        name="resnet12",
        title="ResNet-12",
        input_shape=(3, 84, 84),
        build=build_resnet12,
        reference=(
            "Oreshkin, Rodriguez, Lacoste. TADAM: Task dependent adaptive metric for improved few-shot learning. "
            "NeurIPS 2018; Lee, Maji, Ravichandran, Soatto. Meta-Learning with Differentiable Convex Optimization "
            "(MetaOptNet). CVPR 2019."
        ),
    ),
    ModelSpec(
        name="resnet50",
        title="ResNet-50",
        input_shape=(3, 224, 224),
        build=build_resnet50,
        reference=_RESNET,
        aliases=("ResNet-50-V1", "ResNet-50-V1.5"),
    ),
    ModelSpec(
        name="resnet50_v2",
        title="ResNet-50-V2",
        input_shape=(3, 224, 224),
        build=build_resnet50_v2,
        reference="He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016.",
        aliases=("ResNet-V2-50", "PreAct-ResNet-50"),
    ),
    ModelSpec(
        name="resnext50",
        title="ResNeXt-50",
        input_shape=(3, 224, 224),
        build=build_resnext50,
        reference="Xie, Girshick, Dollár, Tu, He. Aggregated Residual Transformations for Deep Neural Networks. "
        "CVPR 2017.",
        aliases=("ResNeXt-50-32x4d",),
    ),
)
