"""The `rankmap` command: every capability reachable from a shell, with --json for scripts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from rankmap_ros.commands import demo, estimator, foundation, planner, ros, runtime
from rankmap_ros.commands.common import CliError
from rankmap_ros.commands.paths import check_paths

COMMAND_MODULES = (foundation, runtime, ros, estimator, demo, planner)


class Parser(argparse.ArgumentParser):
    """argparse's refusals in one line, like the commands' own (its usage block is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="rankmap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    experiment = sub.add_parser("experiment", help="reproduce the paper's experiments")
    experiments = experiment.add_subparsers(dest="experiment", required=True)
    for module in COMMAND_MODULES:
        module.register(sub, experiments)
    for command in experiments.choices.values():
        command.set_defaults(out_is_dir=True)  # an experiment's --out is its results directory
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

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a refusal (2) or --help (0): a status to return, as for the commands
        return exc.code if isinstance(exc.code, int) else 2
    try:
        check_paths(args)
        args.handler(args)
        sys.stdout.flush()  # a reader that went away (`| head`) is found here, not at exit
    except BrokenPipeError:
        # as a shell tool killed by SIGPIPE: no traceback; stdout goes nowhere from now on
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        hint = getattr(args, "resume_hint", "")  # the commands that can go on say how
        print(f"rankmap: interrupted{'. ' + hint if hint else ''}", file=sys.stderr)
        return 130
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
    except OSError as exc:  # the machine's refusal (disk full, permissions): its words, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rankmap: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0
