"""VGG-16 and VGG-19 (Simonyan & Zisserman, 2015; configs D and E, no batch norm).

One unit per weighted layer, as ARM-CL partitions them: each 3×3 convolution (a max-pool lives in
the unit of the convolution it follows) and each of the three fully connected layers.
"""

from __future__ import annotations

from torch import nn

from rankmap_ros.core.zoo.layers import conv_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

# Convolutions per stage; every stage has 3×3 convolutions of one width and ends in a 2×2 max-pool.
_WIDTHS = (64, 128, 256, 512, 512)
_DEPTHS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def build_vgg(depth: int, num_classes: int = 1000) -> UnitNet:
    units: list[UnitDef] = []
    cin = 3
    for stage, (width, convs) in enumerate(zip(_WIDTHS, _DEPTHS[depth], strict=True), start=1):
        for index in range(1, convs + 1):
            layers: list[nn.Module] = list(conv_act(cin, width, 3, padding=1))
            if index == convs:
                layers.append(nn.MaxPool2d(2, stride=2))
            units.append(UnitDef(f"conv{stage}_{index}", UnitKind.CONV, nn.Sequential(*layers)))
            cin = width
    units += [
        UnitDef(
            "fc6",
            UnitKind.FC,
            nn.Sequential(nn.Flatten(1), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5)),
        ),
        UnitDef("fc7", UnitKind.FC, nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5))),
        UnitDef("fc8", UnitKind.FC, nn.Linear(4096, num_classes)),
    ]
    return UnitNet(units)


def build_vgg16() -> UnitNet:
    return build_vgg(16)


def build_vgg19() -> UnitNet:
    return build_vgg(19)


_REFERENCE = "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. ICLR 2015."

SPECS = (
    ModelSpec(
        name="vgg16",
        title="VGG-16",
        input_shape=(3, 224, 224),
        build=build_vgg16,
        reference=_REFERENCE,
        aliases=("VGG-D",),
    ),
    ModelSpec(
        name="vgg19",
        title="VGG-19",
        input_shape=(3, 224, 224),
        build=build_vgg19,
        reference=_REFERENCE,
        aliases=("VGG-E",),
    ),
)
