"""Commands that talk to a running manager over ROS 2 (rclpy, or our DDS transport without it),
and one that checks a manager's DNNs before a robot starts it."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rankmap_ros.commands.common import (
    NON_NEGATIVE,
    POSITIVE,
    SECONDS,
    SECONDS_OR_ZERO,
    CliError,
    add_command,
    command_group,
    emit,
    integer,
    table,
)


def _namespace(text: str) -> str:
    """A manager's namespace as launch's `namespace:=robot1` gives it: '' (the root) or '/robot1'."""
    from rankmap_ros.ros.dds.names import InvalidNameError, normalize_namespace

    try:
        namespace = normalize_namespace(text)
    except InvalidNameError:
        raise CliError(
            f"--namespace {text!r} is not a ROS namespace ('/'-separated names of letters, digits, '_')"
        ) from None
    return "" if namespace == "/" else namespace


def _call(args: argparse.Namespace, name: str, type_name: str, fill: dict[str, Any]) -> Any:
    from rankmap_ros.ros.service_call import ServiceCallError, call_service

    try:
        return call_service(_namespace(args.namespace) + name, type_name, fill, timeout_sec=args.timeout)
    except ServiceCallError as exc:
        raise CliError(str(exc)) from exc


def _answer(args: argparse.Namespace, response: Any, text: str) -> None:
    from rankmap_ros.ros.convert import to_data

    emit(args, to_data(response), text)
    if not response.success:
        raise CliError(f"refused: {response.message}")


def cmd_register(args: argparse.Namespace) -> None:
    from rankmap_ros.ros import endpoints

    response = _call(
        args,
        endpoints.REGISTER_SERVICE,
        endpoints.REGISTER_TYPE,
        {
            "name": args.name,
            "model": _model_argument(args.model),
            "input_topic": args.input_topic,
            "priority": args.priority,
            "min_rate": args.min_rate,
            "output_kind": args.output_kind,
            "period": args.period,
            "deadline": args.deadline,
        },
    )
    _answer(args, response, f"{response.message}; results on {response.output_topic}".strip("; "))


def _model_argument(model: str) -> str:
    """A weights file here is sent as an absolute path: the manager resolves paths from its own directory."""
    path = Path(model)
    return str(path.resolve()) if not path.is_absolute() and path.is_file() else model


def cmd_check_dnns(args: argparse.Namespace) -> None:
    """The manager's start-up checks of a dnns_file, without starting anything: for a robot's CI."""
    from rankmap_ros.core import zoo
    from rankmap_ros.ros.dds.args import RosArgumentError
    from rankmap_ros.ros.dds.names import expand
    from rankmap_ros.ros.dnns_file import register_file
    from rankmap_ros.ros.manager_node import check_parameters_file
    from rankmap_ros.ros.model_card import read_card
    from rankmap_ros.ros.planning import load_platform
    from rankmap_ros.ros.registry import Registry, RequestError
    from rankmap_ros.ros.results import output_topic

    namespace = _namespace(args.namespace)
    try:
        try:  # the sections that reach the manager where it runs
            v = check_parameters_file(args.params_file or "", f"{namespace}/rankmap_manager")
        except ValueError as exc:
            raise CliError(f"{args.params_file}: {exc}") from exc
        path = args.file or v["dnns_file"]
        if not path:
            raise CliError("give a dnns_file, or a parameters file that names one")
        platform = load_platform(v["platform"], v["host_split"], v["opencl_cpu_as_gpu"])
        registry = Registry(v["max_dnns"], platform, lambda t: expand(t, "rankmap_manager", namespace or "/"))
        registry.mode = v["priority_mode"]
        stored = register_file(registry, path, v["allowed_model_dirs"])
    except (RequestError, RosArgumentError) as exc:
        raise CliError(str(exc)) from exc
    rows, data = [], []
    for reg in stored:
        card = read_card(reg.weights, zoo.get_spec(reg.model).num_classes)
        topic = expand(output_topic(reg.name, reg.output_kind), "rankmap_manager", namespace or "/")
        timing = f"{reg.period:g}/{reg.task.deadline:g} s" if reg.period else "best-effort"
        names = f"{len(card.labels)} names" if card.labels else "indices"
        rows.append([reg.name, reg.model, reg.weights or "(zoo)", topic, timing, names])
        data.append(
            {**asdict(reg), "output_topic": topic, "labels": len(card.labels), "mean": card.mean, "std": card.std}
        )
    text = table(rows, ["dnn", "model", "weights", "results on", "timing", "classes"])
    emit(args, {"platform": platform.name, "dnns": data}, f"{text}\n{len(rows)} DNN(s) would start on {platform.name}")


def cmd_unregister(args: argparse.Namespace) -> None:
    from rankmap_ros.ros import endpoints

    response = _call(args, endpoints.UNREGISTER_SERVICE, endpoints.UNREGISTER_TYPE, {"name": args.name})
    _answer(args, response, response.message)


def _weights(items: list[str]) -> tuple[list[str], list[float]]:
    names, weights = [], []
    for item in items:
        name, sep, text = item.partition("=")
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not sep or not name or not math.isfinite(weight) or weight < 0:
            raise CliError(f"priority {item!r} must look like NAME=WEIGHT with a finite weight >= 0")
        names.append(name)
        weights.append(weight)
    if len(set(names)) != len(names):
        raise CliError("each DNN may appear only once")
    return names, weights


def cmd_priority(args: argparse.Namespace) -> None:
    from rankmap_ros.ros import endpoints

    if args.dynamic == bool(args.weights):
        raise CliError("give either NAME=WEIGHT pairs (static priorities) or --dynamic")
    names, weights = _weights(args.weights)
    fill = {"mode": "dynamic" if args.dynamic else "static", "names": names, "priorities": weights}
    response = _call(args, endpoints.SET_PRIORITIES_SERVICE, endpoints.SET_PRIORITIES_TYPE, fill)
    in_force = ", ".join(
        f"{n}={p:.3f}" for n, p in zip(response.names_in_force, response.priorities_in_force, strict=False)
    )
    _answer(args, response, f"{response.message}; in force: {in_force}".strip("; "))


def _rate(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def cmd_status(args: argparse.Namespace) -> None:
    from rankmap_ros.ros import endpoints
    from rankmap_ros.ros.convert import to_data

    state = _call(args, endpoints.STATUS_SERVICE, endpoints.STATUS_TYPE, {}).state
    rows = [
        (
            d.name,
            d.model,
            f"{d.priority:.3f}",
            " ".join(f"{s.unit_start}-{s.unit_stop - 1}:{s.component}" for s in d.stages),
            _rate(d.predicted_rate),
            _rate(d.measured_rate),
            _rate(d.potential_throughput),
        )
        for d in state.dnns
    ]
    head = f"platform {state.platform or '-'}, planner {state.planner or '-'} ({state.priority_mode or '-'})"
    body = table(rows, ("dnn", "model", "priority", "stages", "predicted", "measured", "P")) if rows else "no DNNs"
    emit(args, to_data(state), f"{head}\n{body}")


def cmd_logs(args: argparse.Namespace) -> None:
    import json

    from rankmap_ros.ros.dds.logging import parse_severity
    from rankmap_ros.ros.log_watch import LogLine, watch

    def show(line: LogLine) -> None:
        print(json.dumps(asdict(line)) if args.json else line.console(), flush=True)

    watch(args.seconds, int(parse_severity(args.level)), tuple(args.name), show)


def cmd_bench_transport(args: argparse.Namespace) -> None:
    from rankmap_ros.ros.bench_transport import report, run

    result = run(calls=args.calls, duration_s=args.duration, rate_hz=args.rate)
    emit(args, result, report(result))


def _namespace_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", default="", help="the manager's namespace, as launched (default: the root)")


def _client(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=SECONDS, default=5.0, help="seconds to wait for the manager (default 5)")
    _namespace_option(p)


def register(sub: Any, experiments: Any) -> None:
    p = add_command(sub, "register", cmd_register, "register a DNN with the running manager")
    p.add_argument("name", help="unique instance name")
    p.add_argument("model", help="zoo model name or model file in an allowed directory")
    p.add_argument("--input-topic", required=True, help="sensor_msgs/Image topic the DNN consumes")
    p.add_argument("--priority", type=NON_NEGATIVE, default=1.0, help="static priority weight (default 1)")
    p.add_argument("--min-rate", type=NON_NEGATIVE, default=0.0, help="minimum inferences/s (0: default threshold)")
    p.add_argument(
        "--period", type=NON_NEGATIVE, default=0.0, help="real-time: seconds between inputs (0: best-effort)"
    )
    p.add_argument(
        "--deadline", type=NON_NEGATIVE, default=0.0, help="real-time: seconds each job may take (0: the period)"
    )
    p.add_argument("--output-kind", default="", choices=["", "classification", "detection", "tensor"])
    _client(p)
    p = add_command(sub, "check-dnns", cmd_check_dnns, "check a manager's dnns_file as the manager would at start")
    p.add_argument("file", nargs="?", help="the dnns_file (default: the parameters file's)")
    p.add_argument("--params-file", help="the manager's parameters: platform, allowed_model_dirs, max_dnns, ...")
    _namespace_option(p)
    p = add_command(sub, "unregister", cmd_unregister, "stop a registered DNN")
    p.add_argument("name")
    _client(p)
    p = add_command(sub, "priority", cmd_priority, "set static priorities (NAME=WEIGHT ...) or --dynamic")
    p.add_argument("weights", nargs="*", metavar="NAME=WEIGHT")
    p.add_argument("--dynamic", action="store_true", help="priorities from each DNN's computational profile")
    _client(p)
    p = add_command(sub, "status", cmd_status, "the mapping in force with predicted and measured rates")
    _client(p)
    p = add_command(sub, "logs", cmd_logs, "the nodes' log lines from /rosout (what rqt_console shows)")
    p.add_argument(
        "--level",
        default="info",
        choices=["debug", "info", "warn", "error", "fatal"],
        help="lowest level shown (default info)",
    )
    p.add_argument(
        "--name", action="append", default=[], help="a logger, with those below it (e.g. rankmap_manager); repeatable"
    )
    p.add_argument("--seconds", type=SECONDS_OR_ZERO, default=0.0, help="stop after this long (default: at Ctrl-C)")
    bench = command_group(sub, "bench", "benchmarks")
    p = add_command(bench, "transport", cmd_bench_transport, "ROS transport: service round trip, 640x480 image stream")
    p.add_argument("--calls", type=integer(1), default=1000, help="status calls to time (default 1000)")
    p.add_argument("--duration", type=SECONDS, default=10.0, help="seconds of image stream (default 10)")
    p.add_argument("--rate", type=POSITIVE, default=30.0, help="image rate in Hz (default 30)")
