"""Inception-V3 (Szegedy et al., 2016), 17 units: five stem units, eleven Mixed blocks, one head.

The stem is cut at each of its five convolutions (a max pool rides with the convolution before it),
which gives the 17 units of ARM-CL/OmniBoost-style partitioning and spreads the stem's ~1.3 GMACs
over several units. The auxiliary classifier is training-only and left out.
"""

from __future__ import annotations

from torch import nn

from rankmap_ros.core.zoo.googlenet import Branches
from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet


def _avg_proj(cin: int, cout: int) -> nn.Sequential:
    """The pooling branch: 3x3 average pool, then a 1x1 projection."""
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn_act(cin, cout, 1))


def _mixed_35(cin: int, pool_features: int) -> Branches:
    """35x35 module (Mixed_5b..5d): the 5x5 of Inception-V1 kept, the 5x5 tower factored into two 3x3."""
    return Branches(
        [
            conv_bn_act(cin, 64, 1),
            nn.Sequential(conv_bn_act(cin, 48, 1), conv_bn_act(48, 64, 5)),
            nn.Sequential(conv_bn_act(cin, 64, 1), conv_bn_act(64, 96, 3), conv_bn_act(96, 96, 3)),
            _avg_proj(cin, pool_features),
        ]
    )


def _reduce_35_to_17(cin: int) -> Branches:
    """Mixed_6a: stride-2 convolutions beside a max pool, so the grid shrinks without a bottleneck."""
    return Branches(
        [
            conv_bn_act(cin, 384, 3, stride=2, padding=0),
            nn.Sequential(conv_bn_act(cin, 64, 1), conv_bn_act(64, 96, 3), conv_bn_act(96, 96, 3, stride=2, padding=0)),
            nn.MaxPool2d(3, stride=2),
        ]
    )


def _mixed_17(cin: int, c7: int) -> Branches:
    """17x17 module (Mixed_6b..6e): 7x7 convolutions factored into 1x7 and 7x1."""
    return Branches(
        [
            conv_bn_act(cin, 192, 1),
            nn.Sequential(conv_bn_act(cin, c7, 1), conv_bn_act(c7, c7, (1, 7)), conv_bn_act(c7, 192, (7, 1))),
            nn.Sequential(
                conv_bn_act(cin, c7, 1),
                conv_bn_act(c7, c7, (7, 1)),
                conv_bn_act(c7, c7, (1, 7)),
                conv_bn_act(c7, c7, (7, 1)),
                conv_bn_act(c7, 192, (1, 7)),
            ),
            _avg_proj(cin, 192),
        ]
    )


def _reduce_17_to_8(cin: int) -> Branches:
    """Mixed_7a: the second grid reduction."""
    return Branches(
        [
            nn.Sequential(conv_bn_act(cin, 192, 1), conv_bn_act(192, 320, 3, stride=2, padding=0)),
            nn.Sequential(
                conv_bn_act(cin, 192, 1),
                conv_bn_act(192, 192, (1, 7)),
                conv_bn_act(192, 192, (7, 1)),
                conv_bn_act(192, 192, 3, stride=2, padding=0),
            ),
            nn.MaxPool2d(3, stride=2),
        ]
    )


def _mixed_8(cin: int) -> Branches:
    """8x8 module (Mixed_7b, 7c): 3x3 split into parallel 1x3 and 3x1 to widen the coarsest grid."""
    return Branches(
        [
            conv_bn_act(cin, 320, 1),
            nn.Sequential(
                conv_bn_act(cin, 384, 1),
                Branches([conv_bn_act(384, 384, (1, 3)), conv_bn_act(384, 384, (3, 1))]),
            ),
            nn.Sequential(
                conv_bn_act(cin, 448, 1),
                conv_bn_act(448, 384, 3),
                Branches([conv_bn_act(384, 384, (1, 3)), conv_bn_act(384, 384, (3, 1))]),
            ),
            _avg_proj(cin, 192),
        ]
    )


def build_inception_v3(num_classes: int = 1000) -> UnitNet:
    pool = nn.MaxPool2d(3, stride=2)
    stem = [
        UnitDef("conv2d_1a", UnitKind.CONV, conv_bn_act(3, 32, 3, stride=2, padding=0)),
        UnitDef("conv2d_2a", UnitKind.CONV, conv_bn_act(32, 32, 3, padding=0)),
        UnitDef("conv2d_2b", UnitKind.CONV, nn.Sequential(conv_bn_act(32, 64, 3), pool)),
        UnitDef("conv2d_3b", UnitKind.CONV, conv_bn_act(64, 80, 1)),
        UnitDef("conv2d_4a", UnitKind.CONV, nn.Sequential(conv_bn_act(80, 192, 3, padding=0), nn.MaxPool2d(3, 2))),
    ]
    blocks = [
        UnitDef("mixed_5b", UnitKind.INCEPTION, _mixed_35(192, 32)),
        UnitDef("mixed_5c", UnitKind.INCEPTION, _mixed_35(256, 64)),
        UnitDef("mixed_5d", UnitKind.INCEPTION, _mixed_35(288, 64)),
        UnitDef("mixed_6a", UnitKind.INCEPTION, _reduce_35_to_17(288)),
        UnitDef("mixed_6b", UnitKind.INCEPTION, _mixed_17(768, 128)),
        UnitDef("mixed_6c", UnitKind.INCEPTION, _mixed_17(768, 160)),
        UnitDef("mixed_6d", UnitKind.INCEPTION, _mixed_17(768, 160)),
        UnitDef("mixed_6e", UnitKind.INCEPTION, _mixed_17(768, 192)),
        UnitDef("mixed_7a", UnitKind.INCEPTION, _reduce_17_to_8(768)),
        UnitDef("mixed_7b", UnitKind.INCEPTION, _mixed_8(1280)),
        UnitDef("mixed_7c", UnitKind.INCEPTION, _mixed_8(2048)),
    ]
    head = UnitDef("head", UnitKind.FC, classifier(2048, num_classes, dropout=0.5))
    return UnitNet([*stem, *blocks, head])


SPECS = (
    ModelSpec(
        name="inception_v3",
        title="Inception-V3",
        input_shape=(3, 299, 299),
        build=build_inception_v3,
        reference="Szegedy et al. Rethinking the Inception Architecture for Computer Vision. CVPR 2016.",
    ),
)
