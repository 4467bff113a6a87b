"""A DNN's output tensor → the standard result message a perception node expects.

- classification: vision_msgs/Classification with the top-k softmax scores (class_id = the class's
  name from the model card, else its index);
- detection: vision_msgs/Detection2DArray with boxes in the *original* image's pixels (the input
  was stretched to the network size, so normalised coordinates scale back exactly), published
  even when empty so that "nothing found" differs from "pipeline stalled";
- tensor: rankmap_ros/Tensor with the raw output, for custom decoders.
Every result carries the source image's header unchanged (stamp and frame_id).
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import cv2
import numpy as np

from rankmap_ros.ros.rclpy_compat import msg

OutputKind = Literal["classification", "detection", "tensor"]
OUTPUT_KINDS: tuple[str, ...] = ("classification", "detection", "tensor")
TOPIC_SUFFIX = {"classification": "classification", "detection": "detections", "tensor": "tensor"}
MESSAGE_TYPE = {
    "classification": "vision_msgs/msg/Classification",
    "detection": "vision_msgs/msg/Detection2DArray",
    "tensor": "rankmap_ros/msg/Tensor",
}
SSD_VARIANCES = (0.1, 0.2)


def output_topic(dnn: str, kind: str) -> str:
    """Where a DNN's results go, relative to the manager's namespace."""
    return f"rankmap/{dnn}/{TOPIC_SUFFIX[kind]}"


def rate_topic(dnn: str) -> str:
    """Where the manager publishes a DNN's measured rate (std_msgs/Float64), relative to its namespace."""
    return f"rankmap/{dnn}/rate"


@dataclass(frozen=True)
class Decoding:
    """How results are cut down: classes kept per classification, detection score and NMS thresholds."""

    top_k: int = 5
    score_threshold: float = 0.5
    nms_threshold: float = 0.45
    max_detections: int = 100
    labels: tuple[str, ...] = ()  # class names from the model card; empty: class ids are indices

    def class_id(self, index: int) -> str:
        """vision_msgs' class_id is a string: the class's name where the model card gives one."""
        return self.labels[index] if index < len(self.labels) else str(index)


