"""GoogLeNet / Inception-V1 (Szegedy et al., 2015), 13 units: three stem convolutions, nine
inception modules, one head.

This is the paper's network as the Caffe reference (and ARM-CL's graph example) runs it: biased
convolutions, no batch norm, local response normalisation in the stem, ceil-mode pooling, true
5x5 convolutions, and no auxiliary classifiers (they are training-only).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import classifier, conv_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet


class Branches(nn.Module):
    """Parallel branches over one input, concatenated along channels: every Inception module's shape."""

    def __init__(self, branches: Sequence[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def _inception(cin: int, widths: tuple[int, int, int, int, int, int]) -> Branches:
    """The Inception-V1 module: 1x1, 1x1->3x3, 1x1->5x5 and 3x3 max pool->1x1 branches."""
    c1, c3r, c3, c5r, c5, pool_proj = widths
    return Branches(
        [
            conv_act(cin, c1, 1),
            nn.Sequential(conv_act(cin, c3r, 1), conv_act(c3r, c3, 3, padding=1)),
            nn.Sequential(conv_act(cin, c5r, 1), conv_act(c5r, c5, 5, padding=2)),
            nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv_act(cin, pool_proj, 1)),
        ]
    )


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)


# (name, in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj): Table 1 of the paper.
_MODULES = (
    ("inception_3a", 192, (64, 96, 128, 16, 32, 32)),
    ("inception_3b", 256, (128, 128, 192, 32, 96, 64)),
    ("inception_4a", 480, (192, 96, 208, 16, 48, 64)),
    ("inception_4b", 512, (160, 112, 224, 24, 64, 64)),
    ("inception_4c", 512, (128, 128, 256, 24, 64, 64)),
    ("inception_4d", 512, (112, 144, 288, 32, 64, 64)),
    ("inception_4e", 528, (256, 160, 320, 32, 128, 128)),
    ("inception_5a", 832, (256, 160, 320, 32, 128, 128)),
    ("inception_5b", 832, (384, 192, 384, 48, 128, 128)),
)

# The grid-reducing max pools close the module before them, so every module unit stays one block.
_POOL_AFTER = frozenset({"inception_3b", "inception_4e"})


def build_googlenet(num_classes: int = 1000) -> UnitNet:
    units = [
        UnitDef("conv1", UnitKind.CONV, nn.Sequential(conv_act(3, 64, 7, stride=2, padding=3), _pool(), _lrn())),
        UnitDef("conv2_reduce", UnitKind.CONV, conv_act(64, 64, 1)),
        UnitDef("conv2", UnitKind.CONV, nn.Sequential(conv_act(64, 192, 3, padding=1), _lrn(), _pool())),
    ]
    for name, cin, widths in _MODULES:
        block: nn.Module = _inception(cin, widths)
        if name in _POOL_AFTER:
            block = nn.Sequential(block, _pool())
        units.append(UnitDef(name, UnitKind.INCEPTION, block))
    units.append(UnitDef("head", UnitKind.FC, classifier(1024, num_classes, dropout=0.4)))
    return UnitNet(units)


SPECS = (
    ModelSpec(
        name="googlenet",
        title="GoogLeNet",
        input_shape=(3, 224, 224),
        build=build_googlenet,
        reference="Szegedy et al. Going Deeper with Convolutions. CVPR 2015.",
        aliases=("inception_v1",),
    ),
)
