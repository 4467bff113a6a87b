"""`rankmap bench ros-realtime`: a real-time and a best-effort DNN sharing one core, through ROS.

What issue 7 promises, end to end through the manager: a camera, a real-time DNN registered with
the camera's period and a deadline, and a best-effort DNN, both mapped onto one single-core
cluster (`--split`, default `shared:0`: Pantheon's setting, one contended component; the other
CPUs carry the camera, the manager and DDS). For each executor (a process per stage, or the
component's container) under the same arbitrated policy, rounds alternating: the real-time DNN's
deadline miss rate over a window, counted here from the images' stamps (an image of the window
missed when no result for it arrived within the deadline, as the robot would see it), and the
best-effort DNN's results per second. The stage nodes' preemption counters come from
/diagnostics.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from rankmap_ros.ros import endpoints
from rankmap_ros.ros.bench_face import QuietNode, wait_for_manager
from rankmap_ros.ros.demo import demo_environment, stop_nodes

WARMUP_S = 5.0


def _stamp_ns(message: Any) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def run(
    executors: tuple[str, ...] = ("stage", "component"),
    rounds: int = 2,
    window_s: float = 20.0,
    split: str = "shared:0",
    policy: str = "edf",
    rate: float = 15.0,
    deadline: float = 0.05,
    realtime: str = "squeezenet_v2",
    best_effort: str = "resnet50",
    progress: Any = None,
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in executors}
    for r in range(rounds):
        for executor in executors:
            if progress is not None:
                progress(f"round {r + 1}/{rounds}: executor {executor}")
            runs[executor].append(_one(executor, window_s, split, policy, rate, deadline, realtime, best_effort))
    summary = {
        e: {
            "rt_miss_rate_median": statistics.median(x["rt_miss_rate"] for x in rs),
            "be_rate_median": statistics.median(x["be_rate"] for x in rs),
            "rt_latency_p50_ms_median": statistics.median(x["rt_latency_p50_ms"] for x in rs),
        }
        for e, rs in runs.items()
    }
    out: dict[str, Any] = {
        "setup": {
            "split": split,
            "policy": policy,
            "camera_hz": rate,
            "deadline_s": deadline,
            "realtime": realtime,
            "best_effort": best_effort,
            "window_s": window_s,
            "rounds": rounds,
        },
        "runs": runs,
        "summary": summary,
        "measured": True,
    }
    if {"stage", "component"} <= set(runs):
        # within a round, the two executors ran minutes apart on the same host: pair them
        out["be_rate_component_vs_stage"] = statistics.median(
            c["be_rate"] / s["be_rate"] for s, c in zip(runs["stage"], runs["component"], strict=True) if s["be_rate"]
        )
    return out


def _one(
    executor: str,
    window_s: float,
    split: str,
    policy: str,
    rate: float,
    deadline: float,
    realtime: str,
    best_effort: str,
) -> dict[str, Any]:
    env = demo_environment()
    os.environ.update(env)
    params = {"host_split": repr(split), "executor": executor, "scheduling_policy": policy, "max_dnns": 2}
    args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    manager = QuietNode(["rankmap_ros.ros.manager_node", "--ros-args", *args], env)
    camera_args = ["-r", "__ns:=/camera", "-p", f"rate:={rate}", "-p", "width:=320", "-p", "height:=240"]
    camera = QuietNode(["rankmap_ros.ros.camera_node", "--ros-args", *camera_args], env)
    try:
        return _measure(manager, window_s, rate, deadline, realtime, best_effort) | {"executor": executor}
    finally:
        stop_nodes({"camera": camera, "manager": manager}, timeout=20.0)


def _measure(
    manager: QuietNode, window_s: float, rate: float, deadline: float, realtime: str, best_effort: str
) -> dict[str, Any]:
    from rankmap_ros.ros.rclpy_compat import Node, msg, qos_profile_sensor_data, rclpy, srv

    register_type = srv(endpoints.REGISTER_TYPE)
    rclpy.init(args=[])
    node = Node("rankmap_bench_ros_realtime")
    frames: list[int] = []
    results: dict[str, list[tuple[int, int]]] = {"rt": [], "be": []}  # (stamp, arrival) in ns
    stages: dict[str, dict[str, str]] = {}

    def spin_until(done: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            if manager.poll() is not None:
                raise RuntimeError(f"the manager exited with status {manager.returncode}: {manager.last_words()}")
            rclpy.spin_once(node, timeout_sec=0.02)
        return bool(done())

    def on_diagnostics(array: Any) -> None:
        for s in array.status:
            name = s.name.split(": ", 1)[-1]
            if name.startswith("stage "):
                stages[name] = {kv.key: kv.value for kv in s.values}

    try:
        on_image = lambda m: frames.append(_stamp_ns(m))  # noqa: E731
        node.create_subscription(msg("sensor_msgs/msg/Image"), "/camera/image_raw", on_image, qos_profile_sensor_data)
        node.create_subscription(
            msg("diagnostic_msgs/msg/DiagnosticArray"), endpoints.DIAGNOSTICS_TOPIC, on_diagnostics, 10
        )
        register = node.create_client(register_type, endpoints.REGISTER_SERVICE)
        wait_for_manager(register, manager)
        requests = {
            "rt": {"model": realtime, "period": 1.0 / rate, "deadline": deadline, "priority": 1.0},
            "be": {"model": best_effort, "priority": 1.0},
        }
        for name, fill in requests.items():
            future = register.call_async(register_type.Request(name=name, input_topic="/camera/image_raw", **fill))
            spin_until(future.done, 10.0)
            answer = future.result()
            if answer is None or not answer.success:
                raise RuntimeError(f"registering {name} failed: {answer.message if answer else 'no answer'}")
            node.create_subscription(
                msg("vision_msgs/msg/Classification"),
                answer.output_topic,
                lambda m, n=name: results[n].append((_stamp_ns(m), time.time_ns())),
                10,
            )
        if not spin_until(lambda: all(results.values()), 180.0):
            seen = "; ".join(f"{k}: {v}" for k, v in stages.items()) or "no stage diagnostics"
            got = {k: len(v) for k, v in results.items()}
            raise RuntimeError(f"no results from both DNNs within 180 s (results {got}; {seen})")
        spin_until(lambda: False, WARMUP_S)
        start = time.time_ns()
        spin_until(lambda: False, window_s)
        end = time.time_ns() - int(deadline * 1e9)  # images from here on may still be answered in time
        spin_until(lambda: False, deadline + 0.5)
        return _score(frames, results, start, end, deadline, window_s, stages)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _score(
    frames: list[int],
    results: dict[str, list[tuple[int, int]]],
    start: int,
    end: int,
    deadline: float,
    window_s: float,
    stages: dict[str, dict[str, str]],
) -> dict[str, Any]:
    images = [t for t in frames if start <= t < end]
    answered = {s: a for s, a in results["rt"] if start <= s < end}
    ages = sorted((a - s) * 1e-9 for s, a in answered.items())
    on_time = sum(1 for s in images if s in answered and (answered[s] - s) * 1e-9 <= deadline)
    be = [a for s, a in results["be"] if start <= a < start + int(window_s * 1e9)]
    preempted = sum(int(v.get("preempted", 0)) for name, v in stages.items() if name.startswith("stage be["))
    be_frames = sum(int(v.get("frames", 0)) for name, v in stages.items() if name.startswith("stage be["))
    return {
        "images": len(images),
        "rt_on_time": on_time,
        "rt_miss_rate": round(1.0 - on_time / len(images), 4) if images else float("nan"),
        "rt_latency_p50_ms": round(ages[len(ages) // 2] * 1e3, 2) if ages else float("nan"),
        "be_rate": round(len(be) / window_s, 3),
        "be_preempted_share": round(preempted / be_frames, 3) if be_frames else 0.0,
    }


def report(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        f"{setup['realtime']} every {1 / setup['camera_hz'] * 1e3:.0f} ms (deadline {setup['deadline_s'] * 1e3:g} ms) "
        f"beside {setup['best_effort']} on {setup['split']} under {setup['policy']}, "
        f"{setup['rounds']} rounds of {setup['window_s']:g} s"
    ]
    for executor, runs in result["runs"].items():
        per = ", ".join(
            f"miss {r['rt_miss_rate']:.1%} p50 {r['rt_latency_p50_ms']} ms, BE {r['be_rate']}/s" for r in runs
        )
        lines.append(f"{executor}: {per}")
    if "be_rate_component_vs_stage" in result:
        lines.append(f"best-effort rate, component / stage (paired): x{result['be_rate_component_vs_stage']:.3f}")
    return "\n".join(lines)
