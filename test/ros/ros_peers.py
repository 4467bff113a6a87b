"""Peer processes for the transport tests, written as ordinary rclpy node programs.

Run as `python ros_peers.py ROLE [args] [--ros-args ...]`; each prints JSON lines on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rankmap_ros.ros.rclpy_compat import (
    DurabilityPolicy,
    ExternalShutdownException,
    FloatingPointRange,
    IntegerRange,
    MultiThreadedExecutor,
    Node,
    ParameterDescriptor,
    QoSProfile,
    msg,
    qos_profile_sensor_data,
    qos_profile_system_default,
    rclpy,
    srv,
)

String = msg("std_msgs/msg/String")
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
PROFILES = {"reliable": 10, "sensor": qos_profile_sensor_data, "system": qos_profile_system_default}


def say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


def spin(node: Any, executor: Any = None) -> None:
    try:
        rclpy.spin(node, executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def talker() -> None:
    node = Node("talker")
    node.create_publisher(String, "latched", LATCHED).publish(String(data="latched hello"))
    publishers = {name: node.create_publisher(String, name, qos) for name, qos in PROFILES.items()}
    count = [0]

    def tick() -> None:
        count[0] += 1
        for name, publisher in publishers.items():
            publisher.publish(String(data=f"{name} {count[0]}"))

    node.create_timer(0.02, tick)
    say(ready=True)
    spin(node)


def listener(seconds: str) -> None:
    node = Node("listener")
    got: dict[str, list[str]] = {"latched": [], "reliable_on_sensor": [], **{n: [] for n in PROFILES}}
    node.create_subscription(String, "latched", lambda m: got["latched"].append(m.data), LATCHED)
    for name, qos in PROFILES.items():
        node.create_subscription(String, name, lambda m, n=name: got[n].append(m.data), qos)
    node.create_subscription(String, "sensor", lambda m: got["reliable_on_sensor"].append(m.data), 10)
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    say(**got)
    node.destroy_node()
    rclpy.shutdown()


def echo_server() -> None:
    set_priorities = srv("rankmap_ros/srv/SetPriorities")

    def on_set(request: Any, response: Any) -> Any:
        response.success, response.message = True, request.mode
        response.names_in_force, response.priorities_in_force = list(request.names), request.priorities
        return response

    node = Node("echo_server")
    node.create_service(set_priorities, "/echo", on_set)
    say(ready=True)
    spin(node)


def caller(tag: str, calls: str) -> None:
    set_priorities = srv("rankmap_ros/srv/SetPriorities")
    node = Node(f"caller_{tag}")
    client = node.create_client(set_priorities, "/echo")
    say(available_early=client.wait_for_service(timeout_sec=0.3))
    say(available=client.wait_for_service(timeout_sec=20.0))
    wrong = 0
    for index in range(int(calls)):
        future = client.call_async(set_priorities.Request(mode=tag, names=[f"{tag}{index}"], priorities=[float(index)]))
        rclpy.spin_until_future_complete(node, future, timeout_sec=5.0)
        reply = future.result()
        wrong += reply is None or reply.message != tag or list(reply.names_in_force) != [f"{tag}{index}"]
    say(calls=int(calls), wrong=wrong)
    node.destroy_node()
    rclpy.shutdown()


def params(keep: str = "") -> None:
    """Declares its parameters and says their values; `keep` spins on, serving them."""
    node = Node("tuned")
    rate = ParameterDescriptor(
        description="frames per second", floating_point_range=[FloatingPointRange(from_value=1.0, to_value=60.0)]
    )
    node.declare_parameter("rate", 30.0, rate)
    node.declare_parameter("workers", 2, ParameterDescriptor(integer_range=[IntegerRange(from_value=1, to_value=8)]))
    node.declare_parameter("platform", "orange_pi_5", ParameterDescriptor(read_only=True))
    node.declare_parameter("planner.budget", 100)
    node.declare_parameter("models", ["a"])
    say(
        name=node.get_fully_qualified_name(),
        values={n: node.get_parameter(n).value for n in ("rate", "workers", "platform", "planner.budget", "models")},
    )
    if keep:
        spin(node)
        return
    node.destroy_node()
    rclpy.shutdown()


def spinner() -> None:
    node = Node("spinner")
    node.create_timer(0.05, lambda: None)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    try:
        say(ready=True)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        say(clean=True)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def graph(name: str, namespace: str) -> None:
    node = Node(name, namespace=namespace)
    node.create_publisher(String, "out", 10)
    say(ready=True)
    spin(node)


def observer(seconds: str) -> None:
    from rankmap_ros.ros.dds.distro import gid_size

    node = Node("observer")
    end = time.monotonic() + float(seconds)
    found: list[Any] = []
    while time.monotonic() < end and len(found) < 2:
        found = sorted(set(node.get_node_names_and_namespaces()))
        time.sleep(0.1)
    info = node.context.graph.message()
    say(nodes=found, gid_size=gid_size(), own_gid_len=len(info.gid.data))
    node.destroy_node()
    rclpy.shutdown()


def wire() -> None:
    import ros_samples

    store = ros_samples.reference_store()
    node = Node("wire_writer")
    for typename in ros_samples.own_messages() + ros_samples.STANDARD_PUBLISHED:
        data = ros_samples.seeded(store, typename)
        topic = "/wire/" + typename.replace("/msg/", "_")
        node.create_publisher(msg(typename), topic, LATCHED).publish(ros_samples.our_object(typename, data))
    for service in ros_samples.own_services():
        reply = ros_samples.our_object(f"{service}_Response", ros_samples.seeded(store, f"{service}_Response"))
        node.create_service(srv(service), "/wire/" + service.rsplit("/", 1)[1], lambda _q, _r, out=reply: out)
    say(ready=True)
    spin(node)


def chatty() -> None:
    """Logs through its node, a child of it, and a logger of no node, then waits to be stopped."""
    node = Node("chatty", namespace="/robot")
    node.get_logger().info("planning with 3 DNNs")
    node.get_logger().debug("below the level: nowhere")
    node.get_logger().get_child("planner").warning("terrain starved")
    rclpy.logging.get_logger("loose").error("console only")
    say(ready=True)
    spin(node)


def manager_stub() -> None:
    """Stands in for the manager: the four services over an in-memory registry."""
    from rankmap_ros.ros import endpoints

    stage, dnn, state = (msg(f"rankmap_ros/msg/{n}") for n in ("Stage", "DnnMapping", "MappingState"))
    registered: dict[str, Any] = {}

    def on_register(request: Any, response: Any) -> Any:
        if request.name in registered:
            response.success, response.message = False, f"a DNN named {request.name!r} is already registered"
            return response
        registered[request.name] = dnn(
            name=request.name,
            model=request.model,
            priority=request.priority,
            min_rate=request.min_rate,
            stages=[stage(unit_start=0, unit_stop=8, component="big", service_time=0.02)],
            predicted_rate=12.5,
            measured_rate=float("nan"),
            potential_throughput=0.5,
        )
        response.success, response.message = True, f"registered {request.name}"
        response.output_topic = f"/rankmap/{request.name}/classification"
        return response

    def on_unregister(request: Any, response: Any) -> Any:
        response.success = registered.pop(request.name, None) is not None
        response.message = f"unregistered {request.name}" if response.success else f"no DNN named {request.name!r}"
        return response

    def on_priorities(request: Any, response: Any) -> Any:
        for name, weight in zip(request.names, request.priorities, strict=True):
            registered[name].priority = weight
        response.success, response.message = True, f"{request.mode} priorities set"
        response.names_in_force = list(registered)
        response.priorities_in_force = [d.priority for d in registered.values()]
        return response

    def on_status(_request: Any, response: Any) -> Any:
        response.state = state(platform="host", planner="stub", priority_mode="static", dnns=list(registered.values()))
        return response

    node = Node("manager_stub")
    # relative, as the manager's: in its namespace when launched with one (`-r __ns:=/robot1`)
    node.create_service(srv(endpoints.REGISTER_TYPE), endpoints.REGISTER_SERVICE[1:], on_register)
    node.create_service(srv(endpoints.UNREGISTER_TYPE), endpoints.UNREGISTER_SERVICE[1:], on_unregister)
    node.create_service(srv(endpoints.SET_PRIORITIES_TYPE), endpoints.SET_PRIORITIES_SERVICE[1:], on_priorities)
    node.create_service(srv(endpoints.STATUS_TYPE), endpoints.STATUS_SERVICE[1:], on_status)
    say(ready=True)
    spin(node)


ROLES = {
    "manager_stub": manager_stub,
    "talker": talker,
    "listener": listener,
    "echo_server": echo_server,
    "caller": caller,
    "params": params,
    "spinner": spinner,
    "graph": graph,
    "observer": observer,
    "wire": wire,
    "chatty": chatty,
}

if __name__ == "__main__":
    rclpy.init(args=sys.argv)
    role, *rest = rclpy.utilities.remove_ros_args(sys.argv)[1:]
    ROLES[role](*rest)
