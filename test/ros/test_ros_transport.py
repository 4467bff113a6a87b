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
    assert peers[0].line()["ready"]
    node = Node("console")
    got: list = []
    # late for `chatty`, whose lines come from the writer's history (transient local, 10 s lifespan)
    node.create_subscription(msg("rcl_interfaces/msg/Log"), "/rosout", got.append, qos_profile_rosout_default)
    peers.append(Peer("chatty", "--ros-args", "-r", "__node:=silent", "--disable-stdout-logs"))
    peers.append(Peer("chatty", "--ros-args", "-r", "__node:=unpublished", "--disable-rosout-logs"))
    for peer in peers[1:]:
        assert peer.line()["ready"]
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


def test_parameter_services_answer_as_rclpy_does(rclpy_context: object, peers: list[Peer]) -> None:
    """`ros2 param list/get/set/describe` and rqt_reconfigure reach a node through these six services."""
    from rankmap_ros.ros.dds.node import Node
    from rankmap_ros.ros.dds.parameters import Parameter
    from rankmap_ros.ros.dds.qos import qos_profile_parameter_events
    from rankmap_ros.ros.rclpy_compat import msg, srv

    peers.append(Peer("params", "keep", "--ros-args", "-r", "__ns:=/robots", "-p", "rate:=12.5"))
    assert peers[0].line()["name"] == "/robots/tuned"
    node = Node("param_client")
    events: list = []
    event_type = msg("rcl_interfaces/msg/ParameterEvent")
    node.create_subscription(event_type, "/parameter_events", events.append, qos_profile_parameter_events)

    def call(service: str, **fields: object) -> object:
        kind = srv("rcl_interfaces/srv/" + "".join(part.capitalize() for part in service.split("_")))
        client = node.create_client(kind, f"/robots/tuned/{service}")
        assert client.wait_for_service(timeout_sec=10), service
        future = client.call_async(kind.Request(**fields))
        rclpy_context.spin_until_future_complete(node, future, timeout_sec=10)  # type: ignore[attr-defined]
        node.destroy_client(client)
        return future.result()

    def values(*names: str) -> list:
        answer = call("get_parameters", names=list(names)).values
        as_parameters = [
            msg("rcl_interfaces/msg/Parameter")(name=n, value=v) for n, v in zip(names, answer, strict=True)
        ]
        return [Parameter.from_parameter_msg(p).value for p in as_parameters]

    listed = call("list_parameters", prefixes=[], depth=0).result
    assert set(listed.names) == {"rate", "workers", "platform", "planner.budget", "models", "use_sim_time"}
    assert list(listed.prefixes) == ["planner"]
    assert "planner.budget" not in call("list_parameters", prefixes=[], depth=1).result.names
    assert values("rate", "workers", "models") == [12.5, 2, ["a"]]
    assert call("get_parameters", names=["rate", "nope"]).values == []  # rclpy: one unknown name, no values
    assert list(call("get_parameter_types", names=["rate", "models"]).types) == [3, 9]
    (rate,) = call("describe_parameters", names=["rate"]).descriptors
    assert rate.description == "frames per second" and rate.floating_point_range[0].to_value == 60.0

    wanted = [Parameter("rate", value=20.0), Parameter("platform", value="x86"), Parameter("rate", value=500.0)]
    wanted.append(Parameter("rate", value=25))  # `ros2 param set /robots/tuned rate 25`: an integer
    results = call("set_parameters", parameters=[p.to_parameter_msg() for p in wanted]).results
    assert [r.successful for r in results] == [True, False, False, False]
    assert "read-only" in results[1].reason and "outside [1.0, 60.0]" in results[2].reason
    assert "expected DOUBLE" in results[3].reason
    both = [Parameter("workers", value=4), Parameter("rate", value=99.0)]
    atomic = call("set_parameters_atomically", parameters=[p.to_parameter_msg() for p in both]).result
    assert not atomic.successful and "rate" in atomic.reason
    unknown = call("set_parameters", parameters=[Parameter("nope", value=1).to_parameter_msg()]).results[0]
    assert not unknown.successful and "not declared" in unknown.reason
    assert values("rate", "workers", "platform") == [20.0, 2, "orange_pi_5"]  # only the good set took

    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        rclpy_context.spin_once(node, timeout_sec=0.1)  # type: ignore[attr-defined]
    end = time.monotonic() + 1.0  # a wrong event (a refused set) would be in by then
    while time.monotonic() < end:
        rclpy_context.spin_once(node, timeout_sec=0.1)  # type: ignore[attr-defined]
    changed = [(e.node, p.name, p.value.double_value) for e in events for p in e.changed_parameters]
    assert changed == [("/robots/tuned", "rate", 20.0)]
    assert not [p for e in events for p in (*e.new_parameters, *e.deleted_parameters)]
    node.destroy_node()
    assert peers[0].interrupt() == 0


