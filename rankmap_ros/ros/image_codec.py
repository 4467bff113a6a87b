"""sensor_msgs/Image or CompressedImage → the network's input tensor, with OpenCV, without cv_bridge.

cv_bridge on Humble/Jazzy is built against NumPy 1.x (vision_opencv#535); reading the buffer with
numpy (honouring `step`, which may exceed width × bytes per pixel) avoids it for the encodings
cameras actually send. A CompressedImage (image_transport's `compressed`: JPEG or PNG) is
decoded by OpenCV; its `format` only describes what was compressed, so it is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# Channels and the OpenCV conversion to RGB for each supported encoding.
_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, None),
}
ENCODINGS = tuple(_ENCODINGS)
# torchvision's ImageNet statistics, which every classifier of the zoo is defined against.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageError(ValueError):
    """An image that cannot be decoded (unknown encoding, data shorter than height × step)."""


@dataclass(frozen=True)
class Preprocess:
    """Network input size (height, width) and per-channel normalisation of RGB values in [0, 1]."""

    height: int
    width: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def _buffer(data: Any) -> np.ndarray:
    """A message's uint8[] field as bytes (rclpy: array.array or bytes; some paths: a list)."""
    return np.frombuffer(bytes(data) if isinstance(data, list) else data, np.uint8)


def image_to_rgb(image: Any) -> np.ndarray:
    """An (H, W, 3) uint8 RGB view or copy of a sensor_msgs/Image."""
    encoding = image.encoding
    if encoding not in _ENCODINGS:
        raise ImageError(f"image encoding {encoding!r} is not supported (use one of {', '.join(ENCODINGS)})")
    channels, conversion = _ENCODINGS[encoding]
    height, width, step = int(image.height), int(image.width), int(image.step)
    data = _buffer(image.data)
    if step < width * channels or data.size < height * step:
        raise ImageError(
            f"{encoding} image {width}x{height} needs step >= {width * channels} and {height} rows of it, "
            f"got step {step} and {data.size} bytes"
        )
    pixels = data[: height * step].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if conversion is None:
        return pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


# image_transport names the compressed stream of `<base>` `<base>/compressed`.
COMPRESSED_SUFFIX = "/compressed"


def is_compressed_topic(topic: str) -> bool:
    """Whether a topic carries sensor_msgs/CompressedImage rather than sensor_msgs/Image."""
    return topic.endswith(COMPRESSED_SUFFIX)


def compressed_to_rgb(image: Any) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array of a sensor_msgs/CompressedImage (JPEG, PNG, ...)."""
    data = _buffer(image.data)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageError(f"compressed image ({image.format or 'no format'}, {data.size} bytes) cannot be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_rgb(image: Any) -> np.ndarray:
    """Either message kind as (H, W, 3) uint8 RGB."""
    return compressed_to_rgb(image) if hasattr(image, "format") else image_to_rgb(image)


def to_tensor(rgb: np.ndarray, prep: Preprocess) -> np.ndarray:
    """(1, 3, H, W) float32: resized to the network input, scaled to [0, 1], normalised."""
    if rgb.shape[:2] != (prep.height, prep.width):
        rgb = cv2.resize(rgb, (prep.width, prep.height), interpolation=cv2.INTER_LINEAR)
    x = rgb.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(prep.mean, np.float32)
    x /= np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
