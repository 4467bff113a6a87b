"""Inception-V4 (Szegedy et al., 2017), 23 units: six stem units, fourteen Inception and
Reduction blocks, one head.

The stem (Figure 3 of the paper) is cut after each of its three plain convolutions and after each
of its three filter concatenations: every single-tensor point inside it.
"""

from __future__ import annotations

from torch import nn

from rankmap_ros.core.zoo.googlenet import Branches
from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet


def _valid(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution without padding (the paper's "V")."""
    return conv_bn_act(cin, cout, 3, stride=stride, padding=0)


def _avg_proj(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn_act(cin, cout, 1))


def _stem_concat_1() -> Branches:
    """147x147x64 -> 73x73x160: max pool beside a stride-2 convolution."""
    return Branches([nn.MaxPool2d(3, stride=2), _valid(64, 96, stride=2)])


def _stem_concat_2() -> Branches:
    """73x73x160 -> 71x71x192: a 3x3 tower beside a factored 7x7 tower."""
    return Branches(
        [
            nn.Sequential(conv_bn_act(160, 64, 1), _valid(64, 96)),
            nn.Sequential(
                conv_bn_act(160, 64, 1),
                conv_bn_act(64, 64, (7, 1)),
                conv_bn_act(64, 64, (1, 7)),
                _valid(64, 96),
            ),
        ]
    )


def _stem_concat_3() -> Branches:
    """71x71x192 -> 35x35x384."""
    return Branches([_valid(192, 192, stride=2), nn.MaxPool2d(3, stride=2)])


def _inception_a(cin: int = 384) -> Branches:
    """35x35 block (Figure 4), 384 channels in and out."""
    return Branches(
        [
            _avg_proj(cin, 96),
            conv_bn_act(cin, 96, 1),
            nn.Sequential(conv_bn_act(cin, 64, 1), conv_bn_act(64, 96, 3)),
            nn.Sequential(conv_bn_act(cin, 64, 1), conv_bn_act(64, 96, 3), conv_bn_act(96, 96, 3)),
        ]
    )


def _reduction_a(cin: int = 384) -> Branches:
    """35x35 -> 17x17 (Figure 7) with Inception-V4's filter counts from Table 1: k, l, m, n = 192, 224, 256, 384."""
    return Branches(
        [
            nn.MaxPool2d(3, stride=2),
            _valid(cin, 384, stride=2),
            nn.Sequential(conv_bn_act(cin, 192, 1), conv_bn_act(192, 224, 3), _valid(224, 256, stride=2)),
        ]
    )


def _inception_b(cin: int = 1024) -> Branches:
    """17x17 block (Figure 5), 1024 channels in and out."""
    return Branches(
        [
            _avg_proj(cin, 128),
            conv_bn_act(cin, 384, 1),
            nn.Sequential(conv_bn_act(cin, 192, 1), conv_bn_act(192, 224, (1, 7)), conv_bn_act(224, 256, (7, 1))),
            nn.Sequential(
                conv_bn_act(cin, 192, 1),
                conv_bn_act(192, 192, (1, 7)),
                conv_bn_act(192, 224, (7, 1)),
                conv_bn_act(224, 224, (1, 7)),
                conv_bn_act(224, 256, (7, 1)),
            ),
        ]
    )


def _reduction_b(cin: int = 1024) -> Branches:
    """17x17 -> 8x8 (Figure 8)."""
    return Branches(
        [
            nn.MaxPool2d(3, stride=2),
            nn.Sequential(conv_bn_act(cin, 192, 1), _valid(192, 192, stride=2)),
            nn.Sequential(
                conv_bn_act(cin, 256, 1),
                conv_bn_act(256, 256, (1, 7)),
                conv_bn_act(256, 320, (7, 1)),
                _valid(320, 320, stride=2),
            ),
        ]
    )


def _split_1x3_3x1(cin: int) -> Branches:
    return Branches([conv_bn_act(cin, 256, (1, 3)), conv_bn_act(cin, 256, (3, 1))])


def _inception_c(cin: int = 1536) -> Branches:
    """8x8 block (Figure 6), 1536 channels in and out."""
    return Branches(
        [
            _avg_proj(cin, 256),
            conv_bn_act(cin, 256, 1),
            nn.Sequential(conv_bn_act(cin, 384, 1), _split_1x3_3x1(384)),
            nn.Sequential(
                conv_bn_act(cin, 384, 1),
                conv_bn_act(384, 448, (1, 3)),
                conv_bn_act(448, 512, (3, 1)),
                _split_1x3_3x1(512),
            ),
        ]
    )


def build_inception_v4(num_classes: int = 1000) -> UnitNet:
    units = [
        UnitDef("conv1", UnitKind.CONV, _valid(3, 32, stride=2)),
        UnitDef("conv2", UnitKind.CONV, _valid(32, 32)),
        UnitDef("conv3", UnitKind.CONV, conv_bn_act(32, 64, 3)),
        UnitDef("mixed_3a", UnitKind.INCEPTION, _stem_concat_1()),
        UnitDef("mixed_4a", UnitKind.INCEPTION, _stem_concat_2()),
        UnitDef("mixed_5a", UnitKind.INCEPTION, _stem_concat_3()),
    ]
    units += [UnitDef(f"inception_a{i}", UnitKind.INCEPTION, _inception_a()) for i in range(1, 5)]
    units.append(UnitDef("reduction_a", UnitKind.INCEPTION, _reduction_a()))
    units += [UnitDef(f"inception_b{i}", UnitKind.INCEPTION, _inception_b()) for i in range(1, 8)]
    units.append(UnitDef("reduction_b", UnitKind.INCEPTION, _reduction_b()))
    units += [UnitDef(f"inception_c{i}", UnitKind.INCEPTION, _inception_c()) for i in range(1, 4)]
    units.append(UnitDef("head", UnitKind.FC, classifier(1536, num_classes, dropout=0.2)))
    return UnitNet(units)


SPECS = (
    ModelSpec(
        name="inception_v4",
        title="Inception-V4",
        input_shape=(3, 299, 299),
        build=build_inception_v4,
        reference=(
            "Szegedy, Ioffe, Vanhoucke, Alemi. Inception-v4, Inception-ResNet and the Impact of Residual "
            "Connections on Learning. AAAI 2017."
        ),
    ),
)
