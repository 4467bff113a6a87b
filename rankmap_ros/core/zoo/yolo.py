"""YOLO-V3 (Redmon & Farhadi, 2018) at 416×416 for the 80 COCO classes.

Darknet-53 (convolution, batch norm, LeakyReLU(0.1); residual stages of 1, 2, 8, 8 and 4 blocks)
and three detection scales (13×13, 26×26, 52×52) joined by upsample + concat routes. The routes
read the outputs of the two 8-block stages, so a single tensor flows only up to the end of the
third stage. Units: the stem, each downsampling convolution and each residual block up to there
(every one about 0.8-0.9 GMACs), then one detection unit with stages 4-5, the neck and the three
heads: 16 units.
"""

from __future__ import annotations

import torch
from torch import nn

from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet

NUM_CLASSES = 80
_PER_ANCHOR = 5  # tx, ty, tw, th, objectness
# COCO anchors (w, h) in pixels of the 416×416 input, from yolov3.cfg.
_ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
# Indices into the anchors used at each output scale, in output order (13×13, 26×26, 52×52).
ANCHOR_MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
STRIDES = (32, 16, 8)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Darknet's convolutional layer: convolution without bias, batch norm, LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


class _Residual(nn.Module):
    """1×1 convolution to half the channels, 3×3 back to all of them, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels // 2, 1), _conv(channels // 2, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stage(cin: int, blocks: int) -> nn.Sequential:
    """A 3×3/2 downsampling convolution doubling the channels, then `blocks` residual blocks."""
    return nn.Sequential(_conv(cin, 2 * cin, 3, stride=2), *(_Residual(2 * cin) for _ in range(blocks)))


def _conv_set(cin: int, width: int) -> nn.Sequential:
    """Five convolutions alternating 1×1 (`width` channels) and 3×3 (2 × `width`) before each head."""
    return nn.Sequential(
        _conv(cin, width, 1),
        _conv(width, 2 * width, 3),
        _conv(2 * width, width, 1),
        _conv(width, 2 * width, 3),
        _conv(2 * width, width, 1),
    )


def _predictor(width: int, num_classes: int) -> nn.Sequential:
    """A 3×3 convolution then the linear 1×1 output layer (with bias): 3 anchors × (5 + classes)."""
    return nn.Sequential(_conv(width, 2 * width, 3), nn.Conv2d(2 * width, 3 * (_PER_ANCHOR + num_classes), 1))


def _lateral(cin: int) -> nn.Sequential:
    """The route to the next finer scale: 1×1 convolution to half the channels, 2× nearest upsampling."""
    return nn.Sequential(_conv(cin, cin // 2, 1), nn.Upsample(scale_factor=2, mode="nearest"))


class _YoloHead(nn.Module):
    """Darknet-53 stages 4-5, the neck and the three heads; input is stage 3's 52×52×256 output.

    Returns raw predictions (N, 10647, 5 + classes): scales 13×13, 26×26, 52×52 in that order;
    within a scale, cells row by row (y, then x); within a cell, its 3 anchors in ANCHOR_MASKS
    order. Channels: tx, ty, tw, th, objectness, class logits, all before any sigmoid or exp.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.per_anchor = _PER_ANCHOR + num_classes
        self.stage4 = _stage(256, 8)
        self.stage5 = _stage(512, 4)
        self.neck13 = _conv_set(1024, 512)
        self.out13 = _predictor(512, num_classes)
        self.up26 = _lateral(512)
        self.neck26 = _conv_set(256 + 512, 256)
        self.out26 = _predictor(256, num_classes)
        self.up52 = _lateral(256)
        self.neck52 = _conv_set(128 + 256, 128)
        self.out52 = _predictor(128, num_classes)

    def _flatten(self, y: torch.Tensor) -> torch.Tensor:
        # (N, 3·k, G, G) -> (N, G·G·3, k): cells row-major, anchors innermost.
        return y.permute(0, 2, 3, 1).flatten(1).unflatten(1, (-1, self.per_anchor))

    def forward(self, c3: torch.Tensor) -> torch.Tensor:
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        p5 = self.neck13(c5)
        # Darknet's route layers put the upsampled map first, then the backbone's.
        p4 = self.neck26(torch.cat([self.up26(p5), c4], dim=1))
        p3 = self.neck52(torch.cat([self.up52(p4), c3], dim=1))
        return torch.cat(
            [self._flatten(self.out13(p5)), self._flatten(self.out26(p4)), self._flatten(self.out52(p3))], dim=1
        )


class YoloV3(UnitNet):
    """YOLO-V3 whose output is the raw predictions (N, 10647, 85); decoding and NMS happen outside.

    Prediction order: scales 13×13 (stride 32, anchors 6-8), 26×26 (stride 16, anchors 3-5),
    52×52 (stride 8, anchors 0-2), i.e. 507 + 2028 + 8112 rows; within a scale, cells row by row
    (y, then x); within a cell, the scale's 3 anchors in ANCHOR_MASKS order. Channels per row:
    tx, ty, tw, th, objectness, then 80 class logits, all raw. Decoding, for cell (cx, cy) at
    stride s with anchor (pw, ph): x = (sigmoid(tx) + cx)·s, w = pw·exp(tw), and likewise y, h.
    """

    anchor_sizes: torch.Tensor

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__(
            [
                UnitDef("stem", UnitKind.CONV, _conv(3, 32, 3)),
                UnitDef("down1", UnitKind.CONV, _conv(32, 64, 3, stride=2)),
                UnitDef("res1_1", UnitKind.RESIDUAL, _Residual(64)),
                UnitDef("down2", UnitKind.CONV, _conv(64, 128, 3, stride=2)),
                *(UnitDef(f"res2_{i}", UnitKind.RESIDUAL, _Residual(128)) for i in (1, 2)),
                UnitDef("down3", UnitKind.CONV, _conv(128, 256, 3, stride=2)),
                *(UnitDef(f"res3_{i}", UnitKind.RESIDUAL, _Residual(256)) for i in range(1, 9)),
                UnitDef("detect", UnitKind.DETECT, _YoloHead(num_classes)),
            ]
        )
        # Derived from the configuration, so not part of the state_dict.
        self.register_buffer("anchor_sizes", torch.tensor(_ANCHORS, dtype=torch.float32), persistent=False)

    def anchors(self) -> torch.Tensor:
        """(9, 2) COCO anchors as (w, h) in pixels of the 416×416 input; ANCHOR_MASKS maps them to scales."""
        return self.anchor_sizes


def build_yolo_v3() -> UnitNet:
    return YoloV3()


SPECS = (
    ModelSpec(
        name="yolo_v3",
        title="YOLO-V3",
        input_shape=(3, 416, 416),
        build=build_yolo_v3,
        task="detection",
        num_classes=NUM_CLASSES,
        reference="Redmon, Farhadi. YOLOv3: An Incremental Improvement. arXiv:1804.02767, 2018.",
        aliases=("yolov3", "YOLOv3", "yolov3_416"),
    ),
)
