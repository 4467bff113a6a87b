"""Commands over the planner: map a workload, reproduce the paper's Section V, benchmark planning time."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from rankmap_ros.commands.common import (
    SECONDS,
    SEED,
    CliError,
    add_command,
    command_group,
    emit,
    host_split,
    integer,
    parse_workload,
    read_text,
    table,
    write_output,
)
from rankmap_ros.core.files import not_a_file


def _min_rates(text: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--min-rate: {text!r} is not a number or a comma-separated list of numbers") from None
    if len(values) == 1:
        values *= count
    if len(values) != count:
        raise CliError(f"--min-rate: {len(values)} values for {count} DNNs (give one, or one per DNN)")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise CliError(f"--min-rate: rates must be finite and >= 0, got {text!r}")
    return values


def _seconds(option: str, text: str) -> float:
    """A duration in seconds; a trailing `ms` means milliseconds, `hz` (--rate) a frequency."""
    raw = text.strip().lower()
    scale = 1e-3 if raw.endswith("ms") else 1.0
    units = ("hz",) if option == "--rate" else ("ms", "s")
    try:
        value = float(next((raw.removesuffix(u) for u in units if raw.endswith(u)), raw))
    except ValueError:
        like = "30 or 30hz" if option == "--rate" else "0.05, 0.05s or 50ms"
        raise CliError(f"{option}: {text!r} is not a number (e.g. {like})") from None
    if not math.isfinite(value) or value <= 0:
        raise CliError(f"{option}: {text!r} must be a finite number > 0")
    if option == "--rate" and not math.isfinite(1.0 / value):
        raise CliError(f"{option}: {text!r} is too small a rate to have a period")
    return value * scale


def _per_dnn(option: str, text: str | None, names: tuple[str, ...]) -> dict[str, float]:
    """`name=value,name=value` (a DNN instance name each) as a dict."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CliError(f"{option}: expected NAME=VALUE[,NAME=VALUE...], got {item!r}")
        if name.strip() not in names:
            raise CliError(f"{option}: unknown DNN {name.strip()!r} (workload: {', '.join(names)})")
        if name.strip() in out:
            raise CliError(f"{option}: {name.strip()!r} is given twice")
        out[name.strip()] = _seconds(option, value)
    return out


def apply_task_classes(workload: Any, args: argparse.Namespace) -> Any:
    """The workload with --period/--rate/--deadline applied: those DNNs become real-time.

    A DNN given a new period whose deadline was its old period's default gets the new default.
    """
    from rankmap_ros.core.workload import Workload

    names = workload.names
    periods = _per_dnn("--period", getattr(args, "period", None), names)
    for name, hz in _per_dnn("--rate", getattr(args, "rate", None), names).items():
        if name in periods:
            raise CliError(f"--rate and --period both given for {name!r}")
        periods[name] = 1.0 / hz
    deadlines = _per_dnn("--deadline", getattr(args, "deadline", None), names)
    if not periods and not deadlines:
        return workload
    dnns = []
    for d in workload.dnns:
        period = periods.get(d.name, d.period)
        deadline = d.deadline if d.deadline != d.period else None
        dnns.append(dataclasses.replace(d, period=period, deadline=deadlines.get(d.name, deadline)))
    return Workload(tuple(dnns), max_dnns=workload.max_dnns)


def _check_realtime(platform: Any, workload: Any) -> None:
    """Refuse a real-time DNN that misses its deadline even alone on the fastest component."""
    from rankmap_ros.core.realtime import infeasibility

    for d in workload.dnns:
        reason = infeasibility(platform, d.model, d.task)
        if reason is not None:
            raise CliError(f"real-time DNN {d.name!r} is infeasible: {reason}")


