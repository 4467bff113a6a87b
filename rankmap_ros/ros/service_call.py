"""One service call from a short-lived process: the `rankmap register|status|...` clients."""

from __future__ import annotations

import os
from typing import Any

from rankmap_ros.ros.rclpy_compat import Node, rclpy, srv


class ServiceCallError(RuntimeError):
    """The service did not appear or did not answer in time."""


def call_service(name: str, type_name: str, fill: dict[str, Any], timeout_sec: float = 5.0) -> Any:
    """Call `name` once with a request built from `fill`; returns the response.

    rclpy is initialised without the caller's command line (ours is not a --ros-args one) and
    always shut down again, so the call can be made from any short-lived program.
    """
    service_type = srv(type_name)
    rclpy.init(args=[])
    try:
        node = Node(f"rankmap_cli_{os.getpid()}")
        client = node.create_client(service_type, name)
        if not client.wait_for_service(timeout_sec=timeout_sec):
            domain = os.environ.get("ROS_DOMAIN_ID", "0")
            raise ServiceCallError(
                f"no server answers on {name} within {timeout_sec:g} s (ROS_DOMAIN_ID={domain}); "
                "is the manager running?"
            )
        future = client.call_async(service_type.Request(**fill))
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_sec)
        if not future.done():
            raise ServiceCallError(f"{name} did not reply within {timeout_sec:g} s")
        response = future.result()
        node.destroy_node()
        return response
    finally:
        rclpy.try_shutdown()
