"""A synthetic camera: sensor_msgs/Image (rgb8 by default) at a fixed rate, with sensor-data QoS.

Frames are a moving gradient with the frame count drawn in, so consecutive images differ (a DNN
output that never changes would hide a stalled pipeline). Rows are padded when `step_padding` is
set, to exercise consumers that must honour `step`. With `compressed` set to jpeg or png it also
publishes `image_raw/compressed` (sensor_msgs/CompressedImage), as image_transport's compressed
plugin does beside a camera driver's raw stream.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np

from rankmap_ros.ros import image_codec
from rankmap_ros.ros.parent import follow_parent
from rankmap_ros.ros.rclpy_compat import (
    ExternalShutdownException,
    FloatingPointRange,
    IntegerRange,
    Node,
    ParameterDescriptor,
    ParameterException,
    msg,
    qos_profile_sensor_data,
    rclpy,
)

Image = msg("sensor_msgs/msg/Image")
CompressedImage = msg("sensor_msgs/msg/CompressedImage")
ENCODINGS = ("rgb8", "bgr8", "mono8", "bayer_rggb8")  # bayer: as a raw machine-vision camera sends
COMPRESSIONS = ("", "jpeg", "png")


class Camera(Node):
    def __init__(self) -> None:
        super().__init__("camera")

        # read when the camera starts (relaunch to change): a set_parameters call is refused, not ignored
        def describe(text: str, **extra: Any) -> ParameterDescriptor:
            return ParameterDescriptor(description=text, read_only=True, **extra)

        rate = [FloatingPointRange(from_value=0.1, to_value=240.0)]
        self.declare_parameter("rate", 30.0, describe("frames/s", floating_point_range=rate))
        size = [IntegerRange(from_value=16, to_value=4096)]
        self.declare_parameter("width", 640, describe("pixels", integer_range=size))
        self.declare_parameter("height", 480, describe("pixels", integer_range=size))
        self.declare_parameter("encoding", "rgb8", describe(", ".join(ENCODINGS)))
        self.declare_parameter("frame_id", "camera_optical_frame", describe("header.frame_id"))
        padding = [IntegerRange(from_value=0, to_value=4096)]
        self.declare_parameter("step_padding", 0, describe("extra bytes at the end of each row", integer_range=padding))
        self.declare_parameter("compressed", "", describe("also publish image_raw/compressed: jpeg or png"))
        self.width = self.get_parameter("width").value
        self.height = self.get_parameter("height").value
        self.encoding = self.get_parameter("encoding").value
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        self.compression = self.get_parameter("compressed").value
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compressed must be jpeg, png or empty, got {self.compression!r}")
        self.frame_id = self.get_parameter("frame_id").value
        self.padding = self.get_parameter("step_padding").value
        self.count = 0
        x = np.linspace(0, 255, self.width, dtype=np.float32)
        y = np.linspace(0, 255, self.height, dtype=np.float32)[:, None]
        self.base = np.stack(
            [np.broadcast_to(x, (self.height, self.width)), np.broadcast_to(y, (self.height, self.width)), (x + y) / 2],
            -1,
        )
        self.publisher = self.create_publisher(Image, "image_raw", qos_profile_sensor_data)
        self.compressed = (
            self.create_publisher(CompressedImage, "image_raw/compressed", qos_profile_sensor_data)
            if self.compression
            else None
        )
        self.create_timer(1.0 / self.get_parameter("rate").value, self.tick)

    def frame(self) -> np.ndarray:
        rgb = ((self.base + self.count * 4) % 256).astype(np.uint8)
        cv2.putText(rgb, str(self.count), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (255, 255, 255), 3)
        return rgb

    def encode(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, channels) pixels in this camera's encoding."""
        if self.encoding == "bgr8":
            return rgb[..., ::-1]
        if self.encoding == "mono8":
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
        if self.encoding == "bayer_rggb8":
            return image_codec.bayer_mosaic(rgb, "rggb")[..., None]
        return rgb

    def tick(self) -> None:
        rgb = self.frame()
        encoded = self.encode(rgb)
        pixels = encoded.reshape(self.height, -1)
        if self.padding:
            pixels = np.pad(pixels, ((0, 0), (0, self.padding)))
        image = Image(
            height=self.height,
            width=self.width,
            encoding=self.encoding,
            step=pixels.shape[1],
            data=array.array("B", np.ascontiguousarray(pixels).tobytes()),  # fast on rosidl's setter
        )
        image.header.stamp = self.get_clock().now().to_msg()
        image.header.frame_id = self.frame_id
        self.publisher.publish(image)
        if self.compressed is not None:
            self.compressed.publish(self.compress(rgb, encoded, image.header))
        self.count += 1

    def compress(self, rgb: np.ndarray, encoded: np.ndarray, header: Any) -> Any:
        """The frame as image_transport's compressed plugin sends it: colour as BGR (OpenCV's order),
        from the pixels `encode` made where they are already grey or BGR."""
        mono = self.encoding == "mono8"
        if mono:
            pixels = encoded[..., 0]
        else:
            pixels = np.ascontiguousarray(encoded if self.encoding == "bgr8" else rgb[..., ::-1])
        ok, data = cv2.imencode(".jpg" if self.compression == "jpeg" else ".png", pixels)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode a {self.compression} frame")
        fmt = f"{self.encoding}; {self.compression} compressed {'mono8' if mono else 'bgr8'}"
        return CompressedImage(header=header, format=fmt, data=array.array("B", data.tobytes()))


def main(args: list[str] | None = None) -> None:
    follow_parent()
    rclpy.init(args=args)
    node: Any = None
    try:
        try:
            node = Camera()
        except (ValueError, ParameterException) as exc:  # a bad parameter: one clear line
            rclpy.logging.get_logger("camera").fatal(f"cannot start: {exc}")
            raise SystemExit(2) from exc
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
