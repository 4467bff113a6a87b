"""The manager with `executor: component`: one container process per component hosts its stages.

Over real DDS between processes, under preemptive EDF on the two one-core clusters: a real-time
and two best-effort DNNs publish (three DNNs on two components: some share one); every stage on
a component reports its container's pid; a killed container is replaced and every chain it ran
comes back in it; unregistering a DNN unloads its stages while the container serves on; a
component whose container keeps dying is planned out; shutdown leaves no process or shared memory.
The manager runs with `use_sim_time` and a simulation paused at 1000 s, as under Gazebo.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from ros_stack import CAMERA_TOPIC, Stack, start_stack, stop_stack
from test_ros_manager import _alive, _manager_entries

PERIOD = 1 / 15
DEADLINE = 0.3
pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for big/little")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # two DNNs come from the manager's dnns_file, as on a robot; the test registers the third.
    # The containers' own mechanics: no re-plan for measured input rates may restart a chain
    # mid-test (that re-plan is tested in test_ros_face)
    dnns = tmp_path_factory.mktemp("config") / "dnns.yaml"
    fast = {"name": "fast", "model": "squeezenet_v2", "input_topic": CAMERA_TOPIC, "period": PERIOD}
    bulk = {"name": "bulk", "model": "mobilenet_v2", "input_topic": CAMERA_TOPIC}
    dnns.write_text(json.dumps({"dnns": [{**fast, "deadline": DEADLINE}, bulk]}))  # JSON is YAML
    params = {"scheduling_policy": "edf", "executor": "component", "plan_with_input_rates": "false"}
    params["use_sim_time"] = "true"  # as a Gazebo launch sets it: stamps follow /clock, supervision does not
    s = start_stack({**params, "dnns_file": str(dnns)})
    try:
        yield s
    finally:
        stop_stack(s)


def _values(status: object) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}  # type: ignore[attr-defined]


def _stage_components(stack: Stack, dnn: str) -> dict[int, set[str]]:
    """pid -> components of `dnn`'s stages running in it, from the latest diagnostics."""
    out: dict[int, set[str]] = {}
    for name, status in stack.latest_diagnostics().items():
        if name.startswith(f"stage {dnn}["):
            v = _values(status)
            out.setdefault(int(v["pid"]), set()).add(v["component"])
    return out


def _containers(stack: Stack) -> dict[str, dict[str, str]]:
    return {
        name.removeprefix("component "): _values(status)
        for name, status in stack.latest_diagnostics().items()
        if name.startswith("component ")
    }


def test_stages_of_a_component_share_its_container(stack: Stack) -> None:
    from rankmap_ros.ros.rclpy_compat import msg

    registered = {d.name: d for d in stack.status().dnns}
    assert registered.keys() == {"fast", "bulk"} and registered["fast"].period == pytest.approx(PERIOD)
    assert "'fast' is already registered" in stack.register("fast", "squeezenet_v2").message
    assert stack.register("extra", "shufflenet").success
    for name in ("fast", "bulk", "extra"):
        stack.results[name] = []
        topic = f"/rankmap/{name}/classification"
        stack.node.create_subscription(msg("vision_msgs/msg/Classification"), topic, stack.results[name].append, 10)
    stack.spin_until(lambda: all(len(r) >= 5 for r in stack.results.values()), 150.0, "results of both DNNs")
    stack.spin_until(
        lambda: sum(int(v["decisions"]) for v in _containers(stack).values()) > 10, 20.0, "containers' decisions"
    )

    containers = _containers(stack)
    by_pid = {int(v["pid"]): name for name, v in containers.items()}
    stages = {dnn: _stage_components(stack, dnn) for dnn in ("fast", "bulk", "extra")}
    for dnn, pids in stages.items():
        for pid, components in pids.items():
            # a process hosts the stages of one component, and it is that component's container
            assert len(components) == 1 and by_pid[pid] in components, (dnn, pids, containers)
    used = {c for pids in stages.values() for comps in pids.values() for c in comps}
    assert set(containers) == used
    for v in containers.values():
        assert v["executor"] == "component" and v["policy"] == "edf" and v["starts"] == "1"
    assert sum(int(v["stages"]) for v in containers.values()) > len(containers), "a container hosts two stages"
    assert all(0 < float(v["overhead_us_per_decision"]) < math.inf for v in containers.values() if int(v["decisions"]))

    deadline = time.monotonic() + 30
    while True:
        fast = {d.name: d for d in stack.status().dnns}["fast"]
        if not math.isnan(fast.deadline_miss_rate):
            break
        assert time.monotonic() < deadline, "no deadline miss rate in the status"
        time.sleep(0.5)
    assert fast.deadline_miss_rate <= 0.2, fast.deadline_miss_rate


