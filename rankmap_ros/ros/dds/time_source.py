"""rclpy's TimeSource: every node's `use_sim_time` parameter, and its clock following /clock.

Simulators (Gazebo) and `ros2 bag play --clock` publish `rosgraph_msgs/msg/Clock`; a launch that
sets `use_sim_time` for every node must work with ours as with rclpy's nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rankmap_ros.ros.dds.parameters import Parameter, SetParametersResult
from rankmap_ros.ros.dds.qos import QoSProfile, ReliabilityPolicy
from rankmap_ros.ros.dds.time import ROSClock, Time
from rankmap_ros.ros.dds.types import get_message

if TYPE_CHECKING:
    from rankmap_ros.ros.dds.node import Node
    from rankmap_ros.ros.dds.pubsub import Subscription

CLOCK_TOPIC = "/clock"
USE_SIM_TIME_NAME = "use_sim_time"
CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


class TimeSource:
    def __init__(self, node: Node, clock: ROSClock) -> None:
        self._node = node
        self._clock = clock
        self._subscription: Subscription | None = None
        if not node.has_parameter(USE_SIM_TIME_NAME):
            node.declare_parameter(USE_SIM_TIME_NAME, False)
        value = node.get_parameter(USE_SIM_TIME_NAME)
        if value.type_ == Parameter.Type.BOOL:
            self._set_active(bool(value.value))
        elif value.type_ != Parameter.Type.NOT_SET:  # declared from overrides as given, e.g. "true" quoted
            node.get_logger().error(f"Invalid type for parameter '{USE_SIM_TIME_NAME}' {value.type_!r} should be bool")
        node.add_on_set_parameters_callback(self._on_set)

    def _set_active(self, enabled: bool) -> None:
        if enabled == self._clock.ros_time_is_active:
            return
        self._clock._set_ros_time_is_active(enabled)
        if enabled and self._subscription is None:
            self._subscription = self._node.create_subscription(
                get_message("rosgraph_msgs/msg/Clock"), CLOCK_TOPIC, self._on_clock, CLOCK_QOS
            )
        elif not enabled and self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    def _on_clock(self, message: Any) -> None:
        self._clock.set_ros_time_override(Time.from_msg(message.clock))

    def _on_set(self, parameters: list[Parameter]) -> Any:
        for parameter in parameters:
            if parameter.name != USE_SIM_TIME_NAME:
                continue
            if parameter.type_ != Parameter.Type.BOOL:
                reason = f"{USE_SIM_TIME_NAME} parameter set to something besides a bool"
                self._node.get_logger().error(reason)
                return SetParametersResult(successful=False, reason=reason)
            self._set_active(bool(parameter.value))
        return SetParametersResult(successful=True)