def cmd_map(args: argparse.Namespace) -> None:
    from rankmap_ros.core.mapping import Mapping
    from rankmap_ros.core.planner import Budget, default_model_name, load_model, make_planner, parse_priorities
    from rankmap_ros.core.planner.rankmap import Mode
    from rankmap_ros.core.platform import load_platform
    from rankmap_ros.core.simulator import ideal_throughput, throughputs
    from rankmap_ros.core.workload import Workload

    platform = load_platform(args.platform)
    workload = parse_workload(args.workload)
    if args.min_rate is not None:
        rates = _min_rates(args.min_rate, len(workload))
        workload = Workload(
            tuple(dataclasses.replace(d, min_rate=r) for d, r in zip(workload.dnns, rates, strict=True)),
            max_dnns=workload.max_dnns,
        )
    workload = apply_task_classes(workload, args)
    _check_realtime(platform, workload)
    priorities = parse_priorities(args.priorities, workload) if args.priorities else None
    mode: Mode = "dynamic" if args.mode == "dynamic" else "static"
    if args.planner != "rankmap" and (priorities is not None or args.mode):
        raise CliError(f"planner {args.planner!r} does not take priorities (only rankmap does)")
    warm = None
    if args.warm_start:
        path = Path(args.warm_start)
        if not path.is_file():
            raise CliError(f"warm-start mapping {path} {not_a_file(path)}")
        warm = Mapping.from_json(read_text(path, "warm-start mapping"))
        covered = {(d.name, d.model) for d in warm.dnns} & {(d.name, d.model) for d in workload.dnns}
        foreign = sorted(set(warm.components_used) - set(platform.component_names))
        if foreign:
            raise CliError(
                f"warm-start mapping {path} uses {', '.join(foreign)}, which platform {platform.name} does not have "
                f"({', '.join(platform.component_names)})"
            )
        if not covered:
            print(
                f"note: warm-start mapping {path} covers none of this workload's DNNs; planning from scratch",
                file=sys.stderr,
            )
    model_name = args.model or default_model_name(platform)
    model = load_model(model_name, platform)
    budget = Budget(simulations=args.budget, seconds=args.time_limit)
    planner = make_planner(args.planner, model, mode=mode, budget=budget, seed=args.seed, max_stages=args.max_stages)
    plan = planner.plan(workload, priorities=priorities, warm_start=warm)
    realtime = any(d.realtime for d in workload.dnns)
    prediction = None
    if realtime:
        from rankmap_ros.core.planner.policy import plan_for_policy

        plan, prediction = plan_for_policy(plan, platform, workload, args.policy, seed=args.seed)
    simulated = throughputs(platform, workload, [plan.mapping])[0]
    ideal = [ideal_throughput(platform, d.model) for d in workload.dnns]
    names = workload.names
    data: dict[str, Any] = {
        **plan.to_dict(),
        "platform": platform.name,
        "mode": mode if args.planner == "rankmap" else None,
        "simulated": True,
        "simulated_throughput": dict(zip(names, map(float, simulated), strict=True)),
        "potential_throughput": {n: float(s / i) for n, s, i in zip(names, simulated, ideal, strict=True)},
        "stages": {d.name: len(d.stages) for d in plan.mapping.dnns},
        "policy": args.policy,
    }
    if prediction is not None:
        from rankmap_ros.core.rtsim import json_safe, schedulable

        data["predicted_miss_rate"] = {d.name: d.miss_rate for d in prediction.dnns if d.realtime}
        data["realtime"] = {
            "tasks": {d.name: {"period": d.period, "deadline": d.deadline} for d in workload.dnns if d.realtime},
            "edf_schedulable": schedulable(platform, workload, plan.mapping),
            "prediction": json_safe(prediction.to_dict()),
        }
    if args.out:
        write_output(args.out, plan.mapping.to_json() + "\n")
    rows = [
        (
            d.name,
            f"{p:.2f}",
            f"{s:.2f}",
            f"{s / i:.3f}",
            " ".join(f"{st.component}[{st.start}:{st.stop}]" for st in d.stages),
        )
        for d, p, s, i in zip(plan.mapping.dnns, plan.predicted_throughput, simulated, ideal, strict=True)
    ]
    status = "" if plan.feasible else "  NO mapping meets every threshold: this one falls short least"
    if prediction is not None:
        status += (
            "\npredicted deadline miss rate under "
            + args.policy
            + " (simulated): "
            + ", ".join(f"{name} {miss:.1%}" for name, miss in data["predicted_miss_rate"].items())
        )
    text = (
        table(rows, ("dnn", "predicted", "simulated", "P", "stages"))
        + f"\n{plan.planner} with {plan.model} on {platform.name} (throughput simulated): "
        + f"{plan.plan_seconds:.2f} s, {plan.simulations} mappings evaluated{status}"
    )
    emit(args, data, text)


