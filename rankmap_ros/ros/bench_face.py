"""`rankmap bench ros-face`: the ROS face's targets, measured between real processes.

Starts a manager and a 640x480 rgb8 camera at 30 Hz on a private localhost domain, then measures
from this process (a ROS node): the answer time of each registration of three DNNs and the time
to their first result, frame loss and latency per hop over a window, the status round trip, the
time from SIGKILL of an executor to the first result of a frame captured after the kill, the
resident memory of everything started, and that shutdown leaves no process or shared memory
behind. With `executor="component"` the stages run in one container process per component: the
kill then takes a whole container down, and memory shows what composing the stages saves;
`run_both` measures the two executors one after the other under the same policy.

Latency per hop: a result's age when it arrives here (now - its image's capture stamp) minus what
the DNN itself took (each stage's mean service time and the mean time a frame waited in the
stage's input for the stage to become free), over its hops: camera -> first stage (DDS, decode),
stage -> stage (shared memory), last stage -> this node (DDS).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rankmap_ros.ros import endpoints
from rankmap_ros.ros.demo import auto_split, demo_environment, descendants, memory_of, stop_nodes
from rankmap_ros.ros.diagnostics import parse_value
from rankmap_ros.ros.perception_demo_node import DEMO_DNNS

STATUS_CALLS = 50
WINDOW_S = 10.0


class QuietNode(subprocess.Popen[bytes]):
    """`python -m argv` in `env`, no stdin; its log goes to a file (it would drown the report),
    kept to say why the node ended if it ends early."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - as long as the node object; gone with it
        super().__init__([sys.executable, "-m", *argv], env=env, stdin=subprocess.DEVNULL, stderr=self.log)

    def last_words(self) -> str:
        self.log.seek(0)
        lines = [line for line in self.log.read().decode(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no log)"


def wait_for_manager(client: Any, manager: QuietNode, timeout_s: float = 60.0) -> None:
    """Until the manager's service answers; a manager that exits first ends the wait with its reason."""
    deadline = time.monotonic() + timeout_s
    while not client.wait_for_service(timeout_sec=0.5):
        if manager.poll() is not None:
            raise RuntimeError(f"the manager exited with status {manager.returncode}: {manager.last_words()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the manager did not come up within {timeout_s:g} s")


def run(kills: int = 3, split: str = "", executor: str = "stage", policy: str = "") -> dict[str, Any]:
    """One manager with `executor` (stage or component) under `policy` (default: time_sharing,
    or edf for the component executor, which needs an arbitrated one)."""
    env = demo_environment()
    os.environ.update(env)
    split = split or auto_split()
    policy = policy or ("edf" if executor == "component" else "time_sharing")
    # Every kill counts as a failure of its component: measure recovery, not dropping the component.
    params = {"host_split": repr(split), "executor": executor, "scheduling_policy": policy, "max_failures": 100}
    args = [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]
    manager = QuietNode(["rankmap_ros.ros.manager_node", "--ros-args", *args], env)
    camera = QuietNode(["rankmap_ros.ros.camera_node", "--ros-args", "-r", "__ns:=/camera"], env)
    try:
        result = _measure(manager, kills)
        result["memory"] = memory_of(descendants([manager.pid, camera.pid]))
        pids = [p for p in descendants([manager.pid]) if p != manager.pid]
    finally:
        stop_nodes({"camera": camera, "manager": manager}, timeout=20.0)
    deadline = time.monotonic() + 5.0  # the fork server exits once the manager's pipe closes
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    result["leftover_processes"] = [p for p in pids if Path(f"/proc/{p}").exists()]
    result["leftover_shm"] = [e.name for e in Path("/dev/shm").iterdir() if f"rankmap-{manager.pid}-" in e.name]
    result["split"] = split
    result["executor"] = executor
    result["policy"] = policy
    result["measured"] = True
    return result


def run_both(kills: int = 3, split: str = "", policy: str = "edf") -> dict[str, Any]:
    """Both executors, one after the other, under one arbitrated policy; and their memory ratio."""
    runs = {executor: run(kills, split, executor, policy) for executor in ("stage", "component")}
    stage, composed = runs["stage"]["memory"], runs["component"]["memory"]
    return {
        "executors": runs,
        "component_vs_stage": {
            "processes": [stage["processes"], composed["processes"]],
            "rss_ratio": round(composed["rss_mb_total"] / stage["rss_mb_total"], 3),
            "pss_ratio": round(composed["pss_mb_total"] / stage["pss_mb_total"], 3),
        },
        "measured": True,
    }


def _stamp_ns(result: Any) -> int:
    return result.header.stamp.sec * 1_000_000_000 + result.header.stamp.nanosec


def _measure(manager: QuietNode, kills: int) -> dict[str, Any]:
    from rankmap_ros.ros.rclpy_compat import Node, msg, qos_profile_sensor_data, rclpy, srv

    register_type, status_type = srv(endpoints.REGISTER_TYPE), srv(endpoints.STATUS_TYPE)
    rclpy.init(args=[])
    node = Node("rankmap_bench_face")
    arrivals: dict[str, list[tuple[float, int]]] = {}
    ages: dict[str, list[float]] = {}
    pids: dict[str, list[int]] = {}
    stages: dict[str, dict[str, dict[str, str]]] = {}  # dnn -> stage label -> latest values
    camera: list[int] = []
    # dnn -> (camera frames seen here, frames its first stage received) at each diagnostics array
    counts: dict[str, list[tuple[int, int]]] = {}

    def on_diagnostics(array: Any) -> None:
        for s in array.status:
            name = s.name.split(": ", 1)[-1]
            if name.startswith("stage "):
                dnn = name[6:].split("[", 1)[0]
                values = {kv.key: kv.value for kv in s.values}
                pids.setdefault(dnn, []).append(int(values["pid"]))
                stages.setdefault(dnn, {})[name] = values
                if "[0:" in name:
                    counts.setdefault(dnn, []).append((len(camera), int(values["received"])))

    def on_result(name: str, result: Any) -> None:
        stamp = _stamp_ns(result)
        arrivals[name].append((time.monotonic(), stamp))
        ages[name].append((time.time_ns() - stamp) * 1e-9)

    def spin_until(done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline and manager.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.02)
        return bool(done())

    try:
        node.create_subscription(
            msg("diagnostic_msgs/msg/DiagnosticArray"), endpoints.DIAGNOSTICS_TOPIC, on_diagnostics, 10
        )
        node.create_subscription(
            msg("sensor_msgs/msg/Image"),
            "/camera/image_raw",
            lambda m: camera.append(_stamp_ns(m)),
            qos_profile_sensor_data,
        )
        register = node.create_client(register_type, endpoints.REGISTER_SERVICE)
        status = node.create_client(status_type, endpoints.STATUS_SERVICE)
        wait_for_manager(register, manager)
        answers, registered = {}, {}
        for name, priority in zip(DEMO_DNNS, (3.0, 2.0, 1.0), strict=True):
            request = register_type.Request(name=name, model=name, input_topic="/camera/image_raw", priority=priority)
            t0 = time.monotonic()
            future = register.call_async(request)
            spin_until(future.done, 10.0)
            answers[name] = (time.monotonic() - t0) * 1000
            registered[name] = t0
            arrivals[name], ages[name] = [], []
            node.create_subscription(
                msg("vision_msgs/msg/Classification"),
                future.result().output_topic,
                lambda m, n=name: on_result(n, m),
                10,
            )
        spin_until(lambda: all(arrivals.values()), 180.0)
        first = {n: round(a[0][0] - registered[n], 2) for n, a in arrivals.items() if a}
        hops = _window(spin_until, camera, ages, stages, counts)
        rtts = []
        for _ in range(STATUS_CALLS):
            t0 = time.monotonic()
            future = status.call_async(status_type.Request())
            spin_until(future.done, 5.0)
            rtts.append((time.monotonic() - t0) * 1000)
        recoveries = []
        for i in range(kills):
            name = DEMO_DNNS[i % len(DEMO_DNNS)]
            pids.clear()
            spin_until(lambda n=name: bool(pids.get(n)), 5.0)
            victim = pids[name][0]
            killed, killed_wall_ns = time.monotonic(), time.time_ns()
            os.kill(victim, signal.SIGKILL)
            if spin_until(lambda n=name, k=killed_wall_ns: any(s > k for _, s in arrivals[n]), 30.0):
                recoveries.append(round(next(t for t, s in arrivals[name] if s > killed_wall_ns) - killed, 2))
            spin_until(lambda: False, 3.0)  # let the chain settle before the next kill
        return {
            "register_answer_ms": {n: round(v, 1) for n, v in answers.items()},
            "first_result_after_register_s": first,
            "status_rtt_ms_median": round(statistics.median(rtts), 2),
            **hops,
            "kill_to_results_again_s": recoveries,
        }
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _window(
    spin_until: Any,
    camera: list[int],
    ages: dict[str, list[float]],
    stages: dict[str, dict[str, dict[str, str]]],
    counts: dict[str, list[tuple[int, int]]],
) -> dict[str, Any]:
    """Frames the camera sent against frames each DNN's first stage received, and the latency
    per hop above the DNN's own compute and queueing, over WINDOW_S.

    Both counts are read when a diagnostics array arrives (the camera's here, the first stage's
    in the array), so they cover the same stretch of the stream up to the DDS delay of one array.
    """
    spin_until(lambda: all(stages.get(n) for n in ages), 10.0)
    spin_until(lambda: False, 2.0)  # diagnostics of the settled chains
    start = {n: len(counts.get(n, [])) for n in ages}
    sent0 = len(camera)
    for latest in ages.values():
        latest.clear()
    spin_until(lambda: False, WINDOW_S)
    sent = len(camera) - sent0
    out: dict[str, Any] = {"window_s": WINDOW_S, "camera_frames": sent, "camera_rate_hz": round(sent / WINDOW_S, 2)}
    loss, per_hop, detail = {}, {}, {}
    for n, latest in ages.items():
        seen = counts.get(n, [])[max(start[n] - 1, 0) :]
        if len(seen) >= 2 and seen[-1][0] > seen[0][0]:
            (cam0, got0), (cam1, got1) = seen[0], seen[-1]
            loss[n] = round(1.0 - (got1 - got0) / (cam1 - cam0), 4)
        else:
            loss[n] = None
        chain = stages.get(n, {})
        dnn_s = sum(parse_value(v["service_time_s"]) + parse_value(v["queue_wait_s"]) for v in chain.values())
        hops = len(chain) + 1
        age = statistics.median(latest) if latest else float("nan")
        per_hop[n] = round((age - dnn_s) / hops * 1e3, 2)
        detail[n] = {"result_age_ms": round(age * 1e3, 1), "compute_and_queue_ms": round(dnn_s * 1e3, 1), "hops": hops}
    out.update(first_stage_frame_loss=loss, latency_per_hop_ms=per_hop, latency_detail=detail)
    return out


def report(result: dict[str, Any]) -> str:
    if "executors" in result:
        parts = [f"== executor {name} ({r['policy']})\n{report(r)}" for name, r in result["executors"].items()]
        ratio = result["component_vs_stage"]
        parts.append(
            f"component vs stage: processes {ratio['processes'][1]} vs {ratio['processes'][0]}, "
            f"RSS x{ratio['rss_ratio']}, PSS x{ratio['pss_ratio']}"
        )
        return "\n".join(parts)
    m = result["memory"]
    lines = [
        f"registration answer (ms): {result['register_answer_ms']}",
        f"first result after registration (s): {result['first_result_after_register_s']}",
        f"status round trip median: {result['status_rtt_ms_median']} ms",
        f"camera {result['camera_rate_hz']} Hz; frames lost before the first stage: {result['first_stage_frame_loss']}",
        f"latency per hop above the DNN's compute and queueing (ms): {result['latency_per_hop_ms']}",
        f"killed executor -> results again (s): {result['kill_to_results_again_s']}",
        f"memory: {m['processes']} processes, RSS {m['rss_mb_total']} MB, PSS {m['pss_mb_total']} MB, "
        f"largest {m['rss_mb_max_process']} MB",
        f"left behind: {len(result['leftover_processes'])} processes, {len(result['leftover_shm'])} shm entries",
    ]
    return "\n".join(lines)
