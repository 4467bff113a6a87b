"""ShuffleNet V1 (Zhang et al., 2018) with g = 3 groups at width 1×: 18 units.

Units: the stem (3×3/2 convolution and 3×3/2 max-pool), each of the 16 ShuffleNet units (the
shortcut spans the whole unit, so no cut can fall inside one) and the pooling + fc head.
"""

from __future__ import annotations

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import classifier, conv_bn_act
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

_GROUPS = 3
_STEM_CHANNELS = 24
# (output channels, units) of Stage2..Stage4 for g = 3 (Table 1 of the paper); each stage starts with stride 2.
_STAGES = ((240, 4), (480, 8), (960, 4))


class _ShuffleUnit(nn.Module):
    """1×1 GConv, channel shuffle, 3×3 depthwise, 1×1 GConv; add the input, or concat its 3×3/2 average pool.

    The bottleneck is a quarter of the unit's output width. Stage2's first 1×1 convolution is not
    grouped because its input has only 24 channels (Section 3.3).
    """

    def __init__(self, cin: int, cout: int, stride: int, group_first: bool) -> None:
        super().__init__()
        mid = cout // 4
        branch_out = cout - cin if stride == 2 else cout
        self.compress = conv_bn_act(cin, mid, 1, groups=_GROUPS if group_first else 1)
        self.depthwise = conv_bn_act(mid, mid, 3, stride=stride, groups=mid, act=None)
        self.expand = conv_bn_act(mid, branch_out, 1, groups=_GROUPS, act=None)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.compress(x)
        # Channel shuffle: (g, c/g) -> (c/g, g) so the next group convolution mixes every group.
        y = y.unflatten(1, (_GROUPS, -1)).transpose(1, 2).flatten(1, 2)
        y = self.expand(self.depthwise(y))
        if self.pool is None:
            return self.relu(x + y)
        return self.relu(torch.cat([self.pool(x), y], dim=1))


def build_shufflenet(num_classes: int = 1000) -> UnitNet:
    units = [
        UnitDef(
            "stem",
            UnitKind.CONV,
            nn.Sequential(
                conv_bn_act(3, _STEM_CHANNELS, 3, stride=2),
                nn.MaxPool2d(3, stride=2, padding=1),
            ),
        )
    ]
    cin = _STEM_CHANNELS
    for stage, (cout, repeats) in enumerate(_STAGES, start=2):
        for index in range(repeats):
            first = index == 0
            unit = _ShuffleUnit(cin, cout, 2 if first else 1, group_first=not (first and stage == 2))
            units.append(UnitDef(f"stage{stage}_{index + 1}", UnitKind.SHUFFLE, unit))
            cin = cout
    units.append(UnitDef("head", UnitKind.FC, classifier(cin, num_classes)))
    return UnitNet(units)


SPECS = (
    ModelSpec(
        name="shufflenet",
        title="ShuffleNet",
        input_shape=(3, 224, 224),
        build=build_shufflenet,
        reference=(
            "Zhang, Zhou, Lin, Sun. ShuffleNet: An Extremely Efficient Convolutional Neural Network "
            "for Mobile Devices. CVPR 2018."
        ),
        aliases=("shufflenet_v1", "ShuffleNet V1", "shufflenet_g3"),
    ),
)
