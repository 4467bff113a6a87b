"""AlexNet (Krizhevsky et al., 2012; the single-GPU variant), 8 units: one per weighted layer."""

from __future__ import annotations

from torch import nn

from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet


def build_alexnet(num_classes: int = 1000) -> UnitNet:
    pool = nn.MaxPool2d(3, stride=2)
    return UnitNet(
        [
            UnitDef(
                "conv1",
                UnitKind.CONV,
                nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), pool),
            ),
            UnitDef(
                "conv2",
                UnitKind.CONV,
                nn.Sequential(nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)),
            ),
            UnitDef("conv3", UnitKind.CONV, nn.Sequential(nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True))),
            UnitDef("conv4", UnitKind.CONV, nn.Sequential(nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True))),
            UnitDef(
                "conv5",
                UnitKind.CONV,
                nn.Sequential(nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2)),
            ),
            UnitDef(
                "fc6",
                UnitKind.FC,
                nn.Sequential(nn.Flatten(1), nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True)),
            ),
            UnitDef("fc7", UnitKind.FC, nn.Sequential(nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True))),
            UnitDef("fc8", UnitKind.FC, nn.Linear(4096, num_classes)),
        ]
    )


SPECS = (
    ModelSpec(
        name="alexnet",
        title="AlexNet",
        input_shape=(3, 227, 227),
        build=build_alexnet,
        reference="Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep CNNs. NeurIPS 2012.",
    ),
)
