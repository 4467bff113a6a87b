"""Real-time scheduling policies compared on three Pantheon-like applications (issue 7).

Three scenarios in the spirit of Pantheon's robot, drone and traffic applications, three DNNs
each: two real-time DNNs fed by one camera and one best-effort DNN. Deadlines are scaled to the
platform (a factor times the DNN's fastest job alone, core.realtime.fastest_job) and the camera
period follows from the laxest deadline, so the same scenarios run on any platform. Each
scenario runs under two mappings: every DNN on the platform's reference component (Pantheon's
setting, one shared GPU) and the RankMap planner's mapping. Every policy of
core.realtime.POLICIES then runs through a runner, by default the discrete-event simulator
(core/rtsim.py); a runner that measures on this host plugs in through `run_scenarios`.
Runs are cached under the output directory, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rankmap_ros.core.files import write_text_atomic
from rankmap_ros.core.labels import platform_fingerprint
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner import Budget, RankMapPlanner
from rankmap_ros.core.platform import MeasuredUnits, Platform, load_platform
from rankmap_ros.core.realtime import POLICIES, Policy, RtResult, fastest_job
from rankmap_ros.core.rtsim import (
    chain_seconds,
    deadline_feasible,
    edf_schedulable,
    json_safe,
    realtime_density,
    schedulable,
    simulate_rt,
)
from rankmap_ros.core.throughput import SimulatorModel
from rankmap_ros.core.workload import DnnSpec, Workload
from rankmap_ros.experiments.cache import core_digest, read_cached, write_cached

Runner = Callable[[Platform, Workload, Mapping, Policy, float], RtResult]
MAPPINGS = ("shared", "rankmap")
MAPPING_TITLES = {
    "shared": "every DNN on the reference component",
    "rankmap": "the RankMap planner's mapping",
}
# Pantheon's laxest deadline is 31 ms of a 33.3 ms frame: the camera period is the laxest
# real-time deadline over this share.
LAXEST_DEADLINE_SHARE = 0.9
# Targets of issue 7 (docs/BENCHMARKS.md).
TARGET_REDUCTION = 0.9
TARGET_BEST_EFFORT_SHARE = 0.5


@dataclass(frozen=True)
class RtRole:
    """One DNN of a scenario: real-time with deadline = `deadline_factor` x its fastest job, or best-effort."""

    name: str
    model: str
    deadline_factor: float | None = None  # None: best-effort
    priority: float = 1.0


@dataclass(frozen=True)
class Scenario:
    """An application as data; `workload(platform)` scales its deadlines and period to the platform."""

    name: str
    description: str
    roles: tuple[RtRole, ...]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(r.model for r in self.roles)

    def workload(self, platform: Platform, job_seconds: dict[str, float] | None = None) -> Workload:
        """Deadlines from the platform model's fastest job, or from `job_seconds` measured per model."""
        deadlines = {
            r.name: r.deadline_factor
            * (job_seconds[r.model] if job_seconds is not None else fastest_job(platform, r.model)[0])
            for r in self.roles
            if r.deadline_factor is not None
        }
        period = max(deadlines.values()) / LAXEST_DEADLINE_SHARE
        return Workload(
            tuple(
                DnnSpec(
                    r.name,
                    r.model,
                    priority=r.priority,
                    period=period if r.name in deadlines else None,
                    deadline=deadlines.get(r.name),
                )
                for r in self.roles
            )
        )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "robot",
        "mobile robot: obstacle detection and person recognition on one camera, scene recognition best-effort",
        (
            RtRole("obstacles", "ssd_mobilenet", 2.5),
            RtRole("person", "mobilenet_v2", 4.0),
            RtRole("scene", "resnet50"),
        ),
    ),
    Scenario(
        "drone",
        "drone: wildfire detection and scene classification on one camera, wildlife survey best-effort",
        (
            RtRole("wildfire", "efficientnet_b0", 3.0),
            RtRole("terrain", "googlenet", 4.0),
            RtRole("wildlife", "vgg16"),
        ),
    ),
    Scenario(
        "traffic",
        "smart traffic: sign and vehicle classification on one camera, vehicle re-identification best-effort",
        (
            RtRole("signs", "squeezenet", 3.0),
            RtRole("vehicles", "mobilenet", 4.0),
            RtRole("reid", "inception_v4"),
        ),
    ),
)


@dataclass(frozen=True)
class Settings:
    """Seconds each policy runs; the planner's budget for the RankMap mapping; the seed."""

    horizon: float = 30.0
    budget: int = 3000
    seed: int = 0