def cmd_experiment_paper(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.paper import run_paper, summary_text

    result = run_paper(
        Path(args.out) if args.out else None,
        quick=args.quick,
        seed=args.seed,
        model=args.model,
        platform=args.platform,
    )
    emit(args, result, summary_text(result))


def cmd_experiment_realtime(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.realtime import run_realtime, summary_text

    out = Path(args.out) if args.out else None
    if args.split and not args.measured:
        raise CliError("--split is for --measured runs (it sets this host's CPU clusters)")
    if args.executor != "stage" and not args.measured:
        raise CliError("--executor is for --measured runs (the simulator has no processes)")
    result = run_realtime(
        out,
        quick=args.quick,
        platform=args.platform,
        seed=args.seed,
        measured=args.measured,
        split=args.split,
        executor=args.executor,
    )
    emit(args, result, summary_text(result))


def cmd_experiment_search(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.search import VARIANTS, run_search_comparison

    out = Path(args.out) if args.out else None
    result = run_search_comparison(mixes_per_size=args.mixes, budget=args.budget, seed=args.seed, out_dir=out)
    rows = [
        (name, *(f"{result['variants'][m][name]['mean_ratio']:.3f}" for m in ("dynamic", "static")),
         f"{result['variants']['both'][name]['worst_ratio']:.3f}",
         f"{result['variants']['both'][name]['within_5_percent']:.0%}")
        for name in VARIANTS
    ]  # fmt: skip
    text = (
        table(rows, ("search", "mean, RankMap_D", "mean, RankMap_S", "worst", "within 5%"))
        + f"\nratio to the best known; {result['budget']} evaluations each, {result['platform']} (simulated)"
        + (f"\nwrote {out}/search.json and {out}/search.png" if out else "")
    )
    emit(args, result, text)


def cmd_experiment_priority(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.priority_study import markdown, run_priority_study

    out = Path(args.out) if args.out else None
    result = run_priority_study(out, per_size=args.per_size, budget=args.budget)
    text = markdown(result) + f"\n{result['platform']} (simulated); docs/PLANNER.md, 'Figure 9 and GA', reads it"
    text += f"\nwrote {out}/priority_study.json, .md and .png" if out else ""
    emit(args, result, text)


def cmd_experiment_correction(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.correction import STRATEGIES, run_correction

    out = Path(args.out) if args.out else None
    if args.measured:
        _correction_measured(args, out)
        return
    if args.split or args.platform or args.seconds:
        raise CliError("--platform, --split and --seconds are for --measured runs (this host)")
    result = run_correction(
        mixes_per_size=args.mixes, rounds=args.rounds or 6, budget=args.budget, seed=args.seed, out_dir=out
    )
    summary = result["summary"]
    rows = [
        (
            name,
            *(f"{step['score_vs_oracle']:.3f} ({step['mixes_with_starved']})" for step in summary[name]),
            f"{summary[name][-1]['median_error']:.0%}",
            f"{summary[name][-1]['worst_error']:.0%}",
        )
        for name in STRATEGIES
    ]
    rounds = [f"round {r + 1}" for r in range(len(summary["none"]))]
    text = (
        table(rows, ("correction", *rounds, "median error", "worst error"))
        + "\nscore / oracle's, judged by each mix's perturbed truth (mixes with a starved DNN, of "
        + f"{len(result['mixes'])}); errors of the last round's mapping; {result['platform']} (simulated)"
        + (f"\nwrote {out}/correction.json and {out}/correction.png" if out else "")
    )
    emit(args, result, text)


def _correction_measured(args: argparse.Namespace, out: Path | None) -> None:
    from rankmap_ros.experiments.correction_measured import run_correction_measured
    from rankmap_ros.runtime.host import independent_platform, resolve_platform

    name = args.platform or "host"
    platform = independent_platform(resolve_platform(name, host_split(name, args.split)))
    result = run_correction_measured(
        platform, rounds=args.rounds or 3, seconds=args.seconds or 6.0, budget=args.budget, seed=args.seed, out_dir=out
    )
    summary = result["summary"]
    rows = [
        (
            name,
            *(
                f"{s['mean_score']:.3f} ({s['starved_dnns']}) {s['median_error']:.0%}/{s['worst_error']:.0%}"
                for s in steps
            ),
        )
        for name, steps in summary.items()
    ]
    text = (
        table(rows, ("correction", *(f"round {r + 1}" for r in range(len(summary["none"])))))
        + "\nscore on the measured rates (DNNs below their threshold) median/worst error of the plan's prediction; "
        + f"{len(result['workloads'])} workloads on {', '.join(result['components'])} "
        + f"of {result['platform']} (measured)"
        + (f"\nwrote {out}/correction_measured.json and {out}/correction_measured.png" if out else "")
    )
    emit(args, result, text)


def cmd_bench_planner(args: argparse.Namespace) -> None:
    from rankmap_ros.experiments.paper import bench_planning

    result = bench_planning(mixes=args.mixes, budget=args.budget, seed=args.seed, model=args.model)
    rows = [
        (
            size,
            f"{r['median_plan_seconds']:.3f}",
            f"{r['max_plan_seconds']:.3f}",
            f"{r['median_ms_per_evaluation']:.3f}",
            f"{r['median_simulate_ms']:.3f}",
            r["mixes"],
        )
        for size, r in result["by_size"].items()
    ]
    text = (
        table(rows, ("DNNs", "median s", "max s", "ms/evaluation", "simulate() ms", "mixes"))
        + f"\nRankMap_D, {result['budget']} simulations, model {result['model']} on {result['platform']}"
        + f" (target: median <= {result['target_seconds']} s for 5 DNNs)"
    )
    emit(args, result, text)


def add_realtime_options(p: argparse.ArgumentParser) -> None:
    """--policy and the task-class options (real-time DNNs from the command line)."""
    from rankmap_ros.core.realtime import POLICIES

    p.add_argument(
        "--policy",
        choices=[str(x) for x in POLICIES],
        default="time_sharing",
        help="component scheduling policy the deadline predictions assume (default time_sharing)",
    )
    p.add_argument("--period", help="real-time DNNs: NAME=SECONDS[,NAME=SECONDS...] between inputs (or 33ms)")
    p.add_argument("--rate", help="real-time DNNs by input rate: NAME=HZ[,...] (instead of --period)")
    p.add_argument("--deadline", help="relative deadlines NAME=SECONDS[,...] (default: the period)")


def register(sub: Any, experiments: Any) -> None:
    from rankmap_ros.core.planner import MODELS, PLANNERS

    p = add_command(sub, "map", cmd_map, "plan a mapping for a workload (RankMap or a baseline)")
    p.add_argument("--platform", default="orange_pi_5", help="built-in platform name or YAML file")
    p.add_argument("--workload", required=True, help="comma-separated zoo names, or a workload YAML/JSON file")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--priorities", help="static priorities: 0.7,0.2,0.1 in workload order, or name=value,...")
    how.add_argument("--mode", choices=("static", "dynamic"), help="dynamic: priorities from the DNNs' profiles")
    p.add_argument("--min-rate", help="minimum inferences/s: one value for every DNN, or one per DNN")
    p.add_argument("--planner", choices=PLANNERS, default="rankmap")
    p.add_argument("--model", choices=MODELS, help="throughput model to plan with (default: estimator if shipped)")
    p.add_argument("--budget", type=integer(1), default=3000, help="mappings the search may evaluate (default 3000)")
    p.add_argument("--time-limit", type=SECONDS, help="wall seconds the search may take")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--max-stages", type=integer(1), default=3, help="most pipeline stages per DNN (default 3)")
    p.add_argument("--warm-start", help="the current mapping (JSON): re-plan starting from it")
    p.add_argument("--out", help="also write the mapping's canonical JSON here")
    add_realtime_options(p)

    p = add_command(experiments, "paper", cmd_experiment_paper, "the paper's Section V (Figures 5-10) on the simulator")
    p.add_argument("--out", help="directory for paper.json, paper.md and the PNG figures (also the resume cache)")
    p.set_defaults(resume_hint="With --out, run the same command again to go on from its cache.")
    p.add_argument("--quick", action="store_true", help="a reduced run (under 3 minutes)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--model", choices=MODELS, help="throughput model the planners use (default: estimator if shipped)")
    p.add_argument("--platform", default="orange_pi_5")

    p = add_command(experiments, "search", cmd_experiment_search, "compare search designs at one budget (simulated)")
    p.add_argument("--mixes", type=integer(1), default=4, help="mixes per size (default 4)")
    p.add_argument("--budget", type=integer(1), default=3000)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", help="directory for search.json and search.png (also the resume cache)")
    p.set_defaults(resume_hint="With --out, run the same command again to go on from its cache.")

    p = add_command(
        experiments, "priority", cmd_experiment_priority, "what RankMap_D's and GA's objectives reward (Figure 9)"
    )
    p.add_argument("--per-size", type=integer(1), default=12, help="mixes per size (default 12)")
    p.add_argument("--budget", type=integer(1), default=3000)
    p.add_argument("--out", help="directory for priority_study.json, .md and .png (also the resume cache)")
    p.set_defaults(resume_hint="With --out, run the same command again to go on from its cache.")

    p = add_command(
        experiments, "correction", cmd_experiment_correction, "re-planning with measured rates when the model errs"
    )
    p.add_argument("--mixes", type=integer(1), default=16, help="mixes per size, 3 to 5 DNNs (default 16)")
    p.add_argument("--rounds", type=integer(1), help="plan-run-measure rounds per mix (default 6; measured 3)")
    p.add_argument("--budget", type=integer(1), default=300, help="mappings per plan (default 300, as the manager)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", help="directory for correction.json and correction.png (also the resume cache)")
    p.set_defaults(resume_hint="With --out, run the same command again to go on from its cache.")
    p.add_argument("--measured", action="store_true", help="the truth is this host: three 3-DNN workloads run for real")
    p.add_argument("--platform", help="with --measured: 'host' (default) or a calibrated host platform file")
    p.add_argument("--split", help="with --measured: this host's CPU clusters, e.g. big:0,little:1")
    p.add_argument("--seconds", type=SECONDS, help="with --measured: seconds each mapping is measured (default 6)")

    p = add_command(
        experiments, "realtime", cmd_experiment_realtime, "scheduling policies on three real-time scenarios"
    )
    p.add_argument("--out", help="directory for realtime.json and realtime.png (also the resume cache)")
    p.set_defaults(resume_hint="With --out, run the same command again to go on from its cache.")
    p.add_argument("--quick", action="store_true", help="5 s per run instead of 30 s, a smaller planner budget")
    p.add_argument(
        "--measured", action="store_true", help="run the scenarios for real on this host (12 s per run, 4 s quick)"
    )
    p.add_argument(
        "--split",
        help="with --measured: this host's CPU clusters, e.g. big:0,little:1; the planner's mapping then runs too "
        "(default: one cluster of all cores, every DNN on it)",
    )
    p.add_argument(
        "--executor",
        choices=("stage", "component"),
        default="stage",
        help="with --measured: a process per stage (default), or per component for the arbitrated policies",
    )
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--platform", default="orange_pi_5", help="built-in platform name or YAML file")

    bench = command_group(sub, "bench", "benchmarks")
    p = add_command(bench, "planner", cmd_bench_planner, "planning time of RankMap_D on random 3/4/5-DNN mixes")
    p.add_argument("--mixes", type=integer(1), default=12, help="mixes per size (default 12)")
    p.add_argument("--budget", type=integer(1), default=3000)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--model", choices=MODELS, help="throughput model (default: estimator if shipped)")
