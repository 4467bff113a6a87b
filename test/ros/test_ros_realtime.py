"""Real-time DNNs through the manager under preemptive EDF, over real DDS between processes.

The host is one CPU component here, so the real-time DNN's stages and the best-effort DNN's share
it and the arbiter orders them: deadlines go in with the registration, miss rates come out in
the status and in /diagnostics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from ros_stack import Stack, start_stack, stop_stack

PERIOD = 1 / 15  # the test camera's rate
DEADLINE = 0.3  # generous: a SqueezeNet-V2 job takes ~10 ms alone, the host is shared with other tests


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = start_stack({"scheduling_policy": "edf", "host_split": "''"})
    try:
        yield s
    finally:
        stop_stack(s)


def test_real_time_dnn_meets_its_deadlines_beside_a_best_effort_one(stack: Stack) -> None:
    from rankmap_ros.ros.rclpy_compat import msg

    refused = stack.register("slow", "vgg16", period=PERIOD, deadline=0.001)
    assert not refused.success and "deadline 1.0 ms is shorter than one vgg16 job" in refused.message
    answer = stack.register("fast", "squeezenet_v2", period=PERIOD, deadline=DEADLINE)
    assert answer.success and "real-time, deadline 300 ms" in answer.message, answer.message
    assert stack.register("bulk", "mobilenet_v2").success
    for name in ("fast", "bulk"):
        stack.results[name] = []
        topic = f"/rankmap/{name}/classification"
        stack.node.create_subscription(msg("vision_msgs/msg/Classification"), topic, stack.results[name].append, 10)
    stack.spin_until(lambda: all(len(r) >= 5 for r in stack.results.values()), 150.0, "results of both DNNs")

    deadline = time.monotonic() + 30
    while True:
        dnns = {d.name: d for d in stack.status().dnns}
        if not math.isnan(dnns["fast"].deadline_miss_rate):
            break
        assert time.monotonic() < deadline, "no deadline miss rate in the status"
        time.sleep(0.5)
    fast, bulk = dnns["fast"], dnns["bulk"]
    assert math.isclose(fast.period, PERIOD) and math.isclose(fast.deadline, DEADLINE)
    assert fast.deadline_miss_rate <= 0.2, fast.deadline_miss_rate
    assert bulk.period == 0.0 and math.isnan(bulk.deadline_miss_rate)
    assert {s.component for s in fast.stages} == {s.component for s in bulk.stages} == {"cpu"}

    stack.spin_until(lambda: len(stack.diagnostics) >= 2, 10.0, "diagnostics")
    latest = stack.latest_diagnostics()
    values = {kv.key: kv.value for kv in latest["dnn fast"].values}
    assert float(values["deadline_s"]) == pytest.approx(DEADLINE) and "deadline_miss_rate" in values
    assert "deadline_s" not in {kv.key for kv in latest["dnn bulk"].values}
    stages = [status for name, status in latest.items() if name.startswith("stage fast[")]
    assert stages and all("preempted" in {kv.key for kv in s.values} for s in stages)

    def arbiter() -> dict[str, str]:
        return {kv.key: kv.value for kv in stack.latest_diagnostics()["component cpu"].values}

    # counted for the chains running now, which a re-plan (for bulk's measured input rate) starts anew
    stack.spin_until(lambda: int(arbiter()["decisions"]) > 10, 20.0, "the arbiter's decisions")
    assert arbiter()["policy"] == "edf"
    assert 0 < float(arbiter()["overhead_us_per_decision"]) < math.inf  # its cost: `rankmap bench realtime`


def test_an_executor_that_keeps_failing_is_restarted_after_a_growing_wait(stack: Stack) -> None:
    """On its one component there is nothing to plan around: a crash loop must not spin the cores."""
    import os
    import signal

    from rankmap_ros.ros.diagnostics import level_value

    killed: set[int] = set()
    for _ in range(4):  # max_failures (3) restarts at once, then the backoff
        stack.spin_until(lambda: set(stack.stage_pids("bulk")) - killed, 30.0, "bulk's next executor")
        pid = next(iter(set(stack.stage_pids("bulk")) - killed))
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)

    def waiting() -> bool:
        status = stack.latest_diagnostics().get("dnn bulk")
        return status is not None and level_value(status.level) == 2 and "keeps failing" in status.message

    stack.spin_until(waiting, 15.0, "bulk reported as waiting to restart")
    stack.spin_until(lambda: set(stack.stage_pids("bulk")) - killed, 30.0, "bulk restarted after its wait")
    count = len(stack.results["bulk"])
    stack.spin_until(lambda: len(stack.results["bulk"]) > count, 60.0, "bulk's results again")


def test_a_dnn_left_alone_with_priority_zero_is_still_planned(stack: Stack) -> None:
    """Its weight was 0 beside others; alone, the planner must not refuse an all-zero vector."""
    from rankmap_ros.ros import endpoints
    from rankmap_ros.ros.rclpy_compat import msg

    answer = stack.register("idle", "shufflenet", priority=0.0)
    assert answer.success, answer.message
    for name in ("fast", "bulk"):
        assert stack.call(endpoints.UNREGISTER_TYPE, endpoints.UNREGISTER_SERVICE, name=name).success
    got: list = []
    stack.node.create_subscription(msg("vision_msgs/msg/Classification"), answer.output_topic, got.append, 10)
    stack.spin_until(lambda: len(got) >= 3, 90.0, "results of the DNN left with priority 0")
    assert [d.priority for d in stack.status().dnns if d.name == "idle"] == [1.0]
