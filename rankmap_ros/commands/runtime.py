"""Commands that run DNNs for real on this host: run, calibrate, dataset collect, bench."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from rankmap_ros.commands.common import (
    PERIOD,
    SECONDS,
    SECONDS_OR_ZERO,
    SEED,
    CliError,
    add_command,
    command_group,
    emit,
    host_split,
    integer,
    parse_workload,
    read_mapping,
    table,
    write_output,
)

DEFAULT_SPLIT_HELP = "explicit CPU clusters for a discovered host, e.g. big:0,little:1 (default: discovered)"


def _platform(args: argparse.Namespace) -> Any:
    from rankmap_ros.runtime.host import resolve_platform, unpinned_warning

    split = host_split(args.platform, args.split)
    platform = resolve_platform(args.platform, split, opencl_cpu_as_gpu=not args.no_opencl_cpu)
    warning = unpinned_warning(platform)
    if warning:
        print(f"rankmap: warning: {warning}", file=sys.stderr)
    return platform


def _platform_args(p: argparse.ArgumentParser, default: str = "host") -> None:
    p.add_argument("--platform", default=default, help="'host' (discovered now) or a host platform YAML file")
    p.add_argument("--split", help=DEFAULT_SPLIT_HELP)
    p.add_argument(
        "--no-opencl-cpu",
        action="store_true",
        help="do not present an OpenCL CPU device (PoCL) as the 'gpu' component of a discovered host",
    )


def _say(args: argparse.Namespace) -> Any:
    def say(message: str) -> None:
        print(f"[rankmap] {message}", file=sys.stderr, flush=True)

    return None if getattr(args, "quiet", False) else say


def cmd_run(args: argparse.Namespace) -> None:
    from rankmap_ros.runtime.pipeline import Pipeline, stop_on_signals

    platform = _platform(args)
    workload = parse_workload(args.workload)
    mapping = read_mapping(args.mapping, workload)
    pipeline = Pipeline(platform, workload)
    with stop_on_signals(pipeline), pipeline:
        pipeline.start(mapping)
        report = pipeline.measure(args.seconds, args.warmup)
    data = {"platform": platform.name, "mapping": mapping.to_dict(), **report.to_dict()}
    rows = [
        (
            d.name,
            f"{d.throughput:.2f}",
            f"{d.latency_p50_s * 1e3:.1f}",
            " ".join(
                f"{s.component}[{s.units[0]}:{s.units[1]}] {s.service_time_s * 1e3:.1f}ms"
                f" ({s.compute_cpu_s * 1e3:.1f} CPU)"
                for s in d.stages
            ),
        )
        for d in report.dnns
    ]
    util = ", ".join(f"{c} {u:.0%}" for c, u in report.utilisation.items())
    text = table(rows, ("dnn", "inf/s", "p50 ms", "stages (service time, its CPU time)"))
    text += f"\nutilisation: {util}  (measured on this host over {report.seconds:.1f} s)"
    for f in report.failures:
        text += f"\nFAILED: {f.dnn} stage {f.stage} on {f.component} (pid {f.pid}): {f.reason}"
    emit(args, data, text)
    if report.failures:
        raise CliError(f"{len(report.failures)} stage process(es) died during the run")


def _model_list(text: str) -> tuple[str, ...]:
    """Zoo models to time, as many as wanted (a workload holds at most 5 DNNs; a calibration may time more)."""
    from rankmap_ros.core import zoo

    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        models = tuple(dict.fromkeys(zoo.canonical_name(name) for name in names))
    except zoo.ZooError as exc:
        raise CliError(str(exc)) from exc
    if not models:
        raise CliError("--models names no model")
    return models


def cmd_calibrate(args: argparse.Namespace) -> None:
    from rankmap_ros.runtime.calibrate import DEFAULT_MODELS, calibrate, measurements_path
    from rankmap_ros.runtime.calibration_plot import plot_calibration, plot_path
    from rankmap_ros.runtime.discover import write_platform
    from rankmap_ros.runtime.profiler import PASSES

    base = _platform(args)
    models = _model_list(args.models) if args.models else DEFAULT_MODELS
    passes = args.passes or PASSES
    result = calibrate(base, models, contention_seconds=args.contention_seconds, passes=passes, progress=_say(args))
    out = Path(args.out)
    # the measurements first: a platform file never sits beside an older run's measurements
    details = measurements_path(out)
    write_output(str(details), json.dumps(result.to_dict(), indent=1, sort_keys=True))
    write_platform(result.platform, out)
    picture = plot_path(out)
    try:  # the picture is for people: a plotting failure must not cost the calibration
        plot_calibration(result, picture)
    except Exception as exc:
        print(f"rankmap: warning: {picture} not drawn: {type(exc).__name__}: {exc}", file=sys.stderr)
    rows = [
        (c, f"{q.unit_median:.1%}", f"{q.unit_worst:.1%}", f"{q.model_median:.1%}", f"{q.model_worst:.1%}")
        for c, q in result.quality.items()
    ]
    text = table(rows, ("component", "unit median", "unit worst", "model median", "model worst"))
    sharing = [
        (
            c.name,
            f"{c.concurrency_loss:.3f}",
            ", ".join(f"{m} {a:.3f}" for m, a in c.model_concurrency_loss) or "-",
            f"{c.parallelism:g}",
            f"{c.interference:.1%}",
        )
        for c in result.platform.components
    ]
    text += "\n\n" + table(sharing, ("component", "concurrency loss", "per model", "parallelism", "interference"))
    text += f"\nwrote {out} (calibrated host platform), {details} (measurements) and {picture} (fit)"
    emit(args, {"out": str(out), "details": str(details), "plot": str(picture), **result.to_dict()}, text)


def cmd_dataset_collect(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from rankmap_ros.core.dataset import generate
    from rankmap_ros.runtime.collect import MeasuredLabels
    from rankmap_ros.runtime.host import independent_platform

    platform = independent_platform(_platform(args))
    source = MeasuredLabels(platform, seconds=args.seconds, warmup_s=args.warmup)

    def progress(indices: Any, total: int, done: int) -> Any:
        return tqdm(indices, total=total, initial=done, desc="measuring", file=sys.stderr, disable=args.json)

    say = _say(args)
    if say:
        say("measuring every zoo model alone on the reference component (ideal rates), then the samples")
    # a measured sample costs seconds: every one goes into the partial file a rerun goes on from
    dataset = generate(
        source,
        args.samples,
        Path(args.out),
        seed=args.seed,
        max_dnns=args.max_dnns,
        progress=progress,
        checkpoint_every=1,
    )
    data = {"out": args.out, "samples": len(dataset), "label_source": source.name, "platform": platform.name}
    emit(args, data, f"wrote {len(dataset)} measured samples to {args.out}")


def cmd_bench_realtime(args: argparse.Namespace) -> None:
    from rankmap_ros.runtime.arbiter import bench
    from rankmap_ros.runtime.host import host_platform
    from rankmap_ros.runtime.realtime import preemption_cost

    platform = host_platform(args.split, opencl_cpu_as_gpu=False)
    if args.component is not None and args.component not in platform.component_names:
        raise CliError(f"no component {args.component!r} on this host (it has {', '.join(platform.component_names)})")
    executors = ("stage", "component") if args.executor == "both" else (args.executor,)
    decisions = [bench(args.cycles, processes=k) for k in (1, 2, 4)]
    costs = preemption_cost(
        platform,
        period=args.period,
        seconds=args.seconds,
        rounds=args.rounds,
        component=args.component,
        executors=executors,
    )
    data = {
        "measured": True,
        "decision": decisions,
        "preemption": costs,
        "targets": {
            "decision_under_50us": max(d["overhead_s_per_decision"] for d in decisions) < 50e-6,
            # None: not measured (the best-effort DNN completed no job), which is neither a pass nor a miss
            "preemption_under_3pct": {ex: _below(c["preemption_overhead"], 0.03) for ex, c in costs.items()},
            "resume_under_3pct": {ex: _below(c["resume_overhead"], 0.03) for ex, c in costs.items()},
        },
    }
    rows = [
        (d["processes"], f"{d['overhead_s_per_decision'] * 1e6:.1f}", f"{d['should_yield_s'] * 1e6:.1f}")
        for d in decisions
    ]
    text = table(rows, ("processes", "µs per decision", "µs per should_yield"))
    for executor, cost in costs.items():
        text += (
            f"\npreemption, {executor} executor: {cost['best_effort']} service time "
            + f"{cost['service_time_alone_s'] * 1e3:.2f} ms alone, "
            + f"{cost['service_time_not_preempted_s'] * 1e3:.2f} ms taking turns with {cost['realtime']} under np_edf "
            + f"({cost['sharing_overhead']:+.1%}), {cost['service_time_preempted_s'] * 1e3:.2f} ms preempted by it "
            + f"under edf ({cost['yields_per_job']:.1f} yields per job): "
            + f"preemption {cost['preemption_overhead']:+.1%}, "
            + f"of which resuming (first unit after each preemption) {cost['resume_overhead']:+.1%}, "
            + f"on {cost['component']} (measured on this host)"
        )
    emit(args, data, text)


def _below(value: float, target: float) -> bool | None:
    return None if math.isnan(value) else value < target


def cmd_bench_handover(args: argparse.Namespace) -> None:
    from rankmap_ros.core import zoo
    from rankmap_ros.runtime.handover import WAYS, HandoverConfig, inline_pair, load, measure

    try:
        best_effort, realtime = zoo.canonical_name(args.best_effort), zoo.canonical_name(args.realtime)
    except zoo.ZooError as exc:
        raise CliError(str(exc)) from None
    if args.cpu is not None and args.cpu not in os.sched_getaffinity(0):
        raise CliError(f"CPU {args.cpu} is not available to this process")
    device = _handover_device(args.device)
    models = load(HandoverConfig(best_effort, realtime, args.cpu, args.rounds, args.seed, device))
    data = measure(models, progress=_say(args))
    pair = inline_pair(models, args.period, args.seconds, progress=_say(args))
    data["one_thread_pair"] = pair
    job = data["job_s"]
    rows = [
        (
            way,
            f"{data['ways'][way]['extra_s_per_preemption'] * 1e3:.3f}",
            f"{data['ways'][way]['first_unit_extra_s'] * 1e3:.3f}",
            f"{data['ways'][way]['extra_s_per_preemption'] / job:+.2%}",
        )
        for way in WAYS
    ]
    text = (
        f"{data['best_effort']} ({job * 1e3:.1f} ms per job on {device}, fed from CPU {data['cpu']}) preempted by one "
        f"{data['realtime']} job, measured on this host:\n"
        + table(rows, ("preempting job runs in", "extra ms", "in first unit", "per preemption"))
        + f"\nboth in one thread, {data['realtime']} every {pair['period_s'] * 1e3:.0f} ms: preemptive edf adds "
        + f"{pair['preemption_overhead']:+.1%} to {data['best_effort']}'s compute over np_edf "
        + f"({pair['preemptions_per_job']:.1f} preemptions per job)"
    )
    emit(args, data, text)
    if args.out:
        write_output(args.out, json.dumps(data, indent=1) + "\n")


def _handover_device(text: str) -> str:
    """'cpu' or a CUDA device of this machine ('cuda' is 'cuda:0')."""
    import torch

    if text == "cpu":
        return text
    name, _, index = text.partition(":")
    if name != "cuda" or not (index or "0").isdigit():
        raise CliError(f"--device {text!r}: expected cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(index or 0) >= count:
        raise CliError(f"--device {text!r}: this machine has {count} usable CUDA device(s)")
    return f"cuda:{int(index or 0)}"


def cmd_bench_runtime(args: argparse.Namespace) -> None:
    from rankmap_ros.runtime.bench import BenchConfig, bench_runtime
    from rankmap_ros.runtime.calibrate import calibrate, calibration_rates

    platform = _platform(args)
    workload = parse_workload(args.workload)
    say = _say(args)
    rates: dict[str, dict[str, float]] = {}
    if not platform.calibrated:
        if say:
            say("platform is not calibrated: calibrating on the workload's models first")
        calibration = calibrate(platform, workload.models, progress=say)
        platform = calibration.platform
        rates = {c: found["throughput"] for c, found in calibration.contention.items()}
    elif Path(args.platform).is_file():
        rates, why = calibration_rates(args.platform)
        if why:
            print(f"rankmap: note: drift since calibration not measured: {why}", file=sys.stderr)
    cfg = BenchConfig(
        seconds=args.seconds,
        rounds=args.rounds,
        replacements=args.replacements,
        random_mappings=args.random_mappings,
        seed=args.seed,
    )
    result = bench_runtime(platform, workload, cfg, progress=say, calibrated_rates=rates)
    if args.out:
        write_output(args.out, json.dumps(result, indent=1, sort_keys=True))
    acc = result["random_mappings"]
    lines = [
        "runtime benchmark, measured on this host",
        *(
            f"  {n:<22}mean {result['mean_throughput'][n]:7.2f} inf/s  ({_rates(result['throughput'][n])})"
            for n in result["throughput"]
        ),
        f"  speedup planner vs {result['all_on_one']}: {result['speedup_vs_all_on_one']:.2f}x median of rounds "
        f"{_errors(dict(enumerate(result['speedup_by_round'])), '.2f')} (target >= 1.3), "
        f"starved: {result['starved'] or 'none'} (load-corrected threshold; raw: {result['starved_raw'] or 'none'})",
        f"  planner prediction error: {_errors(result['prediction_error'])}; "
        f"load-corrected {_errors(result['prediction_error_load_corrected'])}",
        *(
            f"  random mappings over {', '.join(a['components'])}: |error| median {a['median_abs_error']:.1%}, "
            f"worst {a['worst_abs_error']:.1%}; load-corrected median {a['median_abs_error_load_corrected']:.1%}, "
            f"worst {a['worst_abs_error_load_corrected']:.1%} (target 25%); "
            f"its rounds differed by {a['median_round_spread']:.1%} median, {a['worst_round_spread']:.1%} worst"
            for a in acc.values()
        ),
        *(
            f"  drift since calibration, all on {c}: {_errors(d)} (the host's change of speed since "
            "calibration; prediction errors move with it)"
            for c, d in result["drift_since_calibration"].items()
        ),
        f"  shared-memory hop 1x64x56x56 float32: {result['hop_ms_1x64x56x56']:.3f} ms (target < 0.5)",
        f"  runtime overhead per frame: max {result['overhead_fraction_max']:.2%} of stage compute (target < 5%)",
        f"  after {result['leaks']['replacements']} replacements: {result['leaks']['leaked_processes']} processes, "
        f"{result['leaks']['leaked_shm_entries']} /dev/shm entries left (target 0)",
    ]
    emit(args, result, "\n".join(lines))


def _errors(values: dict[Any, float], fmt: str = "+.0%") -> str:
    return ", ".join(f"{k} {v:{fmt}}" for k, v in values.items())


def _rates(rates: dict[str, float]) -> str:
    return ", ".join(f"{d} {r:.2f}" for d, r in rates.items())


def register(sub: Any, experiments: Any) -> None:
    p = add_command(sub, "run", cmd_run, "run a mapping for real on this host and report measured throughput")
    p.add_argument("--workload", required=True, help="comma-separated zoo names, or a workload YAML/JSON file")
    p.add_argument("--mapping", required=True, help="mapping JSON file, or all-<component> (e.g. all-big)")
    p.add_argument("--seconds", type=SECONDS, default=5.0, help="measurement window (default 5)")
    p.add_argument("--warmup", type=SECONDS_OR_ZERO, default=1.0, help="seconds to run before measuring (default 1)")
    _platform_args(p)

    p = add_command(sub, "calibrate", cmd_calibrate, "measure this host and write a calibrated host platform")
    _platform_args(p)
    p.add_argument("--out", required=True, help="platform YAML to write")
    p.set_defaults(
        resume_hint="Nothing was written. A calibration is measured in one go (about 4 minutes), so that "
        "its numbers are of one moment of this host: run it again."
    )
    p.add_argument("--models", help="comma-separated zoo models to time (default: four small ones)")
    p.add_argument(
        "--contention-seconds",
        type=SECONDS_OR_ZERO,
        default=4.0,
        help="seconds of each sharing and interference run per CPU cluster; 0 skips (default 4)",
    )
    p.add_argument(
        "--passes",
        type=integer(1),
        help="passes over every unit, the components taking turns; a unit's time is its median (default 5)",
    )
    p.add_argument("--quiet", action="store_true")

    dataset = command_group(sub, "dataset", "throughput datasets")
    p = add_command(
        dataset,
        "collect",
        cmd_dataset_collect,
        "label random mappings by running them on this host (components with cores of their own)",
    )
    _platform_args(p)
    p.add_argument("--out", required=True, help="dataset .npz to write (resumed if a partial file exists)")
    p.set_defaults(resume_hint="Run the same command again to go on from OUT.partial.npz.")
    p.add_argument("--samples", type=integer(1), default=20)
    p.add_argument("--seconds", type=SECONDS, default=3.0, help="measurement window per sample (default 3)")
    p.add_argument(
        "--warmup", type=SECONDS_OR_ZERO, default=1.0, help="seconds each sample runs before measuring (default 1)"
    )
    p.add_argument("--max-dnns", type=integer(1, 5), default=5)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--quiet", action="store_true")

    bench = command_group(sub, "bench", "benchmarks")
    p = add_command(bench, "realtime", cmd_bench_realtime, "arbiter decision cost and preemption overhead (issue 7)")
    p.add_argument("--cycles", type=integer(1), default=2000, help="decisions per process in the arbiter benchmark")
    p.add_argument("--seconds", type=SECONDS, default=4.0, help="measured window per preemption run")
    p.add_argument("--rounds", type=integer(1), default=2, help="rounds of the alone / np_edf / edf runs")
    p.add_argument("--split", help="CPU clusters of the host, e.g. big:0,little:1 (default: one cluster)")
    p.add_argument("--component", help="component to measure preemption on, e.g. cuda (default: the first CPU)")
    p.add_argument("--period", type=PERIOD, default=0.03, help="the real-time DNN's period in seconds")
    p.add_argument(
        "--executor",
        choices=("stage", "component", "both"),
        default="both",
        help="a process per stage, per component, or both side by side (default both)",
    )
    p = add_command(
        bench, "handover", cmd_bench_handover, "what one preemption costs, by where the preempting job runs"
    )
    p.add_argument("--best-effort", default="resnet50", help="the model preempted (default resnet50)")
    p.add_argument("--realtime", default="squeezenet_v2", help="the model preempting it (default squeezenet_v2)")
    p.add_argument("--cpu", type=integer(0), help="the CPU both run on (default: the first this process may use)")
    p.add_argument("--rounds", type=integer(1), default=6, help="interleaved rounds (default 6)")
    p.add_argument("--device", default="cpu", help="cpu (default), or cuda[:N] to run both models on a GPU")
    p.add_argument("--period", type=PERIOD, default=0.03, help="the real-time DNN's period in the one-thread pair")
    p.add_argument("--seconds", type=SECONDS, default=4.0, help="each policy's window per round in the one-thread pair")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", help="also write the JSON result here")
    p.add_argument("--quiet", action="store_true")
    p = add_command(bench, "runtime", cmd_bench_runtime, "measured runtime targets on this host (issue 5)")
    p.add_argument("--workload", default="squeezenet_v2,shufflenet,mobilenet_v2")
    _platform_args(p)
    p.add_argument("--seconds", type=SECONDS, default=4.0, help="measurement window per scenario (default 4)")
    p.add_argument("--rounds", type=integer(1), default=3, help="interleaved rounds of the scenarios (default 3)")
    p.add_argument("--replacements", type=integer(0), default=50)
    p.add_argument("--random-mappings", type=integer(0), default=8)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", help="also write the JSON result here")
    p.set_defaults(
        resume_hint="Nothing was written. The scenarios are compared side by side within one run, "
        "which a resumed run would not be: run it again."
    )
    p.add_argument("--quiet", action="store_true")
