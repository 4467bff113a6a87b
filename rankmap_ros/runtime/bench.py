"""`rankmap bench runtime`: the runtime's targets, measured on this host in one run.

Scenarios of one workload, measured in interleaved rounds in the same run so that machine load
from elsewhere affects them alike (per scenario the median round is reported; the speedup is the
median over rounds of the ratio measured in that round): (a) every DNN whole on one component (each component in
turn; the best is the baseline), (b) every DNN whole on its own component, (c) the planner's
mapping (RankMap_D over the calibrated host simulator), (d) the simulator's prediction of (c).
The planner and the judgement of the simulator only see components with cores of their own:
an OpenCL CPU device (PoCL as 'gpu') computes on the CPU clusters' cores, which the simulator,
treating components as independent, cannot represent.
Then the shared-memory hop, the runtime's overhead per frame, the calibrated simulator against
random mappings, and leaks after repeated mapping replacement. Where the calibration measured
the same DNNs all on a component, the drift of those rates since then says how much of the
simulator's error the machine's change of speed explains. (Moving the simulator by that drift
did not help: the drift measured in the scenario rounds is not the drift minutes later, when
the random mappings run.)

On a machine shared with other work, a CPU cluster gives our stages only part of its time. The
simulator's error is reported raw, and again with each cluster's speed scaled by the share that
was available during that run (idle plus our own use, from /proc/stat): the second isolates the
model's error from the machine's load.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankmap_ros.core.mapping import DnnMapping, Mapping
from rankmap_ros.core.planner.reward import thresholds
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import simulate
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime.host import independent_platform
from rankmap_ros.runtime.load import available_share, scaled
from rankmap_ros.runtime.pipeline import Pipeline, RunReport
from rankmap_ros.runtime.profiler import hop_seconds
from rankmap_ros.runtime.shm import owned_entries

HOP_SHAPE = (1, 64, 56, 56)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    seconds: float = 4.0
    warmup_s: float = 1.5
    rounds: int = 3
    replacements: int = 50
    random_mappings: int = 8
    seed: int = 0
    planner_simulations: int = 3000


def run_mapping(platform: Platform, workload: Workload, mapping: Mapping, seconds: float, warmup_s: float) -> RunReport:
    with Pipeline(platform, workload) as pipeline:
        pipeline.start(mapping)
        return pipeline.measure(seconds, warmup_s)


def own_component(workload: Workload, components: tuple[str, ...]) -> Mapping:
    """DNN i whole on component i (cycling when there are more DNNs than components)."""
    return Mapping(
        tuple(
            DnnMapping(m.name, m.model, (components[i % len(components)],) * len(m.assignment))
            for i, m in enumerate(Mapping.all_on(workload, components[0]).dnns)
        )
    )


def planner_mapping(platform: Platform, workload: Workload, simulations: int, seed: int) -> Mapping:
    """RankMap_D with the calibrated simulator as its throughput model."""
    from rankmap_ros.core.planner.base import Budget
    from rankmap_ros.core.planner.rankmap import RankMapPlanner
    from rankmap_ros.core.throughput import SimulatorModel

    planner = RankMapPlanner(SimulatorModel(platform), mode="dynamic", budget=Budget(simulations), seed=seed)
    return planner.plan(workload).mapping


def prediction_errors(platform: Platform, workload: Workload, mapping: Mapping, measured: dict[str, float]) -> dict:
    predicted = simulate(platform, workload, mapping).throughput
    return {n: predicted[n] / measured[n] - 1 if measured[n] > 0 else math.inf for n in predicted}


def _mean(report: RunReport) -> float:
    return float(np.mean(list(report.throughput.values())))


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if Path(f"/proc/{p}").exists()]


def leak_check(platform: Platform, workload: Workload, mappings: list[Mapping], replacements: int) -> dict[str, Any]:
    """Replace the running mapping `replacements` times; count processes and /dev/shm entries left."""
    started: list[int] = []
    t0 = time.monotonic()
    pipeline = Pipeline(platform, workload, source="external")
    try:
        pipeline.start(mappings[0])
        for i in range(replacements):
            started += [p for pids in pipeline.pids().values() for p in pids]
            pipeline.replace(mappings[(i + 1) % len(mappings)])
        started += [p for pids in pipeline.pids().values() for p in pids]
    finally:
        pipeline.stop()
    elapsed = time.monotonic() - t0
    return {
        "replacements": replacements,
        "stage_processes_started": len(started),
        "leaked_processes": len(_alive(started)),
        "leaked_shm_entries": len(owned_entries(os.getpid())),
        "seconds_per_replacement": elapsed / max(replacements, 1),
    }


def random_accuracy(
    platform: Platform, workload: Workload, components: tuple[str, ...], count: int, cfg: BenchConfig
) -> dict[str, Any]:
    """Measured vs simulated per-DNN throughput of random mappings over `components`.

    Every mapping is measured in `cfg.rounds` interleaved rounds and judged on its per-DNN
    median: the same mapping measured minutes apart differs by up to 30-65% (docs/BENCHMARKS.md), and
    how far its rounds differ (`round_spread`) is reported as what no prediction can beat.
    """
    rng = np.random.default_rng(cfg.seed)
    mappings = [Mapping.random(workload, components, rng, max_stages=3) for _ in range(count)]
    rounds: list[list[RunReport]] = [[] for _ in mappings]
    for _ in range(cfg.rounds):
        for k, mapping in enumerate(mappings):
            rounds[k].append(run_mapping(platform, workload, mapping, cfg.seconds, cfg.warmup_s))
    errors: list[float] = []
    corrected: list[float] = []
    spread: list[float] = []
    samples = []
    for mapping, reports in zip(mappings, rounds, strict=True):
        measured = {n: float(np.median([r.throughput[n] for r in reports])) for n in workload.names}
        shares = [available_share(r) for r in reports]
        share = {c: float(np.median([s[c] for s in shares])) for c in shares[0]}
        err = prediction_errors(platform, workload, mapping, measured)
        err_corrected = prediction_errors(scaled(platform, share), workload, mapping, measured)
        errors += [abs(e) for e in err.values()]
        corrected += [abs(e) for e in err_corrected.values()]
        spread += [round_spread([r.throughput[n] for r in reports]) for n in workload.names]
        samples.append(
            {
                "mapping": mapping.to_dict(),
                "measured": measured,
                "measured_by_round": [r.throughput for r in reports],
                "error": err,
                "available_share": share,
                "error_load_corrected": err_corrected,
            }
        )
    return {
        "components": list(components),
        "mappings": count,
        "median_abs_error": _median(errors),
        "worst_abs_error": _worst(errors),
        "median_abs_error_load_corrected": _median(corrected),
        "worst_abs_error_load_corrected": _worst(corrected),
        "median_round_spread": _median(spread),
        "worst_round_spread": _worst(spread),
        "samples": samples,
    }


def round_spread(rates: list[float]) -> float:
    """How far apart the rounds of one measurement are (fastest over slowest, minus 1): the noise floor."""
    return max(rates) / min(rates) - 1.0 if rates and min(rates) > 0 else math.inf


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def _worst(values: list[float]) -> float:
    return float(np.max(values)) if values else math.nan


def drift(
    calibrated: dict[str, dict[str, float]], measured: dict[str, dict[str, float]], names: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Per component, how each DNN's rate all on it moved since calibration measured the same scenario.

    Only where calibration ran exactly these DNNs all on that component (its first three models):
    with other co-runners the rates are not comparable. The simulator is fitted to the machine
    as calibration found it; a drift of x% moves every prediction by about as much, which no
    model of the mapping can remove, so a prediction error is read beside it.
    """
    out = {}
    for comp, rates in calibrated.items():
        now = measured.get(f"all_on_{comp}")
        if now is None or set(rates) != set(names):
            continue
        out[comp] = {n: now[n] / rates[n] - 1 if rates[n] > 0 else math.inf for n in names}
    return out


