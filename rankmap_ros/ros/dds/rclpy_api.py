"""The `rclpy` module's top level over Cyclone DDS: `init`, `spin`, `shutdown`, ... here, and
`rclpy.qos`, `rclpy.executors`, `rclpy.parameter`, ... as attributes. Node code never imports it
directly: it imports `rankmap_ros.ros.rclpy_compat`, which picks real rclpy when it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rankmap_ros.ros.dds import (
    callback_groups,
    context,
    executor,
    logging,
    node,
    parameters,
    qos,
    task,
    time,
    utilities,
)
from rankmap_ros.ros.dds.context import (
    Context,
    ExternalShutdownException,
    SignalHandlerOptions,
    get_default_context,
    install_signal_handlers,
)
from rankmap_ros.ros.dds.executor import Executor, SingleThreadedExecutor
from rankmap_ros.ros.dds.node import Node
from rankmap_ros.ros.dds.task import Future

# rclpy's submodule names, so `rclpy.executors.MultiThreadedExecutor` etc. resolve.
executors = executor
parameter = parameters
clock = time
duration = time

_global_executors: dict[int, tuple[Any, Executor]] = {}


def init(
    *,
    args: Sequence[str] | None = None,
    context: Context | None = None,
    domain_id: int | None = None,
    signal_handler_options: SignalHandlerOptions | None = None,
) -> None:
    (context or get_default_context()).init(args, domain_id=domain_id)
    install_signal_handlers(signal_handler_options or SignalHandlerOptions.ALL)


def ok(*, context: Context | None = None) -> bool:
    return (context or get_default_context()).ok()


def shutdown(*, context: Context | None = None, uninstall_handlers: bool | None = None) -> None:
    (context or get_default_context()).shutdown()


def try_shutdown(*, context: Context | None = None, uninstall_handlers: bool | None = None) -> None:
    (context or get_default_context()).try_shutdown()


def create_node(node_name: str, **kwargs: Any) -> Node:
    return Node(node_name, **kwargs)


def get_global_executor(context: Context | None = None) -> Executor:
    """One SingleThreadedExecutor per context (re-created after the context is re-initialized)."""
    ctx = context or get_default_context()
    participant = ctx.require_participant()
    cached = _global_executors.get(id(ctx))
    if cached is None or cached[0] is not participant:
        cached = (participant, SingleThreadedExecutor(context=ctx))
        _global_executors[id(ctx)] = cached
    return cached[1]


def _spin_with(node_: Node, executor_: Executor | None) -> tuple[Executor, bool]:
    chosen = executor_ or get_global_executor(node_.context)
    return chosen, chosen.add_node(node_)


def spin(node: Node, executor: Executor | None = None) -> None:
    chosen, added = _spin_with(node, executor)
    try:
        chosen.spin()
    finally:
        if added:
            chosen.remove_node(node)


def spin_once(node: Node, *, executor: Executor | None = None, timeout_sec: float | None = None) -> None:
    chosen, added = _spin_with(node, executor)
    try:
        chosen.spin_once(timeout_sec=timeout_sec)
    finally:
        if added:
            chosen.remove_node(node)


def spin_until_future_complete(
    node: Node, future: Future, executor: Executor | None = None, timeout_sec: float | None = None
) -> None:
    chosen, added = _spin_with(node, executor)
    try:
        chosen.spin_until_future_complete(future, timeout_sec)
    finally:
        if added:
            chosen.remove_node(node)


__all__ = [
    "Context",
    "ExternalShutdownException",
    "Future",
    "Node",
    "callback_groups",
    "clock",
    "context",
    "create_node",
    "duration",
    "executors",
    "get_default_context",
    "get_global_executor",
    "init",
    "logging",
    "node",
    "ok",
    "parameter",
    "qos",
    "shutdown",
    "spin",
    "spin_once",
    "spin_until_future_complete",
    "task",
    "time",
    "try_shutdown",
    "utilities",
]
