"""Commands over the foundation: zoo, units, platforms, simulator, motivation experiment."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rankmap_ros.commands.common import (
    SEED,
    add_command,
    emit,
    integer,
    parse_workload,
    read_mapping,
    table,
)


def _shape(dims: Any) -> str:
    return "x".join(map(str, dims))


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
        (
            e["name"],
            e["title"],
            e["units"],
            f"{e['parameters'] / 1e6:.1f}M",
            e["gflops"],
            "x".join(map(str, e["input_shape"])),
        )
        for e in entries
    ]
    emit(args, entries, table(rows, ("name", "title", "units", "params", "GFLOPs", "input")))


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
        (
            u.index,
            u.name,
            u.kind.name.lower(),
            "x".join(map(str, u.ifm)),
            "x".join(map(str, u.ofm)),
            f"{u.flops / 1e6:.1f}",
        )
        for u in units
    ]
    emit(args, {"model": name, "units": data}, table(rows, ("j", "unit", "type", "ifm", "ofm", "MFLOPs")))


def cmd_simulate(args: argparse.Namespace) -> None:
    from rankmap_ros.core.platform import load_platform
    from rankmap_ros.core.simulator import ideal_throughput, simulate

    platform = load_platform(args.platform)
    workload = parse_workload(args.workload)
    mapping = read_mapping(args.mapping, workload, "all-gpu")
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
    text = table(rows, ("dnn", "inf/s", "P", "stages")) + f"\nutilisation: {util}  (simulated, {platform.name})"
    emit(args, data, text)


def cmd_experiment_motivation(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.motivation import run_motivation

    result = run_motivation(Path(args.out) if args.out else None, seed=args.seed, samples=args.samples)
    paper = result.get("paper", {})
    lines = [
        f"motivation experiment on {result.get('platform', '?')} (simulated), {args.samples} random mappings",
        *(
            f"  {label:<24}{result[key]:.1%} (paper {paper[key]:.1%})"
            for label, key in (
                ("better than all-on-GPU:", "frac_better_than_baseline"),
                ("starving a DNN:", "frac_starving"),
                ("P below 0.2:", "frac_p_below_0_2"),
            )
        ),
        "  mean P: " + ", ".join(f"{k} {v:.3f}" for k, v in result["mean_potential_throughput"].items()),
    ]
    if args.out:
        lines.append(f"  wrote {args.out}/motivation.json and PNG figures")
    emit(args, result, "\n".join(lines))


def cmd_platform_show(args: argparse.Namespace) -> None:
    import yaml

    from rankmap_ros.core.platform import load_platform

    platform = load_platform(args.platform)
    emit(args, platform.to_dict(), yaml.safe_dump(platform.to_dict(), sort_keys=False).rstrip())


def cmd_platform_discover(args: argparse.Namespace) -> None:
    import yaml

    from rankmap_ros.runtime.discover import discover_host, write_platform

    platform = discover_host(split=args.split)
    if args.out:
        write_platform(platform, Path(args.out))
    emit(args, platform.to_dict(), yaml.safe_dump(platform.to_dict(), sort_keys=False).rstrip())


def register(sub: Any, experiments: Any) -> None:
    add_command(sub, "zoo", cmd_zoo, "list the DNN zoo: units, parameters, GFLOPs, input shape")

    p = add_command(sub, "units", cmd_units, "the partition units of one model and their 22-dim vectors")
    p.add_argument("model")

    p = add_command(sub, "simulate", cmd_simulate, "simulated throughput of a workload under a mapping")
    p.add_argument("--platform", default="orange_pi_5", help="built-in platform name or YAML file")
    p.add_argument("--workload", required=True, help="comma-separated zoo names, or a workload YAML/JSON file")
    p.add_argument("--mapping", default="all-gpu", help="mapping JSON file, or all-<component> (default all-gpu)")

    p = add_command(experiments, "motivation", cmd_experiment_motivation, "the paper's Section II on the simulator")
    p.add_argument("--out", help="directory for motivation.json and the PNG figures")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--samples", type=integer(1), default=300, help="random mappings (paper: 300)")

    platform = sub.add_parser("platform", help="inspect or discover platforms")
    plat_sub = platform.add_subparsers(dest="platform_command", required=True)
    p = add_command(plat_sub, "show", cmd_platform_show, "print a platform (built-in name or YAML file)")
    p.add_argument("platform", nargs="?", default="orange_pi_5")
    p = add_command(plat_sub, "discover", cmd_platform_discover, "discover this host's components (uncalibrated)")
    p.add_argument("--split", help="explicit CPU clusters, e.g. big:0-3,little:4-7")
    p.add_argument("--out", help="write the platform YAML here")