def header_of(stamp_ns: int, frame_id: str) -> Any:
    """A std_msgs/Header equal to the source image's (its stamp travelled as nanoseconds)."""
    header_type = msg("std_msgs/msg/Header")
    time_type = msg("builtin_interfaces/msg/Time")
    return header_type(
        stamp=time_type(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max()
    e = np.exp(z)
    return e / e.sum()


def classification(header: Any, output: np.ndarray, decoding: Decoding) -> Any:
    hypothesis = msg("vision_msgs/msg/ObjectHypothesis")
    scores = softmax(output.reshape(-1))
    top = np.argsort(-scores)[: decoding.top_k]
    results = [hypothesis(class_id=decoding.class_id(int(i)), score=float(scores[i])) for i in top]
    return msg("vision_msgs/msg/Classification")(header=header, results=results)


def tensor(header: Any, model: str, output: np.ndarray) -> Any:
    # rclpy's setters take array.array (or Python numbers), not numpy arrays
    shape = array.array("I", output.shape)
    data = array.array("f", np.ascontiguousarray(output, np.float32).tobytes())
    return msg("rankmap_ros/msg/Tensor")(header=header, model=model, shape=shape, data=data)


@cache
def _ssd_anchors(model: str) -> np.ndarray:
    from rankmap_ros.core import zoo

    return zoo.build(model).anchors().numpy()  # type: ignore[operator]  # UnitNet does not declare it


@cache
def _yolo_grid(model: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Per output row: cell offset and stride (pixels), anchor size (pixels); and the input size."""
    from rankmap_ros.core import zoo
    from rankmap_ros.core.zoo import yolo

    size = float(zoo.get_spec(model).input_shape[-1])
    anchors = np.asarray(zoo.build(model).anchors().numpy())  # type: ignore[operator]
    cells, sizes = [], []
    for stride, mask in zip(yolo.STRIDES, yolo.ANCHOR_MASKS, strict=True):
        n = int(size) // stride
        gy, gx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grid = np.stack([gx, gy], -1).reshape(-1, 1, 2).repeat(len(mask), 1).reshape(-1, 2)
        cells.append(np.concatenate([grid, np.full((len(grid), 1), stride)], 1))
        sizes.append(np.tile(anchors[list(mask)], (n * n, 1)))
    return np.concatenate(cells).astype(np.float32), np.concatenate(sizes).astype(np.float32), size


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_boxes(model: str, output: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised (cx, cy, w, h), best class and its score per candidate, for the zoo's detectors."""
    rows = output.reshape(output.shape[-2], output.shape[-1]).astype(np.float32)
    if model.startswith("ssd"):
        anchors = _ssd_anchors(model)
        v_xy, v_wh = SSD_VARIANCES
        xy = anchors[:, :2] + rows[:, :2] * v_xy * anchors[:, 2:]
        wh = anchors[:, 2:] * np.exp(np.clip(rows[:, 2:4] * v_wh, -10, 10))
        probs = np.exp(rows[:, 4:] - rows[:, 4:].max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        classes = probs[:, 1:].argmax(1) + 1  # 0 is background
        scores = probs[np.arange(len(probs)), classes]
    elif model.startswith("yolo"):
        cells, sizes, size = _yolo_grid(model)
        xy = (_sigmoid(rows[:, :2]) + cells[:, :2]) * cells[:, 2:3] / size
        wh = sizes * np.exp(np.clip(rows[:, 2:4], -10, 10)) / size
        class_probs = _sigmoid(rows[:, 5:])
        classes = class_probs.argmax(1)
        scores = _sigmoid(rows[:, 4]) * class_probs[np.arange(len(rows)), classes]
    else:
        raise ValueError(f"no detection decoder for model {model!r} (use output kind 'tensor')")
    return np.concatenate([xy, wh], 1), classes, scores


def detections(header: Any, model: str, output: np.ndarray, width: int, height: int, decoding: Decoding) -> Any:
    """Detection2DArray in the original image's pixels; empty when nothing passes the thresholds."""
    boxes, classes, scores = decode_boxes(model, output)
    keep = np.flatnonzero(scores >= decoding.score_threshold)
    array = msg("vision_msgs/msg/Detection2DArray")(header=header, detections=[])
    if keep.size == 0 or width <= 0 or height <= 0:
        return array
    scale = np.array([width, height, width, height], np.float32)
    pixels = boxes[keep] * scale
    corners = [[float(cx - w / 2), float(cy - h / 2), float(w), float(h)] for cx, cy, w, h in pixels]
    chosen = cv2.dnn.NMSBoxes(corners, scores[keep].tolist(), decoding.score_threshold, decoding.nms_threshold)
    detection, hypothesis, with_pose = (
        msg("vision_msgs/msg/Detection2D"),
        msg("vision_msgs/msg/ObjectHypothesis"),
        msg("vision_msgs/msg/ObjectHypothesisWithPose"),
    )
    for i in np.asarray(chosen).reshape(-1)[: decoding.max_detections]:
        cx, cy, w, h = (float(v) for v in pixels[i])
        d = detection(header=header)
        d.bbox.center.position.x, d.bbox.center.position.y = cx, cy
        d.bbox.size_x, d.bbox.size_y = w, h
        score = float(scores[keep[i]])
        class_id = decoding.class_id(int(classes[keep[i]]))
        d.results = [with_pose(hypothesis=hypothesis(class_id=class_id, score=score))]
        array.detections.append(d)
    return array


def result_message(
    kind: str, header: Any, model: str, output: np.ndarray, size: tuple[int, int], decoding: Decoding
) -> Any:
    """The message for `kind`; `size` is the source image's (width, height)."""
    if kind == "classification":
        return classification(header, output, decoding)
    if kind == "detection":
        return detections(header, model, output, size[0], size[1], decoding)
    return tensor(header, model, output)


def default_kind(model: str) -> str:
    """The model's own task: its zoo task for classifiers and detectors the decoder knows."""
    from rankmap_ros.core import zoo

    task = zoo.get_spec(model).task
    if task == "detection" and (model.startswith(("ssd", "yolo"))):
        return "detection"
    return "classification" if task == "classification" else "tensor"
