"""THE one place node code gets rclpy from: real rclpy when importable, else our DDS transport.

    from rankmap_ros.ros.rclpy_compat import rclpy, Node, msg, srv, qos_profile_sensor_data

    Image = msg("sensor_msgs/msg/Image")          # rosidl's class on ROS 2, ours without it
    RegisterDnn = srv("rankmap_ros/srv/RegisterDnn")

Everything else is plain rclpy: `rclpy.init()`, `Node`, `create_publisher`, executors, callback
groups, parameters with rcl_interfaces descriptors. `RANKMAP_ROS_TRANSPORT=dds` forces our
transport even where rclpy is installed (to compare the two on one machine).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

if os.environ.get("RANKMAP_ROS_TRANSPORT", "").lower() == "dds":
    _rclpy: Any = None
else:
    try:
        import rclpy as _rclpy
    except ImportError:
        _rclpy = None

ROS_AVAILABLE = _rclpy is not None

if _rclpy is not None:
    rclpy: Any = _rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
    from rclpy.clock import Clock, ClockType
    from rclpy.duration import Duration
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_parameters,
        qos_profile_sensor_data,
        qos_profile_services_default,
        qos_profile_system_default,
    )
    from rclpy.task import Future
    from rclpy.time import Time
else:
    from rankmap_ros.ros.dds import rclpy_api as rclpy
    from rankmap_ros.ros.dds.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
    from rankmap_ros.ros.dds.context import ExternalShutdownException
    from rankmap_ros.ros.dds.executor import MultiThreadedExecutor, SingleThreadedExecutor
    from rankmap_ros.ros.dds.node import Node
    from rankmap_ros.ros.dds.parameters import Parameter, ParameterException
    from rankmap_ros.ros.dds.qos import (
        DurabilityPolicy,
        HistoryPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_parameters,
        qos_profile_sensor_data,
        qos_profile_services_default,
        qos_profile_system_default,
    )
    from rankmap_ros.ros.dds.task import Future
    from rankmap_ros.ros.dds.time import Clock, ClockType, Duration, Time


def _split(name: str, kind: str) -> tuple[str, str]:
    parts = name.replace(".", "/").split("/")
    if len(parts) == 2:
        parts = [parts[0], kind, parts[1]]
    if len(parts) != 3 or parts[1] != kind:
        raise ValueError(f"{name!r} is not a {kind} name like 'pkg/{kind}/Name'")
    return parts[0], parts[2]


def msg(name: str) -> Any:
    """The message class for 'pkg/msg/Name' (or 'pkg/Name') in whichever world we run."""
    if ROS_AVAILABLE:
        package, type_name = _split(name, "msg")
        return getattr(importlib.import_module(f"{package}.msg"), type_name)
    from rankmap_ros.ros.dds.types import get_message

    return get_message(name)


def srv(name: str) -> Any:
    """The service class for 'pkg/srv/Name' (with .Request and .Response)."""
    if ROS_AVAILABLE:
        package, type_name = _split(name, "srv")
        return getattr(importlib.import_module(f"{package}.srv"), type_name)
    from rankmap_ros.ros.dds.types import get_service

    return get_service(name)


ParameterDescriptor = msg("rcl_interfaces/msg/ParameterDescriptor")
IntegerRange = msg("rcl_interfaces/msg/IntegerRange")
FloatingPointRange = msg("rcl_interfaces/msg/FloatingPointRange")
SetParametersResult = msg("rcl_interfaces/msg/SetParametersResult")

__all__ = [
    "ROS_AVAILABLE",
    "Clock",
    "ClockType",
    "DurabilityPolicy",
    "Duration",
    "ExternalShutdownException",
    "FloatingPointRange",
    "Future",
    "HistoryPolicy",
    "IntegerRange",
    "MultiThreadedExecutor",
    "MutuallyExclusiveCallbackGroup",
    "Node",
    "Parameter",
    "ParameterDescriptor",
    "ParameterException",
    "QoSProfile",
    "ReentrantCallbackGroup",
    "ReliabilityPolicy",
    "SetParametersResult",
    "SingleThreadedExecutor",
    "Time",
    "msg",
    "qos_profile_parameters",
    "qos_profile_sensor_data",
    "qos_profile_services_default",
    "qos_profile_system_default",
    "rclpy",
    "srv",
]
