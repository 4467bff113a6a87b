"""The `rankmap` command: every capability reachable from a shell, with --json for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], Any]


class CliError(Exception):
    """A user mistake worth one clear line, not a traceback."""


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def cmd_zoo(args: argparse.Namespace) -> None:
    from rankmap_ros.core import zoo
    from rankmap_ros.core.unitvec import profile

    entries = []
    for spec in zoo.specs():
        units = profile(spec.name)
        entries.append(
            {
                "name": spec.name,
                "title": spec.title,
                "task": spec.task,
                "units": len(units),
                "parameters": sum(u.params for u in units),
                "gmacs": round(sum(u.macs for u in units) / 1e9, 3),
                "gflops": round(sum(u.flops for u in units) / 1e9, 3),
                "input_shape": list(spec.input_shape),
            }
        )
    rows = [
        (e["name"], e["title"], e["units"], f"{e['parameters'] / 1e6:.1f}M", e["gflops"], "x".join(map(str, e["input_shape"])))
        for e in entries
    ]
    _print(args, entries, _table(rows, ("name", "title", "units", "params", "GFLOPs", "input")))


def cmd_units(args: argparse.Namespace) -> None:
    from rankmap_ros.core import zoo
    from rankmap_ros.core.unitvec import profile

    name = zoo.canonical_name(args.model)
    units = profile(name)
    data = [
        {
            "index": u.index,
            "name": u.name,
            "kind": u.kind.name.lower(),
            "vector": [int(v) for v in u.vector()],
            "macs": u.macs,
            "flops": u.flops,
            "params": u.params,
            "weight_bytes": u.weight_bytes,
            "out_bytes": u.out_bytes,
        }
        for u in units
    ]
    rows = [
        (u.index, u.name, u.kind.name.lower(), "x".join(map(str, u.ifm)), "x".join(map(str, u.ofm)), f"{u.flops / 1e6:.1f}")
        for u in units
    ]
    _print(args, {"model": name, "units": data}, _table(rows, ("j", "unit", "type", "ifm", "ofm", "MFLOPs")))


def _workload(text: str) -> Any:
    from rankmap_ros.core.workload import Workload

    path = Path(text)
    if path.suffix in {".yaml", ".yml", ".json"}:
        import yaml

        if not path.is_file():
            raise CliError(f"workload file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise CliError(f"workload file {path} is not valid YAML/JSON: {exc}") from exc
        return Workload.from_dict(data)
    return Workload.from_models([m.strip() for m in text.split(",") if m.strip()])


def cmd_simulate(args: argparse.Namespace) -> None:
    from rankmap_ros.core.mapping import Mapping
    from rankmap_ros.core.platform import load_platform
    from rankmap_ros.core.simulator import ideal_throughput, simulate

    platform = load_platform(args.platform)
    workload = _workload(args.workload)
    if args.mapping.startswith("all-"):
        component = args.mapping.removeprefix("all-")
        mapping = Mapping.all_on(workload, component)
    else:
        path = Path(args.mapping)
        if not path.is_file():
            raise CliError(f"mapping file {path} does not exist (or use all-<component>, e.g. all-gpu)")
        mapping = Mapping.from_json(path.read_text())
    mapping.validate(workload, platform.component_names)
    result = simulate(platform, workload, mapping)
    dnns = []
    for dnn in mapping.dnns:
        ideal = ideal_throughput(platform, dnn.model)
        rate = result.throughput[dnn.name]
        dnns.append(
            {
                "name": dnn.name,
                "model": dnn.model,
                "throughput": rate,
                "potential_throughput": rate / ideal,
                "stages": [
                    {"units": [s.start, s.stop], "component": s.component, "service_time": t}
                    for s, t in zip(dnn.stages, result.stage_time[dnn.name], strict=True)
                ],
            }
        )
    data = {
        "platform": platform.name,
        "simulated": True,
        "mapping": mapping.to_dict(),
        "dnns": dnns,
        "throughput": {d["name"]: d["throughput"] for d in dnns},
        "utilisation": dict(result.utilisation),
    }
    rows = [
        (
            d["name"],
            f"{d['throughput']:.2f}",
            f"{d['potential_throughput']:.3f}",
            " ".join(f"{s['component']}[{s['units'][0]}:{s['units'][1]}]" for s in d["stages"]),
        )
        for d in dnns
    ]
    util = ", ".join(f"{c} {u:.0%}" for c, u in result.utilisation.items())
    text = _table(rows, ("dnn", "inf/s", "P", "stages")) + f"\nutilisation: {util}  (simulated, {platform.name})"
    _print(args, data, text)


def cmd_experiment_motivation(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.motivation import run_motivation

    result = run_motivation(Path(args.out) if args.out else None, seed=args.seed, samples=args.samples)
    paper = result.get("paper", {})
    lines = [
        f"motivation experiment on {result.get('platform', '?')} (simulated), {args.samples} random mappings",
        f"  better than all-on-GPU: {result['frac_better_than_baseline']:.1%} (paper {paper.get('frac_better_than_baseline', '?')})",
        f"  starving a DNN:        {result['frac_starving']:.1%} (paper {paper.get('frac_starving', '?')})",
        f"  P below 0.2:           {result['frac_p_below_0_2']:.1%} (paper {paper.get('frac_p_below_0_2', '?')})",
        "  mean P: " + ", ".join(f"{k} {v:.3f}" for k, v in result["mean_potential_throughput"].items()),
    ]
    if args.out:
        lines.append(f"  wrote {args.out}/motivation.json and PNG figures")
    _print(args, result, "\n".join(lines))


def cmd_platform_show(args: argparse.Namespace) -> None:
    import yaml

    from rankmap_ros.core.platform import load_platform

    platform = load_platform(args.platform)
    _print(args, platform.to_dict(), yaml.safe_dump(platform.to_dict(), sort_keys=False).rstrip())


def cmd_platform_discover(args: argparse.Namespace) -> None:
    import yaml

    from rankmap_ros.runtime.discover import discover_host, write_platform

    platform = discover_host(split=args.split)
    if args.out:
        write_platform(platform, Path(args.out))
    _print(args, platform.to_dict(), yaml.safe_dump(platform.to_dict(), sort_keys=False).rstrip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rankmap", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.set_defaults(handler=handler)
        return p

    add("zoo", cmd_zoo, "list the DNN zoo: units, parameters, GFLOPs, input shape")

    p = add("units", cmd_units, "the partition units of one model and their 22-dim vectors")
    p.add_argument("model")

    p = add("simulate", cmd_simulate, "simulated throughput of a workload under a mapping")
    p.add_argument("--platform", default="orange_pi_5", help="built-in platform name or YAML file")
    p.add_argument("--workload", required=True, help="comma-separated zoo names, or a workload YAML/JSON file")
    p.add_argument("--mapping", default="all-gpu", help="mapping JSON file, or all-<component> (default all-gpu)")

    experiment = sub.add_parser("experiment", help="reproduce the paper's experiments")
    exp_sub = experiment.add_subparsers(dest="experiment", required=True)
    p = add("motivation", cmd_experiment_motivation, "the paper's Section II on the simulator", exp_sub)
    p.add_argument("--out", help="directory for motivation.json and the PNG figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=300, help="random mappings (paper: 300)")

    platform = sub.add_parser("platform", help="inspect or discover platforms")
    plat_sub = platform.add_subparsers(dest="platform_command", required=True)
    p = add("show", cmd_platform_show, "print a platform (built-in name or YAML file)", plat_sub)
    p.add_argument("platform", nargs="?", default="orange_pi_5")
    p = add("discover", cmd_platform_discover, "discover this host's components (uncalibrated)", plat_sub)
    p.add_argument("--split", help="explicit CPU clusters, e.g. big:0-3,little:4-7")
    p.add_argument("--out", help="write the platform YAML here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rankmap_ros.core.mapping import MappingError
    from rankmap_ros.core.platform import PlatformError
    from rankmap_ros.core.workload import WorkloadError
    from rankmap_ros.core.zoo import ZooError

    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (CliError, MappingError, PlatformError, WorkloadError, ZooError) as exc:
        print(f"rankmap: error: {exc}", file=sys.stderr)
        return 2
    return 0
