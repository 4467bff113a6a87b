"""sensor_msgs/Image or CompressedImage → the network's input tensor, with OpenCV, without cv_bridge.

cv_bridge on Humble/Jazzy is built against NumPy 1.x (vision_opencv#535); reading the buffer with
numpy (honouring `step`, which may exceed width × bytes per pixel) avoids it for the encodings
cameras actually send: 8-bit colour and mono, their 16-bit forms (scaled to 8 bits), packed YUV
4:2:2 from webcams, and Bayer mosaics from raw machine-vision cameras (demosaicked here, as
image_proc would). A CompressedImage (image_transport's `compressed`: JPEG or PNG) is
decoded by OpenCV; its `format` only describes what was compressed, so it is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class _Layout:
    """How an encoding's pixels lie in `data`, and OpenCV's conversion of them to RGB."""

    channels: int  # values per pixel as stored (2 for packed YUV 4:2:2, 1 for a Bayer mosaic)
    depth: int  # bytes per value: 1, or 2 (scaled to 8 bits, `is_bigendian` honoured)
    conversion: int | None


def _encodings() -> dict[str, _Layout]:
    table = {
        "rgb8": _Layout(3, 1, None),
        "bgr8": _Layout(3, 1, cv2.COLOR_BGR2RGB),
        "rgba8": _Layout(4, 1, cv2.COLOR_RGBA2RGB),
        "bgra8": _Layout(4, 1, cv2.COLOR_BGRA2RGB),
        "mono8": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
        "8UC1": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
        "8UC3": _Layout(3, 1, None),
        # thermal and machine-vision cameras
        "mono16": _Layout(1, 2, cv2.COLOR_GRAY2RGB),
        "16UC1": _Layout(1, 2, cv2.COLOR_GRAY2RGB),
        "rgb16": _Layout(3, 2, None),
        "bgr16": _Layout(3, 2, cv2.COLOR_BGR2RGB),
        "rgba16": _Layout(4, 2, cv2.COLOR_RGBA2RGB),
        "bgra16": _Layout(4, 2, cv2.COLOR_BGRA2RGB),
        # V4L2 webcams: UYVY and YUYV
        "yuv422": _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY),
        "yuv422_yuy2": _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2),
    }
    # Raw sensors (Spinnaker, Pylon, Aravis drivers). OpenCV names a mosaic by its second row's
    # first two pixels, so ROS's rggb is OpenCV's BG (as cv_bridge maps it; checked by a test).
    bayer = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB}
    bayer |= {"gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
    for pattern, code in bayer.items():
        table[f"bayer_{pattern}8"] = _Layout(1, 1, code)
        table[f"bayer_{pattern}16"] = _Layout(1, 2, code)
    return table


_ENCODINGS = _encodings()
ENCODINGS = tuple(_ENCODINGS)
_PAIRED = (cv2.COLOR_YUV2RGB_UYVY, cv2.COLOR_YUV2RGB_YUY2)  # two pixels share their U and V
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
    height, width, step = int(image.height), int(image.width), int(image.step)
    if height <= 0 or width <= 0:  # a default-built Image: some drivers send one when the camera drops out
        raise ImageError(f"image {width}x{height} ({encoding or 'no encoding'}) is empty")
    if encoding not in _ENCODINGS:
        raise ImageError(f"image encoding {encoding!r} is not supported (use one of {', '.join(ENCODINGS)})")
    layout = _ENCODINGS[encoding]
    row = width * layout.channels * layout.depth
    data = _buffer(image.data)
    if step < row or data.size < height * step:
        raise ImageError(
            f"{encoding} image {width}x{height} needs step >= {row} and {height} rows of it, "
            f"got step {step} and {data.size} bytes"
        )
    if layout.conversion in _PAIRED and width % 2:
        raise ImageError(f"{encoding} image needs an even width, got {width}")
    rows = data[: height * step].reshape(height, step)[:, :row]
    if layout.depth == 2:
        values = np.ascontiguousarray(rows).view(">u2" if image.is_bigendian else "<u2").astype(np.uint16, copy=False)
        rows = cv2.convertScaleAbs(values, alpha=255.0 / 65535.0)  # 0..65535 -> 0..255, rounded
    pixels = rows.reshape(height, width, layout.channels)
    if layout.conversion is None:
        return pixels
    if layout.channels == 1:
        pixels = pixels[..., 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), layout.conversion)


def bayer_mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """What a raw sensor behind colour filters `pattern` (rggb, bggr, gbrg, grbg) reads of `rgb`."""
    if sorted(pattern) != ["b", "g", "g", "r"]:
        raise ValueError(f"a Bayer pattern is rggb, bggr, gbrg or grbg, not {pattern!r}")
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for index, colour in enumerate(pattern):
        out[index // 2 :: 2, index % 2 :: 2] = rgb[index // 2 :: 2, index % 2 :: 2, "rgb".index(colour)]
    return out


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
    try:
        return compressed_to_rgb(image) if hasattr(image, "format") else image_to_rgb(image)
    except cv2.error as exc:  # what the checks missed is still the image's fault, not the stage's
        raise ImageError(f"OpenCV could not convert a {getattr(image, 'encoding', 'compressed')} image: {exc}") from exc


def to_tensor(rgb: np.ndarray, prep: Preprocess) -> np.ndarray:
    """(1, 3, H, W) float32: resized to the network input, scaled to [0, 1], normalised."""
    if rgb.shape[:2] != (prep.height, prep.width):
        rgb = cv2.resize(rgb, (prep.width, prep.height), interpolation=cv2.INTER_LINEAR)
    x = rgb.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(prep.mean, np.float32)
    x /= np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
