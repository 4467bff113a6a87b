"""SSD-MobileNet V1 (Liu et al., 2016, with the MobileNet V1 backbone of Howard et al., 2017).

The layout of the TensorFlow detection zoo's ssd_mobilenet_v1_coco: a 300×300 input, ReLU6,
box and class predictors (1×1 convolutions) on six feature maps: conv11 (19×19×512), conv13
(10×10×1024) and four extra layers (1×1 convolution to half the depth, then 3×3/2) of
5×5×512, 3×3×256, 2×2×256 and 1×1×128; 3 anchors per location on the first map, 6 elsewhere.

The predictors read several feature maps, so a single tensor flows only up to conv11: the units
are conv1, depthwise-separable blocks 1..11 (TensorFlow's Conv2d_1..Conv2d_11) and one detection
unit holding blocks 12-13, the extra layers and all predictors: 13 units.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rankmap_ros.core.zoo.layers import conv_bn_act
from rankmap_ros.core.zoo.mobilenet import V1_BLOCKS, V1_STEM_CHANNELS, depthwise_separable
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

NUM_CLASSES = 91  # 90 COCO ids and background (class 0)
_HEAD_BLOCK = 11  # the last backbone block before the predictors read their first feature map
# (1×1 depth, 3×3/2 depth) of the four extra feature layers.
_EXTRAS = ((256, 512), (128, 256), (128, 256), (64, 128))
_MAP_SIZES = (19, 10, 5, 3, 2, 1)
_MAP_CHANNELS = (512, 1024, 512, 256, 256, 128)
_MIN_SCALE, _MAX_SCALE = 0.2, 0.95
_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)


def _box_specs(layer: int) -> list[tuple[float, float]]:
    """(scale, aspect ratio) of each anchor at a location of feature map `layer`.

    Scales are spread linearly from 0.2 to 0.95 over the six maps. The first map has only
    (0.1, 1), (0.2, 2) and (0.2, 0.5); the others have every aspect ratio at their scale plus a
    square anchor at the geometric mean of their scale and the next one (1.0 after the last).
    """
    count = len(_MAP_SIZES)
    scales = [_MIN_SCALE + (_MAX_SCALE - _MIN_SCALE) * k / (count - 1) for k in range(count)] + [1.0]
    if layer == 0:
        return [(0.1, 1.0), (scales[0], 2.0), (scales[0], 0.5)]
    return [(scales[layer], ratio) for ratio in _ASPECT_RATIOS] + [(math.sqrt(scales[layer] * scales[layer + 1]), 1.0)]


def _anchor_boxes() -> torch.Tensor:
    """(1917, 4) anchors as normalized (cx, cy, w, h), in the order of the predictions."""
    boxes = []
    for layer, size in enumerate(_MAP_SIZES):
        specs = _box_specs(layer)
        wh = torch.tensor([(s * math.sqrt(r), s / math.sqrt(r)) for s, r in specs], dtype=torch.float32)
        centers = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        cy, cx = torch.meshgrid(centers, centers, indexing="ij")
        xy = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(specs), 2)
        boxes.append(torch.cat([xy, wh.expand(size * size, -1, -1)], dim=-1).reshape(-1, 4))
    return torch.cat(boxes)


class _SSDHead(nn.Module):
    """Backbone blocks 12-13, the extra layers and the predictors; input is conv11's output.

    Returns raw predictions (N, 1917, 4 + 91): 4 box offsets (in the anchors' cx, cy, w, h order)
    then 91 class logits (index 0 is background) for every anchor.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        cin = V1_BLOCKS[_HEAD_BLOCK - 1][0]
        tail: list[nn.Module] = []
        for cout, stride in V1_BLOCKS[_HEAD_BLOCK:]:
            tail.append(depthwise_separable(cin, cout, stride, act=nn.ReLU6))
            cin = cout
        self.tail = nn.Sequential(*tail)
        extras: list[nn.Module] = []
        for mid, cout in _EXTRAS:
            extras.append(
                nn.Sequential(
                    conv_bn_act(cin, mid, 1, act=nn.ReLU6),
                    conv_bn_act(mid, cout, 3, stride=2, act=nn.ReLU6),
                )
            )
            cin = cout
        self.extras = nn.ModuleList(extras)
        anchors = [len(_box_specs(layer)) for layer in range(len(_MAP_SIZES))]
        self.box = nn.ModuleList(nn.Conv2d(c, a * 4, 1) for c, a in zip(_MAP_CHANNELS, anchors, strict=True))
        self.cls = nn.ModuleList(nn.Conv2d(c, a * num_classes, 1) for c, a in zip(_MAP_CHANNELS, anchors, strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x, self.tail(x)]
        for extra in self.extras:
            features.append(extra(features[-1]))
        outputs = []
        for feature, box, cls in zip(features, self.box, self.cls, strict=True):
            # (N, A·k, H, W) -> (N, H·W·A, k): locations row-major, anchors innermost.
            offsets = box(feature).permute(0, 2, 3, 1).flatten(1).unflatten(1, (-1, 4))
            logits = cls(feature).permute(0, 2, 3, 1).flatten(1).unflatten(1, (-1, self.num_classes))
            outputs.append(torch.cat([offsets, logits], dim=2))
        return torch.cat(outputs, dim=1)


class SSDMobileNet(UnitNet):
    """SSD-MobileNet V1 whose output is the raw predictions (N, 1917, 95); decoding and NMS happen outside.

    Anchor order, shared by the predictions and `anchors()`: feature maps 19×19, 10×10, 5×5,
    3×3, 2×2, 1×1 (1083 + 600 + 150 + 54 + 24 + 6 anchors); within a map, locations row by row
    (y, then x); within a location, the anchors of `_box_specs` in order. Channels per anchor:
    4 box offsets (cx, cy, w, h order), then 91 class logits (0 = background).
    """

    anchor_boxes: torch.Tensor

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        units = [UnitDef("conv1", UnitKind.CONV, conv_bn_act(3, V1_STEM_CHANNELS, 3, stride=2, act=nn.ReLU6))]
        cin = V1_STEM_CHANNELS
        for index, (cout, stride) in enumerate(V1_BLOCKS[:_HEAD_BLOCK], start=1):
            units.append(UnitDef(f"dwsep{index}", UnitKind.DWCONV, depthwise_separable(cin, cout, stride, nn.ReLU6)))
            cin = cout
        units.append(UnitDef("detect", UnitKind.DETECT, _SSDHead(num_classes)))
        super().__init__(units)
        # Derived from the configuration, so not part of the state_dict.
        self.register_buffer("anchor_boxes", _anchor_boxes(), persistent=False)

    def anchors(self) -> torch.Tensor:
        """(1917, 4) anchors as normalized (cx, cy, w, h), in the predictions' order."""
        return self.anchor_boxes


def build_ssd_mobilenet() -> UnitNet:
    return SSDMobileNet()


SPECS = (
    ModelSpec(
        name="ssd_mobilenet",
        title="SSD-MobileNet",
        input_shape=(3, 300, 300),
        build=build_ssd_mobilenet,
        task="detection",
        num_classes=NUM_CLASSES,
        reference=(
            "Liu et al. SSD: Single Shot MultiBox Detector. ECCV 2016; backbone: Howard et al. MobileNets, "
            "arXiv:1704.04861, 2017 (TensorFlow detection zoo ssd_mobilenet_v1_coco)."
        ),
        aliases=("ssd_mobilenet_v1", "SSD MobileNet V1", "ssd_mobilenet_v1_coco"),
    ),
)