def bench_runtime(
    platform: Platform,
    workload: Workload,
    cfg: BenchConfig = BenchConfig(),
    progress: Progress | None = None,
    calibrated_rates: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """`calibrated_rates`: calibration's own all-on-one runs (calibrate.calibration_rates), for the drift."""
    say = progress or (lambda _msg: None)
    comps = platform.component_names
    model = independent_platform(platform)
    scenarios: dict[str, Mapping] = {f"all_on_{c}": Mapping.all_on(workload, c) for c in comps}
    scenarios["own_component"] = own_component(workload, comps)
    say(f"planning with RankMap_D over the calibrated simulator of {', '.join(model.component_names)}")
    scenarios["planner"] = planner_mapping(model, workload, cfg.planner_simulations, cfg.seed)
    rounds: dict[str, list[RunReport]] = {n: [] for n in scenarios}
    for r in range(cfg.rounds):
        # Interleaved rounds: a burst of load from elsewhere hits one round of each scenario alike.
        for name, mapping in scenarios.items():
            say(f"round {r + 1}/{cfg.rounds}: measuring {name} for {cfg.seconds:.0f} s")
            rounds[name].append(run_mapping(platform, workload, mapping, cfg.seconds, cfg.warmup_s))
    means = {n: [_mean(rep) for rep in reps] for n, reps in rounds.items()}
    mean = {n: float(np.median(m)) for n, m in means.items()}
    reports = {n: reps[int(np.argsort(means[n])[len(reps) // 2])] for n, reps in rounds.items()}
    best_single = max((n for n in scenarios if n.startswith("all_on_")), key=lambda n: mean[n])
    ratios = [p / b if b > 0 else math.inf for p, b in zip(means["planner"], means[best_single], strict=True)]
    planned = reports["planner"]
    floor = dict(zip(workload.names, thresholds(model, workload).tolist(), strict=True))
    # The threshold is for an idle machine: scale it by the share of its clusters we were left.
    share = available_share(planned)
    used = {d.name: {s.component for s in d.stages} for d in scenarios["planner"].dnns}
    floor_now = {n: floor[n] * min(share.get(c, 1.0) for c in used[n]) for n in floor}
    say("measuring the shared-memory hop")
    hop = hop_seconds(HOP_SHAPE)
    overhead = [d.overhead_fraction for r in reports.values() for d in r.dnns if math.isfinite(d.overhead_fraction)]
    moved = drift(calibrated_rates or {}, {n: r.throughput for n, r in reports.items()}, workload.names)
    accuracy = {}
    for label, plat in (("planner_components", model), ("all_components", platform)):
        if label == "all_components" and plat is model:
            continue
        say(f"{cfg.random_mappings} random mappings over {', '.join(plat.component_names)}")
        accuracy[label] = random_accuracy(plat, workload, plat.component_names, cfg.random_mappings, cfg)
    say(f"replacing the mapping {cfg.replacements} times")
    leaks = leak_check(platform, workload, [scenarios[best_single], scenarios["planner"]], cfg.replacements)
    return {
        "measured": True,
        "platform": platform.name,
        "calibrated": platform.calibrated,
        "planner_components": list(model.component_names),
        "workload": list(workload.names),
        "seconds_per_scenario": cfg.seconds,
        "mappings": {n: m.to_dict() for n, m in scenarios.items()},
        "throughput": {n: r.throughput for n, r in reports.items()},
        "rounds": cfg.rounds,
        "mean_throughput": mean,
        "mean_throughput_by_round": means,
        "utilisation": {n: r.utilisation for n, r in reports.items()},
        "host_busy": {n: r.host_busy for n, r in reports.items()},
        "all_on_one": best_single,
        "speedup_vs_all_on_one": float(np.median(ratios)),
        "speedup_by_round": ratios,
        "starvation_threshold": floor,
        "starvation_threshold_load_corrected": floor_now,
        "starved": [n for n, rate in planned.throughput.items() if rate < floor_now[n]],
        "starved_raw": [n for n, rate in planned.throughput.items() if rate < floor[n]],
        "predicted_planner": simulate(model, workload, scenarios["planner"]).throughput,
        "prediction_error": prediction_errors(model, workload, scenarios["planner"], planned.throughput),
        "prediction_error_load_corrected": prediction_errors(
            scaled(model, available_share(planned)), workload, scenarios["planner"], planned.throughput
        ),
        "hop_ms_1x64x56x56": hop * 1e3,
        "overhead_fraction": {n: {d.name: d.overhead_fraction for d in r.dnns} for n, r in reports.items()},
        "overhead_fraction_max": max(overhead) if overhead else math.nan,
        "random_mappings": accuracy,
        "drift_since_calibration": moved,
        "leaks": leaks,
        "failures": {n: [vars(f) for f in r.failures] for n, r in reports.items() if r.failures},
    }