def test_under_use_sim_time_stamps_follow_clock_while_supervision_keeps_wall_time(stack: Stack) -> None:
    """A simulation paused at 1000 s: the manager stamps 1000 s, and diagnostics (and supervision,
    which the next tests rely on to replace containers) go on at their wall-time period."""
    from rankmap_ros.ros.rclpy_compat import QoSProfile, ReliabilityPolicy, Time, msg

    clock_type = msg("rosgraph_msgs/msg/Clock")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # a simulator's
    publisher = stack.node.create_publisher(clock_type, "/clock", qos)

    def stamped_by_the_simulation() -> bool:
        publisher.publish(clock_type(clock=Time(seconds=1000).to_msg()))
        return bool(stack.diagnostics) and stack.diagnostics[-1][1].header.stamp.sec == 1000

    stack.spin_until(stamped_by_the_simulation, 20.0, "diagnostics stamped with /clock time")
    start = len(stack.diagnostics)
    began = time.monotonic()
    stack.spin_until(lambda: len(stack.diagnostics) >= start + 3, 10.0, "diagnostics while the simulation is paused")
    assert time.monotonic() - began < 6.0
    assert all(array.header.stamp.sec == 1000 for _, array in stack.diagnostics[start:])


def test_a_priority_change_reaches_the_running_stages(stack: Stack) -> None:
    """Under an arbitrated policy best-effort jobs go by priority: a change must reach the stages
    in their containers at once, also where the plan that follows moves none of them."""
    from rankmap_ros.ros import endpoints

    def stages(dnn: str, key: str) -> dict[str, str]:
        diagnostics = stack.latest_diagnostics().items()
        return {name: _values(status)[key] for name, status in diagnostics if name.startswith(f"stage {dnn}[")}

    def priority(dnn: str) -> float:
        (value,) = set(stages(dnn, "priority").values())  # every stage of a DNN has its DNN's
        return float(value)

    def set_bulk(weight: float) -> None:
        answer = stack.call(
            endpoints.SET_PRIORITIES_TYPE,
            endpoints.SET_PRIORITIES_SERVICE,
            mode="static",
            names=["bulk"],
            priorities=[weight],
        )
        assert answer.success, answer.message

    stack.spin_until(lambda: stages("bulk", "priority") and stages("extra", "priority"), 20.0, "stage priorities")
    assert priority("bulk") == pytest.approx(priority("extra"))  # both registered at 1
    frames = stages("bulk", "frames")
    set_bulk(4.0)
    stack.spin_until(lambda: priority("bulk") > 3.5 * priority("extra"), 20.0, "bulk's stages at 4 times extra's")
    now = stages("bulk", "frames")
    if now.keys() == frames.keys():  # the plan kept bulk's stages where they were: counting on, not restarted
        assert all(int(now[name]) >= int(frames[name]) for name in now), (frames, now)
    set_bulk(1.0)  # as the next tests expect it
    stack.spin_until(lambda: priority("bulk") == pytest.approx(priority("extra")), 20.0, "bulk back at 1")


def test_a_killed_container_is_replaced_with_every_chain_it_ran(stack: Stack) -> None:
    containers = _containers(stack)
    victim, info = next(iter(containers.items()))
    pid = int(info["pid"])
    hit = [dnn for dnn in ("fast", "bulk", "extra") if pid in _stage_components(stack, dnn)]
    os.kill(pid, signal.SIGKILL)
    killed_ns = time.time_ns()

    def fresh(dnn: str) -> int:
        """Results of images taken after the kill: not ones already on their way."""
        stamps = (r.header.stamp.sec * 1_000_000_000 + r.header.stamp.nanosec for r in stack.results[dnn])
        return sum(1 for t in stamps if t > killed_ns)

    def replaced() -> bool:
        now = _containers(stack).get(victim)
        return now is not None and int(now["pid"]) != pid and now["starts"] == "2" and int(now["stages"]) > 0

    stack.spin_until(replaced, 60.0, f"a new {victim} container")
    stack.spin_until(lambda: all(fresh(d) > 2 for d in hit), 90.0, "results again")
    for dnn in hit:
        assert int(_values(stack.latest_diagnostics()[f"dnn {dnn}"])["restarts"]) >= 1
        assert pid not in _stage_components(stack, dnn)
    assert not _alive(pid)


