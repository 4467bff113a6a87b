"""The `rankmap` command: every capability reachable from a shell, with --json for scripts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rankmap_ros.commands import demo, estimator, foundation, planner, ros, runtime
from rankmap_ros.commands.common import CliError

COMMAND_MODULES = (foundation, runtime, ros, estimator, demo, planner)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rankmap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    experiment = sub.add_parser("experiment", help="reproduce the paper's experiments")
    experiments = experiment.add_subparsers(dest="experiment", required=True)
    for module in COMMAND_MODULES:
        module.register(sub, experiments)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rankmap_ros.core.dataset import DatasetError
    from rankmap_ros.core.estimator.checkpoint import EstimatorError
    from rankmap_ros.core.mapping import MappingError
    from rankmap_ros.core.planner import PlannerError
    from rankmap_ros.core.platform import PlatformError
    from rankmap_ros.core.workload import WorkloadError
    from rankmap_ros.core.zoo import ZooError
    from rankmap_ros.runtime.errors import DiscoveryError, HostRuntimeError

    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (
        CliError,
        MappingError,
        PlatformError,
        WorkloadError,
        ZooError,
        HostRuntimeError,
        DiscoveryError,
        DatasetError,
        EstimatorError,
        PlannerError,
    ) as exc:
        print(f"rankmap: error: {exc}", file=sys.stderr)
        return 2
    return 0
