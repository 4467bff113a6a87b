"""SqueezeNet v1.0 and v1.1 (Iandola et al., 2016; v1.1 is what ARM-CL and RankMap call V2).

18 units each: conv1, then every fire module as two units, its squeeze layer and its expand layers
(the 1×1 and 3×3 branches and their concatenation), then conv10 with the global pooling head.
A single tensor flows between squeeze and expand, so it is a valid cut, and splitting there gives
the 18-19 units the literature partitions SqueezeNet into; a whole fire module per unit gives
only 10. Max-pools sit in the unit of the layer they follow; they use ceil mode, as in Caffe.
"""

from __future__ import annotations

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import conv_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet


class _FireExpand(nn.Module):
    """The expand half of a fire module: parallel 1×1 and 3×3 convolutions, concatenated."""

    def __init__(self, squeeze: int, expand: int) -> None:
        super().__init__()
        self.expand1x1 = conv_act(squeeze, expand, 1)
        self.expand3x3 = conv_act(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.expand1x1(x), self.expand3x3(x)], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


# (squeeze width, expand width per branch) of fire2..fire9; the same in both versions.
_FIRES = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256))


def _build(conv1: nn.Module, conv1_out: int, pool_after: tuple[int, ...], num_classes: int) -> UnitNet:
    units = [UnitDef("conv1", UnitKind.CONV, conv1)]
    cin = conv1_out
    for number, (squeeze, expand) in enumerate(_FIRES, start=2):
        units.append(UnitDef(f"fire{number}_squeeze", UnitKind.FIRE, conv_act(cin, squeeze, 1)))
        expand_unit: nn.Module = _FireExpand(squeeze, expand)
        if number in pool_after:
            expand_unit = nn.Sequential(expand_unit, _pool())
        units.append(UnitDef(f"fire{number}_expand", UnitKind.FIRE, expand_unit))
        cin = 2 * expand
    head = nn.Sequential(
        nn.Dropout(0.5),
        *conv_act(cin, num_classes, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
    )
    units.append(UnitDef("conv10", UnitKind.CONV, head))
    return UnitNet(units)


def build_squeezenet(num_classes: int = 1000) -> UnitNet:
    """v1.0: a 7×7 stem of 96 filters, max-pools after conv1, fire4 and fire8."""
    conv1 = nn.Sequential(*conv_act(3, 96, 7, stride=2), _pool())
    return _build(conv1, 96, (4, 8), num_classes)


def build_squeezenet_v2(num_classes: int = 1000) -> UnitNet:
    """v1.1: a 3×3 stem of 64 filters and earlier pooling (after conv1, fire3, fire5): about half the MACs."""
    conv1 = nn.Sequential(*conv_act(3, 64, 3, stride=2), _pool())
    return _build(conv1, 64, (3, 5), num_classes)


_REFERENCE = (
    "Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer. SqueezeNet: AlexNet-level accuracy with 50x fewer "
    "parameters and <0.5MB model size. arXiv:1602.07360, 2016."
)

SPECS = (
    ModelSpec(
        name="squeezenet",
        title="SqueezeNet",
        input_shape=(3, 227, 227),
        build=build_squeezenet,
        reference=_REFERENCE,
        aliases=("squeezenet_v1", "SqueezeNet-V1", "SqueezeNet-V1.0"),
    ),
    ModelSpec(
        name="squeezenet_v2",
        title="SqueezeNet-V2",
        input_shape=(3, 227, 227),
        build=build_squeezenet_v2,
        reference=_REFERENCE + " Version 1.1: github.com/forresti/SqueezeNet (SqueezeNet_v1.1).",
        aliases=("squeezenet_v1_1", "SqueezeNet-V1.1"),
    ),
)