FULL = Settings()
QUICK = Settings(horizon=5.0, budget=600)
# Measured runs take wall time (plus a few seconds to start and stop each mapping).
MEASURED = Settings(horizon=12.0, budget=600)
MEASURED_QUICK = Settings(horizon=4.0, budget=300)
MEASURED_WARMUP_S = 1.5


def simulated_runner(seed: int = 0) -> Runner:
    """The default runner: core.rtsim, late dropping on for arbitrated policies.

    The real-time DNNs of a scenario share one camera, so their jobs are released together (phase
    0, the critical instant); the best-effort DNN starts at time 0 too.
    """

    def run(platform: Platform, workload: Workload, mapping: Mapping, policy: Policy, horizon: float) -> RtResult:
        phases = {d.name: 0.0 for d in workload.dnns if d.realtime}
        return simulate_rt(platform, workload, mapping, policy, horizon=horizon, seed=seed, phases=phases)

    run.__name__ = f"simulated(seed={seed})"
    return run


def measured_runner(warmup_s: float = MEASURED_WARMUP_S, executor: str = "stage") -> Runner:
    """Runs the mapping for real on this host under the policy (runtime/realtime.py).

    With the `component` executor the arbitrated policies run one process per component;
    time-sharing, the operating system's sharing between processes, keeps one per stage.
    """
    from rankmap_ros.runtime.realtime import run_realtime as run_on_host

    if executor not in ("stage", "component"):
        raise ValueError(f"unknown executor {executor!r} (stage or component)")

    def run(platform: Platform, workload: Workload, mapping: Mapping, policy: Policy, horizon: float) -> RtResult:
        chosen = "component" if executor == "component" and policy.arbitrated else "stage"
        return run_on_host(platform, workload, mapping, policy, horizon, warmup_s=warmup_s, executor=chosen)

    run.__name__ = "measured(host)" if executor == "stage" else "measured(host, component executor)"
    return run


def host_setup(
    scenarios: Sequence[Scenario],
    cache: Path | None = None,
    say: Callable[[str], None] | None = None,
    split: str | None = None,
) -> tuple[Platform, dict[str, float]]:
    """This host's CPU clusters (one of all its cores, or `split`), each fitted to the scenario
    models' unit times measured on it and carrying them as profiled units, and each model's
    fastest measured job time (the whole model as a chain of units, on its fastest cluster),
    which scales the deadlines.

    The measurements are kept under `cache`, so a resumed run scales its deadlines the same way.
    """
    from rankmap_ros.runtime.calibrate import copy_bandwidth_gbs, fit_component
    from rankmap_ros.runtime.host import host_platform
    from rankmap_ros.runtime.profiler import UnitTimes, profile_components

    host = host_platform(split, opencl_cpu_as_gpu=False)
    models = sorted({m for s in scenarios for m in s.models})
    platform = host
    job_seconds: dict[str, float] = {}
    profiled: list[MeasuredUnits] = []
    paths = {c: None if cache is None else cache / f"units_{c}.json" for c in host.component_names}
    machine = platform_fingerprint(host)  # another host, or this one's cores changed: measure again

    def usable(saved: Any) -> bool:
        return isinstance(saved, dict) and saved.get("host") == machine and set(models) <= set(saved["times"])

    cached = {c: saved for c, path in paths.items() if usable(saved := read_cached(path))}
    missing = [c for c in host.component_names if c not in cached]
    found: dict[str, UnitTimes] = {}
    measured_bandwidth = 0.0
    if missing:
        (say or (lambda _m: None))(f"timing every unit of {len(models)} models on this host's {', '.join(missing)}")
        found = profile_components(host, missing, models)
        measured_bandwidth = copy_bandwidth_gbs()
    for component in host.component_names:
        if component in cached:
            saved = cached[component]
            units = UnitTimes(component, {m: tuple(t) for m, t in saved["times"].items()}, {}, saved.get("chains", {}))
            bandwidth = saved["bandwidth_gbs"]
        else:
            units, bandwidth = found[component], measured_bandwidth
            saved = {"host": machine, "times": units.times, "chains": units.chains, "bandwidth_gbs": bandwidth}
            write_cached(paths[component], saved)
        scaled = units.chain_scaled()
        platform = fit_component(platform, scaled, bandwidth)
        profiled += units.profiled()
        for m in models:
            seconds = float(sum(t or 0.0 for t in scaled.times[m]))
            job_seconds[m] = min(seconds, job_seconds.get(m, seconds))
    return replace(platform, unit_times=tuple(profiled)), job_seconds