def test_a_hung_container_is_killed_and_replaced(stack: Stack) -> None:
    # A stopped process makes no progress and stamps no beat: after hung_timeout (5 s here) the
    # manager kills it and restarts its chains, while an idle-but-turning container is left alone.
    victim, info = min(_containers(stack).items(), key=lambda item: int(item[1]["stages"]))
    pid, starts = int(info["pid"]), int(info["starts"])
    others = {name: v["pid"] for name, v in _containers(stack).items() if name != victim}
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()

    def replaced() -> bool:
        now = _containers(stack).get(victim)
        return now is not None and int(now["pid"]) != pid and int(now["starts"]) == starts + 1

    stack.spin_until(replaced, 60.0, f"a new {victim} container")
    assert time.monotonic() - stopped >= 4.0, "killed before hung_timeout"
    assert not _alive(pid)
    assert others == {name: v["pid"] for name, v in _containers(stack).items() if name != victim}


def test_a_component_whose_container_keeps_dying_is_planned_out(stack: Stack) -> None:
    # max_failures is 3: kill the container running most chains until the manager drops its
    # component; the chains it ran must all be planned onto what is left, none lost.
    victim = max(_containers(stack).items(), key=lambda item: int(item[1]["stages"]))[0]
    killed: list[int] = []
    for _ in range(3):
        stack.spin_until(
            lambda: victim not in _containers(stack) or int(_containers(stack)[victim]["pid"]) not in killed,
            60.0,
            f"{victim}'s container back",
        )
        if victim not in _containers(stack):
            break
        killed.append(int(_containers(stack)[victim]["pid"]))
        os.kill(killed[-1], signal.SIGKILL)
    stack.spin_until(lambda: victim not in _containers(stack), 60.0, f"{victim} dropped")
    used = {s.component for d in stack.status().dnns for s in d.stages}
    assert used and victim not in used
    killed_ns = time.time_ns()

    def fresh(dnn: str) -> int:
        return sum(r.header.stamp.sec * 1_000_000_000 + r.header.stamp.nanosec > killed_ns for r in stack.results[dnn])

    stack.spin_until(lambda: all(fresh(d) > 2 for d in stack.results), 90.0, "every DNN's results on what is left")
    assert not [p for p in killed if _alive(p)]


def test_unregister_unloads_its_stages_and_the_container_serves_on(stack: Stack) -> None:
    from rankmap_ros.ros import endpoints

    stack.spin_until(lambda: _stage_components(stack, "fast") and _stage_components(stack, "bulk"), 30.0, "stages")
    pids = {p for dnn in ("fast", "bulk", "extra") for p in _stage_components(stack, dnn)}
    restarts = int(_values(stack.latest_diagnostics()["dnn fast"])["restarts"])
    answer = stack.call(endpoints.UNREGISTER_TYPE, endpoints.UNREGISTER_SERVICE, name="bulk")
    assert answer.success, answer.message
    count = len(stack.results["fast"])
    stack.spin_until(lambda: len(stack.results["fast"]) > count + 10, 60.0, "fast's results after bulk left")
    stack.spin_until(lambda: not any(n.startswith("stage bulk[") for n in stack.latest_diagnostics()), 10.0, "no bulk")
    assert all(_alive(p) for p in pids), "the containers stay up"
    hosted = sum(int(v["stages"]) for v in _containers(stack).values())
    assert hosted == sum(1 for n in stack.latest_diagnostics() if n.startswith(("stage fast[", "stage extra[")))
    assert int(_values(stack.latest_diagnostics()["dnn fast"])["restarts"]) == restarts


def test_shutdown_stops_the_containers_and_frees_the_memory(stack: Stack) -> None:
    pids = [int(v["pid"]) for v in _containers(stack).values()]
    assert pids and _manager_entries(stack.manager.pid)
    stack.manager.send_signal(signal.SIGINT)
    assert stack.manager.wait(timeout=20) == 0
    assert not [p for p in pids if _alive(p)]
    assert _manager_entries(stack.manager.pid) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["executor:=component"], "component needs an arbitrated scheduling_policy"),
        (["executor:=threads", "scheduling_policy:=edf"], "executor must be one of stage, component"),
    ],
)
def test_a_bad_executor_setting_stops_the_manager_with_the_reason(params: list[str], message: str) -> None:
    args = [sys.executable, "-m", "rankmap_ros.ros.manager_node", "--ros-args"]
    for p in params:
        args += ["-p", p]
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert message in done.stderr + done.stdout
