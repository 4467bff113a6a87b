"""Our CDR equals rosbags' (an independent ROS 2 CDR implementation) byte for byte."""

from __future__ import annotations

import array
import struct
import time

import numpy as np
import pytest
import ros_samples
from conftest import Peer
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication

from rankmap_ros.ros.dds import types, wire

REFERENCE = ros_samples.reference_store()
MESSAGES = ros_samples.own_messages() + ros_samples.STANDARD_PUBLISHED
SERVICE_PARTS = [f"{s}_{part}" for s in ros_samples.own_services() for part in ("Request", "Response")]


def dds_name(typename: str) -> str:
    package, kind, name = typename.split("/")
    return f"{package}::{kind}::dds_::{name}_"


@pytest.mark.parametrize("typename", MESSAGES + SERVICE_PARTS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_serialization_equals_rosbags(typename: str, seed: int) -> None:
    data = ros_samples.seeded(REFERENCE, typename, seed)
    ours = ros_samples.our_object(typename, data)
    expected = ros_samples.reference_cdr(REFERENCE, typename, data)
    assert types.serialize(ours) == expected
    assert types.deserialize(expected, type(ours)) == ours
    assert wire.dds_type_name(typename) == dds_name(typename)


def test_every_interface_file_is_covered() -> None:
    assert set(ros_samples.own_messages()) == set(types.registry().own_messages)
    assert set(ros_samples.own_services()) == set(types.registry().own_services)
    assert {"vision_msgs/msg/Classification", "vision_msgs/msg/Detection2DArray"} <= set(MESSAGES)


def test_empty_request_is_one_member_byte() -> None:
    request = types.get_service("rankmap_ros/srv/GetStatus").Request()
    assert types.serialize(request) == b"\x00\x01\x00\x00\x00"


def test_rclpy_conventions_of_generated_classes() -> None:
    status = types.get_message("diagnostic_msgs/msg/DiagnosticStatus")
    assert status.OK == b"\x00" and status.ERROR == b"\x02"
    assert status(level=status.WARN).level == b"\x01"
    assert types.get_message("geometry_msgs/msg/Quaternion")().w == 1.0
    image = types.get_message("sensor_msgs/msg/Image")(data=b"\x01\x02")
    assert bytes(image.data) == b"\x01\x02"
    with pytest.raises(TypeError):
        types.get_message("std_msgs/msg/String")(text="no such field")


def test_numeric_sequences_take_what_rclpy_takes() -> None:
    # rosidl's setters refuse numpy arrays (and ints in a float sequence): code publishing them
    # ran here and crashed on a robot, so the fallback refuses them too
    tensor = types.get_message("rankmap_ros/msg/Tensor")
    with pytest.raises(AssertionError, match=r"'data' field .* got a numpy array: pass array.array\('f'"):
        tensor(data=np.zeros(3, np.float32))
    with pytest.raises(AssertionError, match=r"'shape' field .* type 'int'.*got list"):
        tensor(shape=[1.0, 2.0])
    with pytest.raises(AssertionError, match=r"type code of 'I', not 'i'"):
        tensor(shape=array.array("i", [1]))
    made = tensor(shape=array.array("I", [1, 3]), data=[0.5, 1.5, 2.5])
    assert made.shape.tolist() == [1, 3] and made.data.tolist() == [0.5, 1.5, 2.5]
    received = types.deserialize(types.serialize(made), tensor)
    passed_on = tensor(shape=received.shape, data=received.data)  # as a relay node does
    assert passed_on == made
    assert bytes(types.get_message("sensor_msgs/msg/Image")(data=bytearray(b"\x07")).data) == b"\x07"


def test_wire_bytes_between_processes(rclpy_context: object, peers: list[Peer]) -> None:
    """A separate process publishes (transient-local) and serves every type; we read raw payloads."""
    from rankmap_ros.ros.dds.context import get_default_context
    from rankmap_ros.ros.dds.node import Node
    from rankmap_ros.ros.dds.qos import DurabilityPolicy, QoSProfile

    peers.append(Peer("wire"))
    assert peers[0].line()["ready"]
    node = Node("wire_reader")
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    payloads: dict[str, bytes] = {}
    for typename in MESSAGES:
        topic = "/wire/" + typename.replace("/msg/", "_")
        cls = types.get_message(typename)
        node.create_subscription(
            cls, topic, lambda raw, t=typename: payloads.setdefault(t, bytes(raw)), latched, raw=True
        )
    deadline = time.monotonic() + 20
    while len(payloads) < len(MESSAGES) and time.monotonic() < deadline:
        rclpy_context.spin_once(node, timeout_sec=0.1)  # type: ignore[attr-defined]
    assert set(payloads) == set(MESSAGES)
    for typename, payload in payloads.items():
        expected = ros_samples.reference_cdr(REFERENCE, typename, ros_samples.seeded(REFERENCE, typename))
        assert payload[: len(expected)] == expected, typename
        assert payload[len(expected) :] == b"\0" * (len(payload) - len(expected)) and len(payload) % 4 == 0

    publications = BuiltinDataReader(get_default_context().participant, BuiltinTopicDcpsPublication)
    seen = {(p.topic_name, p.type_name) for p in publications.take(1000)}
    for typename in MESSAGES:
        assert ("rt/wire/" + typename.replace("/msg/", "_"), dds_name(typename)) in seen

    for service in ros_samples.own_services():
        name = service.rsplit("/", 1)[1]
        assert (f"rr/wire/{name}Reply", dds_name(f"{service}_Response")) in seen
        check_service_wire(node, rclpy_context, service)
    node.destroy_node()
    assert peers[0].interrupt() == 0


def check_service_wire(node: object, rclpy: object, service: str) -> None:
    """Request and reply payloads: encapsulation, rmw_cyclonedds header (guid, seq), rosbags body."""
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from rankmap_ros.ros.dds.context import get_default_context

    participant = get_default_context().participant
    name = service.rsplit("/", 1)[1]
    srv_type = types.get_service(service)
    raw_requests = DataReader(
        participant, Topic(participant, f"rq/wire/{name}Request", wire.topic_type(f"{service}_Request", True))
    )
    raw_replies = DataReader(
        participant, Topic(participant, f"rr/wire/{name}Reply", wire.topic_type(f"{service}_Response", True))
    )
    client = node.create_client(srv_type, f"/wire/{name}")  # type: ignore[attr-defined]
    assert client.wait_for_service(timeout_sec=10)
    request_data = ros_samples.seeded(REFERENCE, f"{service}_Request")
    response_data = ros_samples.seeded(REFERENCE, f"{service}_Response")
    requests: list[bytes] = []
    replies: list[bytes] = []
    # The raw readers are volatile and new: a reply sent before discovery has matched them with
    # the peer's writer is not theirs to see, so call again (each call is a new request/reply).
    for _ in range(5):
        future = client.call_async(ros_samples.our_object(f"{service}_Request", request_data))
        rclpy.spin_until_future_complete(node, future, timeout_sec=10)  # type: ignore[attr-defined]
        assert future.result() == ros_samples.our_object(f"{service}_Response", response_data)
        deadline = time.monotonic() + 2
        while (not requests or not replies) and time.monotonic() < deadline:
            requests += [bytes(s) for s in raw_requests.take(10)]
            replies += [bytes(s) for s in raw_replies.take(10)]
            time.sleep(0.01)
        if requests and replies:
            break
    assert requests and replies, "no raw request or reply seen in five calls"
    for payload, part, data in ((requests[0], "Request", request_data), (replies[0], "Response", response_data)):
        body = ros_samples.reference_cdr(REFERENCE, f"{service}_{part}", data)
        guid, sequence = struct.unpack_from("<Qq", payload, 4)
        assert payload[:4] == b"\x00\x01\x00\x00"
        assert guid == client._guid and sequence > 0
        assert payload[20 : 20 + len(body) - 4] == body[4:]
    node.destroy_client(client)  # type: ignore[attr-defined]
