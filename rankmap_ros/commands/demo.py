"""`rankmap demo`: the ROS 2 demo (manager, 30 Hz camera, three DNNs) without ROS 2 installed."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any

from rankmap_ros.commands.common import POSITIVE, SECONDS, CliError, add_command, command_group, integer, number, table

LIVE_EVERY_S = 5.0


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(report: Any) -> str:
    rows = [
        (
            name,
            f"{d['priority']:.3f}",
            " ".join(f"{s['units'][0]}-{s['units'][1] - 1}@{s['component']}" for s in d["stages"]) or "-",
            _rate(d.get("input_rate")),
            _rate(d["measured_rate"]),
            _rate(d["predicted_rate"]),
            _rate(d["potential_throughput"]),
            d["status"],
        )
        for name, d in report.dnns.items()
    ]
    head = (
        f"t={report.elapsed_s:5.1f}s  platform {report.platform}  planner {report.planner} "
        f"({report.priority_mode})  ROS_DOMAIN_ID={report.domain_id}"
    )
    body = (
        table(rows, ("dnn", "priority", "stages", "input/s", "measured/s", "predicted/s", "P", "status"))
        if rows
        else "no DNNs yet"
    )
    return f"{head}\n{body}"


def summary(report: Any) -> str:
    lines = [f"summary after {report.elapsed_s:.0f} s: {len(report.dnns)} DNNs"]
    for change in report.mapping_changes:
        stages = "; ".join(f"{n}: {' '.join(s)}" for n, s in change["stages"].items())
        lines.append(f"  mapping at {change['at_s']:5.1f} s: {stages}")
    for name, d in report.dnns.items():
        lines.append(
            f"  {name}: {_rate(d['measured_rate'])}/s measured, P {_rate(d['potential_throughput'])}, "
            f"priority {d['priority']:.3f}, {d['status']} ({d['status_message']})"
        )
    m = report.memory
    if m:
        lines.append(
            f"  memory: {m['processes']} processes, RSS {m['rss_mb_total']:.0f} MB "
            f"(PSS {m['pss_mb_total']:.0f} MB), largest process {m['rss_mb_max_process']:.0f} MB"
        )
    return "\n".join(lines)


def _check_params_file(options: Any) -> None:
    """The manager's parameters as it will get them: the file, then the demo's own `-p` values."""
    from rankmap_ros.ros.dds.args import Override, RosArgumentError, parse
    from rankmap_ros.ros.demo import node_commands
    from rankmap_ros.ros.manager_node import check_parameters_file

    argv = node_commands(options)["manager"]
    try:
        ros_args = parse(argv[argv.index("--ros-args") :])
        overrides = {o.name: o.value for o in ros_args.overrides if isinstance(o, Override)}
        check_parameters_file(options.params_file, "/rankmap_manager", overrides)
    except (RosArgumentError, ValueError) as exc:
        raise CliError(f"--params-file {options.params_file}: {exc}") from exc


def cmd_demo(args: argparse.Namespace) -> None:
    from rankmap_ros.ros.demo import DemoOptions, run_demo

    _check_manager_setup(args.split, args.policy, "the component executor" if args.executor == "component" else "")
    if args.platform:
        from rankmap_ros.runtime.host import resolve_platform

        resolve_platform(args.platform, args.split or None)  # as the manager will: refused here, before it starts
    compressed = False
    if args.dnns_file:
        from rankmap_ros.ros.dnns_file import read_dnns_file
        from rankmap_ros.ros.image_codec import is_compressed_topic
        from rankmap_ros.ros.registry import RequestError

        try:
            topics = {reg.input_topic for reg in read_dnns_file(args.dnns_file)}
        except RequestError as exc:  # the manager checks the rest at start, and says so in the log
            raise CliError(str(exc)) from exc
        compressed = any(is_compressed_topic(topic) for topic in topics)
    live = not args.json
    tty = sys.stdout.isatty()
    last = [0.0]

    def on_update(report: Any) -> None:
        if not live or (not tty and time.monotonic() - last[0] < LIVE_EVERY_S):
            return
        last[0] = time.monotonic()
        print(("\x1b[H\x1b[2J" if tty else "") + render(report) + "\n", flush=True)

    options = DemoOptions(
        duration_s=args.duration,
        split=args.split,
        rate_hz=args.rate,
        params_file=args.params_file,
        policy=args.policy,
        executor=args.executor,
        platform=args.platform,
        dnns_file=args.dnns_file,
        compressed=compressed,
    )
    if args.params_file:  # checked as check-dnns checks it: a run that ends at once would hide it
        _check_params_file(options)
    with tempfile.NamedTemporaryFile("w+", prefix="rankmap-demo-", suffix=".log", delete=False) as log:
        if live:
            dnns = f"the DNNs of {args.dnns_file}" if args.dnns_file else "perception node"
            print(f"starting manager, camera ({args.rate:g} Hz) and {dnns}; node logs: {log.name}", flush=True)
        try:
            report = run_demo(options, on_update, log)
        except RuntimeError as exc:
            raise CliError(f"{exc}; log: {log.name}") from exc
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print(render(report) + "\n\n" + summary(report))


def _check_manager_setup(split: str, policy: str, arbitrated_for: str = "") -> None:
    """What the manager would refuse, refused before any node starts (not when it has exited).

    `arbitrated_for`: what needs an arbitrated policy, if anything does.
    """
    from rankmap_ros.core.realtime import RealTimeError, parse_policy
    from rankmap_ros.runtime.discover import parse_core_split

    if split:
        parse_core_split(split)
    if policy:
        try:
            parsed = parse_policy(policy)
        except RealTimeError as exc:
            raise CliError(f"--policy: {exc}") from exc
        if arbitrated_for and not parsed.arbitrated:
            arbitrated = "fifo, rms, dms, np_edf or edf"
            raise CliError(f"--policy {policy}: {arbitrated_for} needs an arbitrated policy ({arbitrated})")


def cmd_bench_face(args: argparse.Namespace) -> None:
    from rankmap_ros.commands.common import emit
    from rankmap_ros.ros.bench_face import report, run, run_both

    _check_manager_setup(args.split, args.policy, "the component executor" if args.executor != "stage" else "")
    try:
        if args.executor == "both":
            result = run_both(kills=args.kills, split=args.split, policy=args.policy or "edf")
        else:
            result = run(kills=args.kills, split=args.split, executor=args.executor, policy=args.policy)
    except RuntimeError as exc:
        raise CliError(str(exc)) from exc
    emit(args, result, report(result))


def cmd_bench_ros_realtime(args: argparse.Namespace) -> None:
    from rankmap_ros.commands.common import emit
    from rankmap_ros.ros.bench_realtime import report, run

    def say(message: str) -> None:
        print(f"[rankmap] {message}", file=sys.stderr, flush=True)

    _check_manager_setup(args.split, args.policy, "a real-time DNN beside a best-effort one on one core")
    executors = ("stage", "component") if args.executor == "both" else (args.executor,)
    try:
        result = run(
            executors, args.rounds, args.window, args.split, args.policy, args.rate, args.deadline, progress=say
        )
    except RuntimeError as exc:
        raise CliError(str(exc)) from exc
    emit(args, result, report(result))


def register(sub: Any, experiments: Any) -> None:

    p = add_command(sub, "demo", cmd_demo, "run the 3-DNN ROS demo (manager, camera, perception node) without ROS 2")
    p.add_argument("--duration", type=SECONDS, default=60.0, help="seconds to run (default 60)")
    p.add_argument(
        "--split", default="", help="CPU clusters, e.g. big:0,little:1 (default: halves of this host's CPUs)"
    )
    p.add_argument(
        "--rate", type=number(0.1, above=False, high=240.0), default=30.0, help="camera frames/s (default 30)"
    )
    p.add_argument("--params-file", default="", help="manager parameters (default config/rankmap.yaml)")
    p.add_argument(
        "--platform",
        default="",
        help="the manager's platform: a file from `rankmap calibrate`, or host (default: the parameters file's)",
    )
    p.add_argument("--policy", default="", help="scheduling_policy, e.g. edf (default: the parameters file's)")
    p.add_argument(
        "--dnns-file",
        default="",
        help="the manager registers these DNNs (config/dnns.yaml's format; topics under /camera/image_raw) "
        "instead of the perception node's three",
    )
    p.add_argument(
        "--executor",
        choices=("stage", "component"),
        default="",
        help="a process per stage, or a container per component (implies --policy edf unless given)",
    )
    bench = command_group(sub, "bench", "benchmarks")
    p = add_command(bench, "ros-face", cmd_bench_face, "ROS face: registration, executor recovery, memory")
    p.add_argument("--kills", type=integer(0), default=3, help="executors to kill one after another (default 3)")
    p.add_argument("--split", default="", help="CPU clusters (default: halves of this host's CPUs)")
    p.add_argument(
        "--executor",
        choices=("stage", "component", "both"),
        default="stage",
        help="a process per stage, a container per component, or both one after the other (default stage)",
    )
    p.add_argument("--policy", default="", help="scheduling_policy (default time_sharing; edf with component or both)")
    p = add_command(
        bench, "ros-realtime", cmd_bench_ros_realtime, "a real-time and a best-effort DNN on one core, through ROS"
    )
    p.add_argument("--executor", choices=("stage", "component", "both"), default="both", help="default both")
    p.add_argument("--rounds", type=integer(1), default=2, help="rounds, executors alternating (default 2)")
    p.add_argument("--window", type=SECONDS, default=20.0, help="seconds measured per run (default 20)")
    p.add_argument("--split", default="shared:0", help="the one cluster both DNNs share (default shared:0)")
    p.add_argument("--policy", default="edf", help="an arbitrated scheduling_policy (default edf)")
    p.add_argument(
        "--rate",
        type=number(0.1, above=False, high=240.0),
        default=15.0,
        help="camera frames/s = the real-time DNN's rate (default 15)",
    )
    p.add_argument("--deadline", type=POSITIVE, default=0.05, help="real-time deadline in seconds (default 0.05)")
