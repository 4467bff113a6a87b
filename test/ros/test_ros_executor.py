"""Executors, timers, callback groups, parameters and conventions, within one process over DDS."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from cyclonedds.core import Policy

from rankmap_ros.ros.dds import discovery, names
from rankmap_ros.ros.dds.args import parse
from rankmap_ros.ros.dds.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rankmap_ros.ros.dds.executor import MultiThreadedExecutor, SingleThreadedExecutor
from rankmap_ros.ros.dds.node import Node
from rankmap_ros.ros.dds.parameters import (
    FloatingPointRange,
    InvalidParameterTypeException,
    InvalidParameterValueException,
    Parameter,
    ParameterDescriptor,
    ParameterNotDeclaredException,
    SetParametersResult,
)
from rankmap_ros.ros.dds.qos import QoSProfile, qos_profile_sensor_data, qos_profile_system_default, to_cyclone


def spin_for(executor: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=max(0.0, end - time.monotonic()))


def test_timer_rate_and_cancel(rclpy_context: Any) -> None:
    node = Node("timed")
    ticks: list[float] = []
    timer = node.create_timer(0.05, lambda: ticks.append(time.monotonic()))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin_for(executor, 0.53)
    assert 7 <= len(ticks) <= 11
    timer.cancel()
    count = len(ticks)
    spin_for(executor, 0.2)
    assert len(ticks) == count
    executor.shutdown()
    node.destroy_node()


@pytest.mark.parametrize(
    ("group_type", "overlap"), [(ReentrantCallbackGroup, True), (MutuallyExclusiveCallbackGroup, False)]
)
def test_callback_groups_in_a_multithreaded_executor(rclpy_context: Any, group_type: type, overlap: bool) -> None:
    node = Node("grouped")
    group = group_type()
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow() -> None:
        start = time.monotonic()
        time.sleep(0.12)
        with lock:
            spans.append((start, time.monotonic()))

    node.create_timer(0.03, slow, callback_group=group)
    node.create_timer(0.03, slow, callback_group=group)
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    spin_for(executor, 0.6)
    executor.shutdown()
    node.destroy_node()
    spans.sort()
    overlapping = any(b[0] < a[1] - 1e-3 for a, b in itertools.pairwise(spans))
    assert len(spans) >= 3
    assert overlapping is overlap


def test_guard_condition_and_in_process_service(rclpy_context: Any) -> None:
    from rankmap_ros.ros.dds.types import get_service

    node = Node("local")
    fired = threading.Event()
    guard = node.create_guard_condition(fired.set)
    service_type = get_service("rankmap_ros/srv/UnregisterDnn")
    node.create_service(service_type, "unregister", lambda q, r: service_type.Response(success=True, message=q.name))
    client = node.create_client(service_type, "unregister")
    assert client.wait_for_service(timeout_sec=5)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Timer(0.05, guard.trigger).start()
    future = client.call_async(service_type.Request(name="dnn0"))
    executor.spin_until_future_complete(future, timeout_sec=5)
    assert future.result().message == "dnn0"
    spin_for(executor, 0.1)
    assert fired.is_set()
    executor.shutdown()
    node.destroy_node()


def test_parameter_descriptors_and_callbacks(rclpy_context: Any) -> None:
    strict = Node("strict", cli_args=["--ros-args", "-p", "gain:=2"])
    with pytest.raises(InvalidParameterTypeException, match="'gain' is DOUBLE but was given 2"):
        strict.declare_parameter("gain", 1.0)  # rclpy refuses an integer for a double: a robot would not start
    strict.destroy_node()
    node = Node("params", cli_args=["--ros-args", "-p", "gain:=2.0", "-p", "other:gain:=9"])
    descriptor = ParameterDescriptor(floating_point_range=[FloatingPointRange(from_value=0.0, to_value=5.0)])
    assert node.declare_parameter("gain", 1.0, descriptor).value == 2.0
    assert not node.set_parameters([Parameter("gain", value=3)])[0].successful  # nor over the set services
    node.declare_parameter("mode", "static", ParameterDescriptor(read_only=True))
    refused = node.set_parameters([Parameter("gain", value=7.5), Parameter("mode", value="dynamic")])
    assert [r.successful for r in refused] == [False, False]
    assert node.set_parameters([Parameter("gain", value="fast")])[0].successful is False
    node.add_on_set_parameters_callback(lambda ps: SetParametersResult(successful=ps[0].value != 4.0, reason="no 4"))
    assert node.set_parameters([Parameter("gain", value=4.0)])[0].reason == "no 4"
    assert node.set_parameters([Parameter("gain", value=3.0)])[0].successful
    assert node.get_parameter("gain").value == 3.0
    assert node.get_parameters_by_prefix("")["gain"].value == 3.0
    with pytest.raises(ParameterNotDeclaredException):
        node.get_parameter("missing")
    with pytest.raises(InvalidParameterValueException):
        node.declare_parameter("limit", 9.0, descriptor)
    node.destroy_node()


def test_names_remapping_and_node_identity(rclpy_context: Any) -> None:
    node = Node("cam", namespace="robot", cli_args=["--ros-args", "-r", "image:=/camera/raw", "-r", "__node:=front"])
    assert node.get_fully_qualified_name() == "/robot/front"
    assert node.resolve_topic_name("image") == "/camera/raw"
    assert node.resolve_topic_name("~/status") == "/robot/front/status"
    assert node.get_logger().name == "robot.front"
    node.destroy_node()
    assert names.topic("/chatter") == "rt/chatter"
    assert names.request_topic("/rankmap/register") == "rq/rankmap/registerRequest"
    assert names.reply_topic("/rankmap/register") == "rr/rankmap/registerReply"
    with pytest.raises(names.InvalidNameError):
        names.expand("bad//name", "n", "/")
    with pytest.raises(ValueError, match="name:=value"):
        parse(["--ros-args", "-p", "novalue"])


def test_qos_profiles_map_like_rmw_cyclonedds() -> None:
    sensor = to_cyclone(qos_profile_sensor_data)
    assert sensor[Policy.Reliability] == Policy.Reliability.BestEffort
    assert sensor[Policy.History] == Policy.History.KeepLast(5)
    assert sensor[Policy.WriterDataLifecycle] == Policy.WriterDataLifecycle(autodispose=False)
    system = to_cyclone(qos_profile_system_default)
    assert isinstance(system[Policy.Reliability], Policy.Reliability.Reliable)
    assert system[Policy.History] == Policy.History.KeepLast(1)
    from rankmap_ros.ros.dds.qos import DurabilityPolicy

    latched = to_cyclone(QoSProfile(depth=3, durability=DurabilityPolicy.TRANSIENT_LOCAL), b"typehash=x;")
    assert latched[Policy.Durability] == Policy.Durability.TransientLocal
    assert latched[Policy.DurabilityService].history == Policy.History.KeepLast(3)
    assert latched[Policy.Userdata].data == b"typehash=x;"
    with pytest.raises(ValueError):
        QoSProfile(depth=0)


def test_discovery_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    jazzy_local = discovery.domain_config({"ROS_LOCALHOST_ONLY": "1"})
    assert "<AllowMulticast>false</AllowMulticast>" in jazzy_local and '<Peer address="localhost"/>' in jazzy_local
    off = discovery.domain_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}, pid=42)
    assert "<Tag>ros_discovery_off_42</Tag>" in off
    peers = discovery.domain_config({"ROS_STATIC_PEERS": "10.0.0.2;robot", "CYCLONEDDS_URI": "file:///x.xml"})
    assert '<Peer address="10.0.0.2"/><Peer address="robot"/>' in peers and peers.endswith(",file:///x.xml")
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert '<NetworkInterface address="127.0.0.1"/>' in discovery.domain_config({"ROS_LOCALHOST_ONLY": "1"})
    with pytest.raises(discovery.DiscoveryConfigError):
        discovery.domain_id({"ROS_DOMAIN_ID": "300"})


def test_a_sample_that_does_not_decode_is_dropped_and_the_next_delivered(rclpy_context: Any, capsys: Any) -> None:
    # A broken or foreign peer's sample (here a string that is not UTF-8) must not end spin():
    # every node of ours would stop serving on it.
    from rankmap_ros.ros.dds.types import get_message, serialize

    string = get_message("std_msgs/msg/String")
    node = Node("garbled")
    got: list[Any] = []
    node.create_subscription(string, "/garbled", got.append, 10)
    publisher = node.create_publisher(string, "/garbled", 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + 10
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        spin_for(executor, 0.05)
    publisher.publish(serialize(string(data="AAAA")).replace(b"AAAA", b"\xff\xfe\xfd\xfc"))
    publisher.publish(string(data="fine"))
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        spin_for(executor, 0.05)
    assert [m.data for m in got] == ["fine"]
    assert "dropped a sample on /garbled that does not decode: SerdeError" in capsys.readouterr().err
    executor.shutdown()
    node.destroy_node()
