"""A node's parameter services, as rclpy starts them for every node.

With them `ros2 param list/get/set/describe/dump` and rqt_reconfigure reach our nodes from a ROS 2
machine. The answers follow rclpy's: a request naming an undeclared parameter gets an empty list,
setting one fails with the reason, and a refused set changes nothing.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from rankmap_ros.ros.dds.parameters import (
    Parameter,
    ParameterNotDeclaredException,
    ParameterUninitializedException,
    SetParametersResult,
)
from rankmap_ros.ros.dds.qos import qos_profile_parameters
from rankmap_ros.ros.dds.types import get_message, get_service

if TYPE_CHECKING:
    from rankmap_ros.ros.dds.node import Node

SERVICES = (
    "describe_parameters",
    "get_parameters",
    "get_parameter_types",
    "list_parameters",
    "set_parameters",
    "set_parameters_atomically",
)
DEPTH_RECURSIVE = 0  # rcl_interfaces/srv/ListParameters


def _type_name(service: str) -> str:
    return "rcl_interfaces/srv/" + "".join(part.capitalize() for part in service.split("_"))


def list_names(names: list[str], prefixes: list[str], depth: int) -> tuple[list[str], list[str]]:
    """rclpy's listing: names under the prefixes (all without any) at most `depth` levels deep, and their prefixes.

    A level is a dot-separated part; `DEPTH_RECURSIVE` takes every level.
    """
    if depth < 0:
        raise ValueError(f"depth {depth} is negative")

    def shallow(text: str) -> bool:
        return depth == DEPTH_RECURSIVE or text.count(".") < depth

    listed: list[str] = []
    found_prefixes: list[str] = []
    for name in names:
        if prefixes:
            wanted = any(name == p or (name.startswith(p + ".") and shallow(name[len(p) + 1 :])) for p in prefixes)
        else:
            wanted = shallow(name)
        if not wanted:
            continue
        listed.append(name)
        prefix = name.rpartition(".")[0]
        if prefix and prefix not in found_prefixes:
            found_prefixes.append(prefix)
    return listed, found_prefixes


class ParameterService:
    def __init__(self, node: Node) -> None:
        self._node = weakref.ref(node)
        for service in SERVICES:
            node.create_service(
                get_service(_type_name(service)),
                f"{node.get_name()}/{service}",
                getattr(self, f"_{service}"),
                qos_profile=qos_profile_parameters,
            )

    def node(self) -> Node:
        node = self._node()
        if node is None:
            raise ReferenceError("the node of these parameter services is gone")
        return node

    def _describe_parameters(self, request: Any, response: Any) -> Any:
        try:
            response.descriptors = [self.node().describe_parameter(name) for name in request.names]
        except ParameterNotDeclaredException:
            response.descriptors = []
        return response

    def _get_parameters(self, request: Any, response: Any) -> Any:
        try:
            response.values = [self.node().get_parameter(name).get_parameter_value() for name in request.names]
        except (ParameterNotDeclaredException, ParameterUninitializedException):
            response.values = []
        return response

    def _get_parameter_types(self, request: Any, response: Any) -> Any:
        try:
            response.types = [int(self.node().get_parameter_type(name)) for name in request.names]
        except ParameterNotDeclaredException:
            response.types = []
        return response

    def _list_parameters(self, request: Any, response: Any) -> Any:
        try:
            response.result = self.node().list_parameters(list(request.prefixes), int(request.depth))
        except ValueError:
            response.result = get_message("rcl_interfaces/msg/ListParametersResult")()
        return response

    def _set_parameters(self, request: Any, response: Any) -> Any:
        response.results = [self._set([p]) for p in request.parameters]
        return response

    def _set_parameters_atomically(self, request: Any, response: Any) -> Any:
        response.result = self._set(list(request.parameters))
        return response

    def _set(self, messages: list[Any]) -> Any:
        try:
            parameters = [Parameter.from_parameter_msg(m) for m in messages]
            return self.node().set_parameters_atomically(parameters)
        except (ParameterNotDeclaredException, ValueError) as error:
            return SetParametersResult(successful=False, reason=str(error))
