"""Inception-ResNet-V1 and -V2 (Szegedy et al., 2017): residual Inception blocks as units.

V1 has one unit per block (28 units); V2, with twice the blocks, two per unit (29 units), which
keeps it within the estimator's `DEFAULT_MAX_UNITS` rows.

Each residual block is `relu(x + scale * up(concat(branches(x))))`, where `up` is a linear 1x1
convolution restoring the trunk width and `scale` is the residual scaling the paper uses to keep
training stable (0.17, 0.1 and 0.2 for the 35x35, 17x17 and 8x8 blocks, the values of the released
models; the paper only says 0.1 to 0.3).

V1 follows the paper's figures 7 and 10-14: 5 + 10 + 5 blocks, each closed by a ReLU. (FaceNet's
model, which ARM-CL's graph example runs, adds a sixth, linear 8x8 block and a 128-d embedding.)
V2 follows the released TF-slim model, which ARM-CL's graph example runs and which the published
55.8M parameters describe. It differs from the paper's schema: Inception-V3's stem convolutions and
a 320-channel Mixed_5b instead of Inception-V4's stem, trunk widths 1088 and 2080, twice the blocks
(10 + 20 + 10, the last one linear and unscaled) and a final 1x1 convolution to 1536 channels. The
paper's 5 + 10 + 5 schema would have about 34M parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from rankmap_ros.core.zoo.googlenet import Branches
from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

_REFERENCE = (
    "Szegedy, Ioffe, Vanhoucke, Alemi. Inception-v4, Inception-ResNet and the Impact of Residual "
    "Connections on Learning. AAAI 2017."
)


class _ResidualInception(nn.Module):
    """Inception branches whose concatenation, projected back to the trunk width and scaled, is added to the input."""

    def __init__(self, branches: Branches, width: int, channels: int, scale: float, relu: bool) -> None:
        super().__init__()
        self.branches = branches
        self.up = nn.Conv2d(width, channels, 1)
        self.scale = scale
        self.act: nn.Module = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.scale * self.up(self.branches(x)))


def _valid(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution without padding (the paper's "V")."""
    return conv_bn_act(cin, cout, 3, stride=stride, padding=0)


def _conv_stem(*after_4a: nn.Module) -> list[UnitDef]:
    """The convolutional stem both versions share (299x299 -> 71x71x192), then the `after_4a` layers.

    Cut at the convolutions as Inception-V3's stem is; the cheap 1x1 Conv2d_3b rides with Conv2d_4a.
    """
    return [
        UnitDef("conv2d_1a", UnitKind.CONV, _valid(3, 32, stride=2)),
        UnitDef("conv2d_2a", UnitKind.CONV, _valid(32, 32)),
        UnitDef("conv2d_2b", UnitKind.CONV, nn.Sequential(conv_bn_act(32, 64, 3), nn.MaxPool2d(3, 2))),
        UnitDef("conv2d_4a", UnitKind.CONV, nn.Sequential(conv_bn_act(64, 80, 1), _valid(80, 192), *after_4a)),
    ]


def _block35(cin: int, tower: tuple[int, int, int]) -> _ResidualInception:
    """35x35 block: 1x1 32; 1x1 32 -> 3x3 32; and the 1x1 -> 3x3 -> 3x3 `tower`."""
    a, b, c = tower
    branches = Branches(
        [
            conv_bn_act(cin, 32, 1),
            nn.Sequential(conv_bn_act(cin, 32, 1), conv_bn_act(32, 32, 3)),
            nn.Sequential(conv_bn_act(cin, a, 1), conv_bn_act(a, b, 3), conv_bn_act(b, c, 3)),
        ]
    )
    return _ResidualInception(branches, 64 + c, cin, 0.17, relu=True)


def _block17(cin: int, c0: int, tower: tuple[int, int, int]) -> _ResidualInception:
    """17x17 block: 1x1 beside a 1x1 -> 1x7 -> 7x1 tower."""
    a, b, c = tower
    branches = Branches(
        [
            conv_bn_act(cin, c0, 1),
            nn.Sequential(conv_bn_act(cin, a, 1), conv_bn_act(a, b, (1, 7)), conv_bn_act(b, c, (7, 1))),
        ]
    )
    return _ResidualInception(branches, c0 + c, cin, 0.1, relu=True)


def _block8(cin: int, tower: tuple[int, int, int], last: bool = False) -> _ResidualInception:
    """8x8 block: 1x1 192 beside a 1x1 -> 1x3 -> 3x1 tower; V2's `last` one is linear and unscaled."""
    a, b, c = tower
    branches = Branches(
        [
            conv_bn_act(cin, 192, 1),
            nn.Sequential(conv_bn_act(cin, a, 1), conv_bn_act(a, b, (1, 3)), conv_bn_act(b, c, (3, 1))),
        ]
    )
    return _ResidualInception(branches, 192 + c, cin, 1.0 if last else 0.2, relu=not last)


def _reduction_a(cin: int, klmn: tuple[int, int, int, int]) -> Branches:
    """35x35 -> 17x17 (Figure 7, filter counts k, l, m, n from Table 1)."""
    k, l_, m, n = klmn
    return Branches(
        [
            _valid(cin, n, stride=2),
            nn.Sequential(conv_bn_act(cin, k, 1), conv_bn_act(k, l_, 3), _valid(l_, m, stride=2)),
            nn.MaxPool2d(3, stride=2),
        ]
    )