def test_use_sim_time_makes_the_node_clock_and_its_timers_follow_clock(rclpy_context: object) -> None:
    """Gazebo and `ros2 bag play --clock` drive time through /clock for nodes launched with use_sim_time."""
    from rankmap_ros.ros.dds.node import Node
    from rankmap_ros.ros.dds.parameters import Parameter
    from rankmap_ros.ros.dds.time import Clock, ClockType, Time
    from rankmap_ros.ros.dds.time_source import CLOCK_QOS
    from rankmap_ros.ros.rclpy_compat import msg

    wall = Node("wall_clock")
    assert wall.get_parameter("use_sim_time").value is False and not wall.get_clock().ros_time_is_active
    assert abs(wall.get_clock().now().nanoseconds / 1e9 - time.time()) < 1
    wall.destroy_node()

    simulator = Node("simulator")
    clock_type = msg("rosgraph_msgs/msg/Clock")
    publisher = simulator.create_publisher(clock_type, "/clock", CLOCK_QOS)
    node = Node("follower", cli_args=["--ros-args", "-p", "use_sim_time:=true"])
    assert node.get_clock().ros_time_is_active and node.get_clock().now().nanoseconds == 0  # no /clock yet
    deadline = time.monotonic() + 10
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)

    def at(seconds: float, spin_s: float = 0.3) -> None:
        publisher.publish(clock_type(clock=Time(seconds=seconds).to_msg()))
        end = time.monotonic() + spin_s
        while time.monotonic() < end:
            rclpy_context.spin_once(node, timeout_sec=0.05)  # type: ignore[attr-defined]

    at(100.0)
    assert node.get_clock().now().nanoseconds == 100 * 10**9
    fired: list[float] = []
    steady: list[int] = []
    node.create_timer(1.0, lambda: fired.append(node.get_clock().now().nanoseconds / 1e9))
    node.create_timer(0.1, lambda: steady.append(1), clock=Clock(clock_type=ClockType.STEADY_TIME))
    at(100.9999)
    cpu = time.process_time()
    at(100.9999, spin_s=1.5)  # the simulation paused 0.1 ms before the timer: wall time does not count
    assert fired == [] and len(steady) >= 5
    assert time.process_time() - cpu < 0.15  # waiting for /clock, not waking every 0.1 ms of wall time
    at(100.5)
    at(101.2)
    assert fired == [101.2]
    at(105.0)  # a jump over three periods fires once, as rcl's timers do
    assert fired == [101.2, 105.0]
    at(105.3)
    at(105.2)  # back, but not before the last call: the deadline (106 s) stands, as in rcl
    at(106.0)
    assert fired == [101.2, 105.0, 106.0]
    at(50.0)  # back before the last call (a bag played in a loop): the period starts again from there
    at(50.5)
    assert fired == [101.2, 105.0, 106.0]
    at(51.0)
    assert fired == [101.2, 105.0, 106.0, 51.0]

    (refused,) = node.set_parameters([Parameter("use_sim_time", value="yes")])
    assert not refused.successful and node.get_clock().ros_time_is_active
    assert node.set_parameters([Parameter("use_sim_time", value=False)])[0].successful
    assert abs(node.get_clock().now().nanoseconds / 1e9 - time.time()) < 1  # wall time again
    node.destroy_node()
    simulator.destroy_node()