def scenario_mapping(kind: str, platform: Platform, workload: Workload, settings: Settings) -> Mapping:
    """`shared`: every DNN whole on the reference component; `rankmap`: the planner's (RankMap_S)."""
    if kind == "shared":
        return Mapping.all_on(workload, platform.reference_component)
    planner = RankMapPlanner(SimulatorModel(platform), budget=Budget(simulations=settings.budget), seed=settings.seed)
    return planner.plan(workload).mapping


def reduction(miss: float, reference: float) -> float | None:
    """1 - miss / reference; None when the reference misses nothing (no reduction is defined)."""
    return None if reference <= 0 else 1.0 - miss / reference


def summarize(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per policy: the headline numbers and the reductions against time-sharing and FIFO."""
    ts, fifo = runs[Policy.TIME_SHARING.value], runs[Policy.FIFO.value]
    out: dict[str, Any] = {
        "miss_rate": {p: r["miss_rate"] for p, r in runs.items()},
        "preempted": {p: r["preempted"] for p, r in runs.items()},
        "preempted_ratio": {},
        "best_effort_throughput": {p: r["best_effort_throughput"] for p, r in runs.items()},
        "best_effort_vs_time_sharing": {},
        "miss_rate_reduction_vs_time_sharing": {},
        "miss_rate_reduction_vs_fifo": {},
    }
    for p, r in runs.items():
        released = sum(d["released"] for d in r["dnns"].values())
        out["preempted_ratio"][p] = r["preempted"] / released if released else 0.0
        base = ts["best_effort_throughput"]
        out["best_effort_vs_time_sharing"][p] = r["best_effort_throughput"] / base if base > 0 else None
        out["miss_rate_reduction_vs_time_sharing"][p] = reduction(r["miss_rate"], ts["miss_rate"])
        out["miss_rate_reduction_vs_fifo"][p] = reduction(r["miss_rate"], fifo["miss_rate"])
    if not runs[Policy.EDF.value]["simulated"]:
        out.update(preemption_cost(runs))
    return out


def preemption_cost(runs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """What preemption costs in a measured scenario (the method of `rankmap bench realtime`).

    `preemption_overhead`: the best-effort DNN's compute per completed job under edf over the
    same under np_edf, which never preempts it, minus 1. `resume_overhead`: under edf, the
    extra time of the first unit after each preemption over all the DNNs' compute.
    """

    def service(run: dict[str, Any]) -> float | None:
        best_effort = [d for d in run["dnns"].values() if not d["realtime"]]
        done = sum(d["completed"] for d in best_effort)
        busy = sum(d.get("busy_s", 0.0) for d in best_effort)
        return busy / done if done and busy > 0 else None

    edf, np_edf = runs[Policy.EDF.value], runs[Policy.NP_EDF.value]
    preempted, turns = service(edf), service(np_edf)
    busy = sum(d.get("busy_s", 0.0) for d in edf["dnns"].values())
    return {
        "best_effort_service_s_edf": preempted,
        "best_effort_service_s_np_edf": turns,
        "preemption_overhead": preempted / turns - 1 if preempted and turns else None,
        "resume_overhead": sum(d.get("resume_extra_s", 0.0) for d in edf["dnns"].values()) / busy if busy > 0 else None,
    }


def _targets(entry: dict[str, Any]) -> dict[str, Any]:
    """Issue 7's targets for preemptive EDF in one scenario and mapping."""
    edf = Policy.EDF.value
    ts, fifo = entry["miss_rate"][Policy.TIME_SHARING.value], entry["miss_rate"][Policy.FIFO.value]
    miss = entry["miss_rate"][edf]

    def cut(reference: float) -> bool:
        # Nothing to cut when the reference misses nothing: then EDF must miss nothing either.
        return miss <= 0.0 if reference <= 0 else 1.0 - miss / reference >= TARGET_REDUCTION

    share = entry["best_effort_vs_time_sharing"][edf]
    return {
        "edf_cuts_misses_90pct_vs_time_sharing": cut(ts),
        "edf_cuts_misses_90pct_vs_fifo": cut(fifo),
        "edf_keeps_half_best_effort": share is None or share >= TARGET_BEST_EFFORT_SHARE,
    }


def _fingerprint(settings: Settings, platform: Platform, scenarios: Sequence[Scenario], runner: Runner) -> str:
    text = json.dumps(
        [
            asdict(settings),
            platform.to_dict(),
            [asdict(s) for s in scenarios],
            getattr(runner, "__name__", ""),
            core_digest(),
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_scenarios(
    platform: Platform,
    scenarios: Sequence[Scenario] = SCENARIOS,
    runner: Runner | None = None,
    settings: Settings = FULL,
    cache: Path | None = None,
    mappings: Sequence[str] = MAPPINGS,
    job_seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every scenario under every mapping and policy; per-run results cached as JSON under `cache`."""
    runner = runner or simulated_runner(settings.seed)
    plans: list[tuple[Scenario, Workload, str, Mapping]] = []
    for scenario in scenarios:
        workload = scenario.workload(platform, job_seconds)
        for kind in mappings:
            plans.append((scenario, workload, kind, scenario_mapping(kind, platform, workload, settings)))
    jobs = [(plan, policy) for plan in plans for policy in POLICIES]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    label = "realtime (simulated)" if getattr(runner, "__name__", "").startswith("simulated") else "realtime"
    for (scenario, workload, kind, mapping), policy in tqdm(jobs, desc=label, file=sys.stderr, disable=None):
        path = None if cache is None else cache / f"{scenario.name}_{kind}_{policy.value}.json"
        run = read_cached(path)
        if run is None:
            run = json_safe(runner(platform, workload, mapping, policy, settings.horizon).to_dict())
            write_cached(path, run)
        results.setdefault(f"{scenario.name}/{kind}", {})[policy.value] = run
    report: dict[str, Any] = {}
    for scenario, workload, kind, mapping in plans:
        runs = results[f"{scenario.name}/{kind}"]
        entry: dict[str, Any] = {
            "stages": {d.name: [f"{s.component}[{s.start}:{s.stop}]" for s in d.stages] for d in mapping.dnns},
            "feasible": schedulable(platform, workload, mapping),
            "deadline_feasible": deadline_feasible(platform, workload, mapping),
            "edf_schedulable": edf_schedulable(platform, workload, mapping),
            "realtime_density": realtime_density(platform, workload, mapping),
            "job_seconds": chain_seconds(platform, workload, mapping),
            **summarize(runs),
            "policies": runs,
        }
        entry["targets"] = _targets(entry)
        target = report.setdefault(scenario.name, {"description": scenario.description})
        target["workload"] = workload.to_dict()["dnns"]
        target["mappings"] = {**target.get("mappings", {}), kind: entry}
    for name, target in report.items():
        # The headline is the shared mapping, where the DNNs contend for one component.
        target.update({k: v for k, v in target["mappings"][mappings[0]].items() if k != "policies"})
        target["mapping"] = mappings[0]
        target["policies"] = target["mappings"][mappings[0]]["policies"]
        report[name] = target
    return report


def run_realtime(
    out_dir: Path | None = None,
    *,
    quick: bool = False,
    platform: str | Platform = "orange_pi_5",
    seed: int = 0,
    runner: Runner | None = None,
    scenarios: Sequence[Scenario] = SCENARIOS,
    measured: bool = False,
    split: str | None = None,
    executor: str = "stage",
) -> dict[str, Any]:
    """Run the experiment; with `out_dir`, write realtime.json and realtime.png, and cache per run.

    `measured` runs every scenario for real on this host instead, deadlines scaled by the models'
    job times measured here. The host is one CPU cluster of all its cores, where every DNN shares
    it, or the clusters of `split` (e.g. "big:0,little:1"), where the planner's mapping runs too.
    `executor` (measured runs) is `stage` (a process per stage) or `component` (a process per
    component for the arbitrated policies: measured_runner).
    """
    if measured:
        base = MEASURED_QUICK if quick else MEASURED
        settings = Settings(base.horizon, base.budget, seed)
        runner = measured_runner(executor=executor)
        clusters = (split or "all").replace(":", "").replace(",", "_")
        host_cache = None if out_dir is None else Path(out_dir) / "cache" / f"host-{clusters}"
        plat, job_seconds = host_setup(scenarios, host_cache, lambda m: print(m, file=sys.stderr), split)
        mappings: Sequence[str] = MAPPINGS if len(plat.components) > 1 else ("shared",)
    else:
        plat = platform if isinstance(platform, Platform) else load_platform(platform)
        base = QUICK if quick else FULL
        settings = Settings(base.horizon, base.budget, seed)
        runner = runner or simulated_runner(seed)
        job_seconds, mappings = None, MAPPINGS
    simulated = getattr(runner, "__name__", "").startswith("simulated")
    cache = None
    if out_dir is not None:
        cache = Path(out_dir) / "cache" / _fingerprint(settings, plat, scenarios, runner)
        cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = run_scenarios(plat, scenarios, runner, settings, cache, mappings, job_seconds)
    feasible = [s for s in report.values() if s["feasible"]]
    result: dict[str, Any] = {
        "experiment": "realtime",
        "simulated": simulated,
        "runner": getattr(runner, "__name__", type(runner).__name__),
        "platform": plat.name,
        "components": {c.name: list(c.cpus) if c.backend == "cpu" else c.device for c in plat.components},
        "quick": quick,
        "settings": asdict(settings),
        "policies": [p.value for p in POLICIES],
        "scenarios": report,
        "targets": {
            "feasible_scenarios": [name for name, s in report.items() if s["feasible"]],
            "edf_cuts_misses_90pct_vs_time_sharing": all(
                s["targets"]["edf_cuts_misses_90pct_vs_time_sharing"] for s in feasible
            ),
            "edf_cuts_misses_90pct_vs_fifo": all(s["targets"]["edf_cuts_misses_90pct_vs_fifo"] for s in feasible),
            "edf_keeps_half_best_effort": all(s["targets"]["edf_keeps_half_best_effort"] for s in feasible),
        },
    }
    result["seconds"] = time.perf_counter() - started
    if out_dir is not None:
        out = Path(out_dir)
        write_text_atomic(out / "realtime.json", json.dumps(result, indent=2) + "\n")
        plot(out / "realtime.png", result)
    return result


def plot(path: Path, result: dict[str, Any]) -> None:
    """Pantheon's Figure 2 for our scenarios, one row per mapping: miss rate, preempted-job ratio,
    best-effort throughput."""
    import numpy as np
    from matplotlib.figure import Figure

    names = list(result["scenarios"])
    kinds = list(result["scenarios"][names[0]]["mappings"])
    policies = result["policies"]
    panels = (
        ("miss_rate", "deadline miss rate"),
        ("preempted_ratio", "preempted jobs / jobs"),
        ("best_effort_vs_time_sharing", "best-effort throughput\n(vs time-sharing)"),
    )
    fig = Figure(figsize=(11, 3.4 * len(kinds) + 0.6))
    axes = fig.subplots(len(kinds), 3, squeeze=False)
    x = np.arange(len(names))
    width = 0.8 / len(policies)
    for row, kind in zip(axes, kinds, strict=True):
        for ax, (key, label) in zip(row, panels, strict=True):
            for k, policy in enumerate(policies):
                values = [result["scenarios"][n]["mappings"][kind][key][policy] or 0.0 for n in names]
                ax.bar(x + (k - (len(policies) - 1) / 2) * width, values, width, label=policy)
            ax.set_xticks(x, names)
            ax.set_ylabel(label)
        row[0].set_title(MAPPING_TITLES[kind], loc="left", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(policies), fontsize=8, frameon=False)
    measured = "simulated" if result["simulated"] else "measured"
    clusters = ", ".join(result.get("components", {}))
    fig.suptitle(f"Scheduling policies on {result['platform']} ({clusters}; {measured})")
    fig.tight_layout(rect=(0, 0.5 / (3.4 * len(kinds) + 0.6), 1, 1))
    fig.savefig(path, dpi=120)


def summary_text(result: dict[str, Any]) -> str:
    """A table per scenario for the terminal."""
    kind = "simulated" if result["simulated"] else "measured"
    lines = [f"realtime experiment on {result['platform']} ({kind}), {result['settings']['horizon']:.0f} s per run"]
    for name, s in result["scenarios"].items():
        for kind_name, entry in s["mappings"].items():
            lines.append(f"{name} / {kind_name} mapping (feasible: {entry['feasible']}):")
            lines.append("  policy        miss    preempted  best-effort/s  cut vs TS  cut vs FIFO")
            for p in result["policies"]:
                ts_cut = entry["miss_rate_reduction_vs_time_sharing"][p]
                fifo_cut = entry["miss_rate_reduction_vs_fifo"][p]
                lines.append(
                    f"  {p:<12}  {entry['miss_rate'][p]:6.3f}  {entry['preempted_ratio'][p]:9.3f}"
                    f"  {entry['best_effort_throughput'][p]:13.2f}"
                    f"  {'n/a' if ts_cut is None else f'{ts_cut:9.3f}'}"
                    f"  {'n/a' if fifo_cut is None else f'{fifo_cut:11.3f}'}"
                )
            if entry.get("preemption_overhead") is not None:
                lines.append(
                    f"  preemption adds {entry['preemption_overhead']:+.1%} to the best-effort DNN's compute per job "
                    f"(edf vs np_edf); resuming after a preemption {entry['resume_overhead']:.1%} of all compute"
                )
    lines.append("targets (feasible scenarios): " + json.dumps(result["targets"]))
    return "\n".join(lines)