def _reduction_b(cin: int, widths: tuple[int, int, int, int]) -> Branches:
    """17x17 -> 8x8 (Figures 12, 18): three 1x1 256-reduced stride-2 towers beside a max pool."""
    a, b, c, d = widths
    return Branches(
        [
            nn.Sequential(conv_bn_act(cin, 256, 1), _valid(256, a, stride=2)),
            nn.Sequential(conv_bn_act(cin, 256, 1), _valid(256, b, stride=2)),
            nn.Sequential(conv_bn_act(cin, 256, 1), conv_bn_act(256, c, 3), _valid(c, d, stride=2)),
            nn.MaxPool2d(3, stride=2),
        ]
    )


def _residual_units(prefix: str, blocks: list[_ResidualInception], per_unit: int) -> list[UnitDef]:
    """Consecutive residual blocks, `per_unit` of them to a unit (named after the blocks it holds)."""
    units = []
    for i in range(0, len(blocks), per_unit):
        group = blocks[i : i + per_unit]
        if per_unit == 1:
            units.append(UnitDef(f"{prefix}_{i + 1}", UnitKind.RESIDUAL, group[0]))
        else:
            units.append(UnitDef(f"{prefix}_{i + 1}_{i + per_unit}", UnitKind.RESIDUAL, nn.Sequential(*group)))
    return units


def _trunk(
    a: list[_ResidualInception],
    red_a: Branches,
    b: list[_ResidualInception],
    red_b: Branches,
    c: list[_ResidualInception],
    *,
    per_unit: int,
) -> list[UnitDef]:
    return [
        *_residual_units("block35", a, per_unit),
        UnitDef("reduction_a", UnitKind.INCEPTION, red_a),
        *_residual_units("block17", b, per_unit),
        UnitDef("reduction_b", UnitKind.INCEPTION, red_b),
        *_residual_units("block8", c, per_unit),
    ]


def build_inception_resnet_v1(num_classes: int = 1000) -> UnitNet:
    """28 units: five stem units, 5 + 1 + 10 + 1 + 5 blocks, head; trunk widths 256, 896, 1792."""
    stem = [*_conv_stem(), UnitDef("conv2d_4b", UnitKind.CONV, _valid(192, 256, stride=2))]
    trunk = _trunk(
        [_block35(256, (32, 32, 32)) for _ in range(5)],
        _reduction_a(256, (192, 192, 256, 384)),
        [_block17(896, 128, (128, 128, 128)) for _ in range(10)],
        _reduction_b(896, (384, 256, 256, 256)),
        [_block8(1792, (192, 192, 192)) for _ in range(5)],
        per_unit=1,
    )
    head = UnitDef("head", UnitKind.FC, classifier(1792, num_classes, dropout=0.2))
    return UnitNet([*stem, *trunk, head])


def _mixed_5b() -> Branches:
    """Inception-V3-style 35x35 module widening 192 to 320 channels (TF-slim's Mixed_5b)."""
    return Branches(
        [
            conv_bn_act(192, 96, 1),
            nn.Sequential(conv_bn_act(192, 48, 1), conv_bn_act(48, 64, 5)),
            nn.Sequential(conv_bn_act(192, 64, 1), conv_bn_act(64, 96, 3), conv_bn_act(96, 96, 3)),
            nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), conv_bn_act(192, 64, 1)),
        ]
    )


def build_inception_resnet_v2(num_classes: int = 1000) -> UnitNet:
    """29 units: four stem units, Mixed_5b, 5 + 1 + 10 + 1 + 5 units, the 1x1 to 1536, head.

    The 40 residual blocks go two to a unit: one per block would make 49 units, more than the
    estimator's Q tensor holds (`DEFAULT_MAX_UNITS`), and pairs keep the units balanced.
    """
    stem = [*_conv_stem(nn.MaxPool2d(3, 2)), UnitDef("mixed_5b", UnitKind.INCEPTION, _mixed_5b())]
    trunk = _trunk(
        [_block35(320, (32, 48, 64)) for _ in range(10)],
        _reduction_a(320, (256, 256, 384, 384)),
        [_block17(1088, 192, (128, 160, 192)) for _ in range(20)],
        _reduction_b(1088, (384, 288, 288, 320)),
        [_block8(2080, (192, 224, 256), last=i == 9) for i in range(10)],
        per_unit=2,
    )
    tail = [
        UnitDef("conv_7b", UnitKind.CONV, conv_bn_act(2080, 1536, 1)),
        UnitDef("head", UnitKind.FC, classifier(1536, num_classes, dropout=0.2)),
    ]
    return UnitNet([*stem, *trunk, *tail])


SPECS = (
    ModelSpec(
        name="inception_resnet_v1",
        title="Inception-ResNet-V1",
        input_shape=(3, 299, 299),
        build=build_inception_resnet_v1,
        reference=_REFERENCE,
    ),
    ModelSpec(
        name="inception_resnet_v2",
        title="Inception-ResNet-V2",
        input_shape=(3, 299, 299),
        build=build_inception_resnet_v2,
        reference=_REFERENCE,
    ),
)
