"""rclpy.utilities: what node programs use to read their own (non-ROS) arguments."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rankmap_ros.ros.dds.args import parse


def remove_ros_args(args: Sequence[str] | None = None) -> list[str]:
    return parse(sys.argv if args is None else args).unparsed
