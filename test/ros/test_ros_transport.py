"""Pub/sub, services, parameters, graph and shutdown between separate processes over real DDS."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

from conftest import Peer


def test_pubsub_with_each_qos_profile_and_a_late_joiner(peers: list[Peer]) -> None:
    peers.append(Peer("talker"))
    assert peers[0].line()["ready"]
    peers.append(Peer("listener", "2.5"))  # joins after the latched message was published
    got = peers[1].line(timeout=30)
    assert peers[1].finish() == 0
    assert got["latched"] == ["latched hello"]
    for profile in ("reliable", "sensor", "system"):
        assert len(got[profile]) >= 20, profile
        numbers = [int(text.split()[1]) for text in got[profile]]
        assert numbers == sorted(numbers)
    assert got["reliable_on_sensor"] == []  # a best-effort writer never matches a reliable reader
    assert peers[0].interrupt() == 0


def test_service_reply_filtering_and_wait_for_service(peers: list[Peer]) -> None:
    """Two clients use the same sequence numbers; each must get only its own replies."""
    peers.append(Peer("caller", "a", "60"))
    peers.append(Peer("caller", "b", "60"))
    assert peers[0].line() == {"available_early": False}
    assert peers[1].line() == {"available_early": False}
    peers.append(Peer("echo_server"))
    assert peers[2].line()["ready"]
    for caller in peers[:2]:
        assert caller.line() == {"available": True}
    for caller in peers[:2]:
        assert caller.line(timeout=60) == {"calls": 60, "wrong": 0}
        assert caller.finish() == 0
    assert peers[2].interrupt() == 0


def test_parameters_from_the_command_line_and_a_file(peers: list[Peer], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        textwrap.dedent(
            """
            /**:
              ros__parameters:
                workers: 4
            robots:
              tuned:
                ros__parameters:
                  planner:
                    budget: 250
                  models: [mobilenet_v2, resnet50]
            other:
              ros__parameters:
                workers: 7
            """
        )
    )
    args = ["--ros-args", "-r", "__ns:=/robots", "--params-file", str(params), "-p", "rate:=12.5"]
    peers.append(Peer("params", *args))
    got = peers[0].line()
    assert peers[0].finish() == 0
    assert got["name"] == "/robots/tuned"
    assert got["values"] == {
        "rate": 12.5,
        "workers": 4,
        "platform": "orange_pi_5",
        "planner.budget": 250,
        "models": ["mobilenet_v2", "resnet50"],
    }


def test_out_of_range_parameter_is_refused_at_start(peers: list[Peer]) -> None:
    peers.append(Peer("params", "--ros-args", "-p", "rate:=500.0"))
    assert peers[0].finish() != 0
    assert "rate" in peers[0].process.stderr.read()  # type: ignore[union-attr]


def test_sigint_shuts_down_cleanly(peers: list[Peer]) -> None:
    peers.append(Peer("spinner"))
    assert peers[0].line()["ready"]
    assert peers[0].interrupt(timeout=5) == 0
    assert peers[0].line() == {"clean": True}


def test_nodes_are_announced_on_ros_discovery_info(peers: list[Peer]) -> None:
    """What `ros2 node list` reads, with Jazzy's 16-byte and Humble's 24-byte gids."""
    for distro, size in (("jazzy", 16), ("humble", 24)):
        env = {"ROS_DISTRO": distro, "ROS_DOMAIN_ID": str((int(os.environ["ROS_DOMAIN_ID"]) + 1 + size) % 233)}
        probe = Peer("graph", "probe", "/robot", env=env)
        peers.append(probe)
        assert probe.line()["ready"]
        observer = Peer("observer", "10", env=env)
        peers.append(observer)
        got = observer.line(timeout=30)
        assert observer.finish() == 0
        assert ["probe", "/robot"] in got["nodes"] and ["observer", "/"] in got["nodes"]
        assert got["gid_size"] == size and got["own_gid_len"] == size
        assert probe.interrupt() == 0


def test_node_logs_reach_rosout_as_rcl_publishes_them(rclpy_context: object, peers: list[Peer]) -> None:
    """rqt_console reads /rosout: a node's logs and its children's, with their caller, switchable off."""
    from rankmap_ros.ros.dds.node import Node
    from rankmap_ros.ros.dds.qos import qos_profile_rosout_default
    from rankmap_ros.ros.rclpy_compat import msg

    peers.append(Peer("chatty"))
    peers.append(Peer("chatty", "--ros-args", "-r", "__node:=silent", "--disable-stdout-logs"))
    peers.append(Peer("chatty", "--ros-args", "-r", "__node:=unpublished", "--disable-rosout-logs"))
    for peer in peers:
        assert peer.line()["ready"]
    node = Node("console")
    got: list = []
    node.create_subscription(
        msg("rcl_interfaces/msg/Log"), "/rosout", got.append, qos_profile_rosout_default
    )  # late: transient local
    deadline = time.monotonic() + 20
    while len({m.name for m in got if m.name.startswith("robot.")}) < 4 and time.monotonic() < deadline:
        rclpy_context.spin_once(node, timeout_sec=0.1)  # type: ignore[attr-defined]
    end = time.monotonic() + 1.0  # anything from the node that switched /rosout off would be in by now
    while time.monotonic() < end:
        rclpy_context.spin_once(node, timeout_sec=0.1)  # type: ignore[attr-defined]
    node.destroy_node()
    logs = {(m.name, m.level, m.msg) for m in got if m.name.startswith("robot.")}
    assert logs == {
        ("robot.chatty", 20, "planning with 3 DNNs"),
        ("robot.chatty.planner", 30, "terrain starved"),
        ("robot.silent", 20, "planning with 3 DNNs"),
        ("robot.silent.planner", 30, "terrain starved"),
    }  # not the debug line (below the level), not the loose logger's, nothing from `unpublished`
    first = next(m for m in got if m.name == "robot.chatty")
    assert first.function == "chatty" and first.file.endswith("ros_peers.py") and first.line > 0
    assert abs(first.stamp.sec - time.time()) < 60
    stderr = [peer.process.stderr for peer in peers]
    for peer in peers:
        assert peer.interrupt() == 0
    chatty, silent, unpublished = (stream.read() for stream in stderr)  # type: ignore[union-attr]
    assert "[robot.chatty]: planning with 3 DNNs" in chatty and "[loose]: console only" in chatty
    assert "planning with 3 DNNs" not in silent
    assert "[robot.unpublished]: planning with 3 DNNs" in unpublished
