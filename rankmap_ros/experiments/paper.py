"""The paper's Section V on the simulated board: every planner on the same seeded workloads.

Mixes of 3, 4 and 5 DNNs drawn from the paper's pool of 23 (24 mixes per size, 72 in all);
each planner maps each mix with the same throughput model (GA measures on the "board", the
simulator), and every mapping is judged by the simulator. Reported per planner and mix size:
normalized throughput T over all-on-GPU (Figure 5), P of the high-priority DNN under
RankMap_S's 0.7 (Figure 6), starved DNNs (Figure 7), Pearson r between P and the dynamic
priority vector (Figure 9) and planning seconds; plus the arrival scenario (Figure 8), the
priority shift (Figure 10) and RankMap_D's gap to a long direct search on the simulator.
Every number here is simulated. Per-mix results are cached under the output directory, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rankmap_ros.core import zoo
from rankmap_ros.core.files import write_text_atomic
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner import Budget, Planner, RankMapPlanner, default_model_name, load_model, make_planner
from rankmap_ros.core.planner.ga import evolve
from rankmap_ros.core.planner.plans import Evaluator, MappingBuilder
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.simulator import ideal_throughput, simulate, throughputs
from rankmap_ros.core.throughput import SimulatorModel, ThroughputModel
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.cache import core_digest, read_cached, write_cached
from rankmap_ros.experiments.motivation import STARVATION_EPSILON

# The paper's pool (Section V): the zoo less Inception-ResNet-V1, which only Figure 8 uses.
PAPER_POOL = tuple(n for n in zoo.names() if n != "inception_resnet_v1")
MIX_SIZES = (3, 4, 5)
PLANNERS = ("gpu", "mosaic", "odmdef", "ga", "omniboost", "rankmap_s", "rankmap_d")
BASELINES = ("gpu", "mosaic", "odmdef", "ga", "omniboost")
CRITICAL_PRIORITY = 0.7
ARRIVAL = ("inception_resnet_v1", "alexnet", "squeezenet", "resnet50")
ARRIVAL_TIMES = (0, 150, 300, 450)
SHIFT = ("mobilenet_v2", "shufflenet", "alexnet", "squeezenet")
PLANNING_TARGET_SECONDS = 1.0
SIMULATE_CALLS = 20  # per mix: enough for a stable median of a sub-millisecond call

# Section V of the paper, measured on the board. T is normalized to all-on-GPU; the paper gives
# RankMap_D's T over each planner (x) and RankMap_S's P of the critical DNN over each planner.
PAPER: dict[str, Any] = {
    "rankmap_d_T_over": {
        "3": {"gpu": 1.82, "mosaic": 1.48, "odmdef": 1.46, "ga": 1.23, "omniboost": 1.08, "rankmap_s": 1 / 0.85},
        "4": {"gpu": 3.6, "mosaic": 2.2, "odmdef": 2.1, "ga": 1.6, "omniboost": 1.2, "rankmap_s": 1 / 0.86},
        "5": {"gpu": 1.79, "mosaic": 1.51, "odmdef": 1.46, "ga": 1.30, "omniboost": 1.12, "rankmap_s": 1 / 0.95},
    },
    "rankmap_s_P_over": {
        "3": {"gpu": 6.3, "mosaic": 2.2, "odmdef": 2.7, "ga": 4.0, "omniboost": 2.6},
        "4": {"gpu": 57.5, "mosaic": 7.4, "odmdef": 35.1, "ga": 21.9, "omniboost": 2.2},
        "5": {"gpu": 55.0, "mosaic": 12.0, "odmdef": 18.0, "ga": 42.0, "omniboost": 38.0},
    },
    "rankmap_s_P_min_max": {"3": [0.21, 0.91], "4": [0.14, 0.37], "5": [0.12, 0.49]},
    "starved_of_72": {"gpu": 19, "mosaic": 9, "odmdef": 13, "ga": 11, "omniboost": 5, "rankmap_s": 0, "rankmap_d": 0},
    "rankmap_d_pearson_r": {"3": 0.85, "4": "two mixes below 0.5", "5": "positive in every mix"},
    "plan_seconds": {
        "gpu": "fastest",
        "mosaic": "about 1",
        "odmdef": "about 1",
        "ga": "slowest",
        "omniboost": "about 30",
        "rankmap_s": "about 30",
        "rankmap_d": "about 30",
    },
    "arrival_T": {"rankmap_d": 14, "omniboost": 18},
}


@dataclass(frozen=True)
class Settings:
    """mixes per size; simulations per search; the long reference search gets reference_factor times more."""

    mixes_per_size: int = 24
    budget: int = 3000
    reference_factor: int = 20
    seed: int = 0


FULL = Settings()
QUICK = Settings(mixes_per_size=2, budget=600, reference_factor=5)


def make_mixes(seed: int, per_size: int) -> list[tuple[str, ...]]:
    """Seeded mixes of distinct pool models; the first DNN of each mix is its critical one."""
    rng = np.random.default_rng(seed)
    return [
        tuple(str(m) for m in rng.choice(PAPER_POOL, size=size, replace=False))
        for size in MIX_SIZES
        for _ in range(per_size)
    ]


def critical_priorities(size: int) -> list[float]:
    """RankMap_S's vector: 0.7 on the first DNN, the rest shared equally."""
    return [CRITICAL_PRIORITY] + [(1 - CRITICAL_PRIORITY) / (size - 1)] * (size - 1)


def _planners(model: ThroughputModel, settings: Settings) -> dict[str, Planner]:
    budget = Budget(simulations=settings.budget)
    planners = {name: make_planner(name, model, budget=budget, seed=settings.seed) for name in BASELINES}
    planners["rankmap_s"] = make_planner("rankmap", model, mode="static", budget=budget, seed=settings.seed)
    planners["rankmap_d"] = make_planner("rankmap", model, mode="dynamic", budget=budget, seed=settings.seed)
    return planners


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    if np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def run_mix(models: Sequence[str], settings: Settings, model: ThroughputModel, platform: Platform) -> dict[str, Any]:
    """Every planner on one mix, judged by the simulator, and RankMap_D against a long direct search."""
    workload = Workload.from_models(models)
    ideal = np.array([ideal_throughput(platform, m) for m in workload.models])
    baseline = throughputs(platform, workload, [Mapping.all_on(workload, platform.reference_component)])[0]
    critical = critical_priorities(len(models))
    rankmap_d = RankMapPlanner(model, mode="dynamic")
    dynamic_p = list(rankmap_d.objective(workload).priorities or ())
    out: dict[str, Any] = {"models": list(workload.models), "critical": workload.names[0], "planners": {}}
    out["dynamic_priorities"] = dynamic_p
    for name, planner in _planners(model, settings).items():
        plan = planner.plan(workload, priorities=critical if name == "rankmap_s" else None)
        rates = throughputs(platform, workload, [plan.mapping])[0]
        potential = rates / ideal
        out["planners"][name] = {
            "throughput": rates.tolist(),
            "potential_throughput": potential.tolist(),
            "normalized_throughput": float(rates.mean() / baseline.mean()),
            "p_high_priority": float(potential[0]),
            "starved": int((potential < STARVATION_EPSILON).sum()),
            "pearson_r": _pearson(potential.tolist(), dynamic_p),
            "plan_seconds": plan.plan_seconds,
            "simulations": plan.simulations,
            "measurements": plan.measurements,
            "feasible_predicted": plan.feasible,
            "stages": [[f"{s.component}[{s.start}:{s.stop}]" for s in d.stages] for d in plan.mapping.dnns],
        }
    out["reference"] = _reference(workload, settings, platform, out["planners"]["rankmap_d"]["throughput"])
    return out


def _reference(
    workload: Workload, settings: Settings, platform: Platform, rankmap_d_rates: Sequence[float]
) -> dict[str, Any]:
    """RankMap_D's objective on the simulator: its mapping's score vs a GA with reference_factor x the budget."""
    simulator = SimulatorModel(platform)
    objective = RankMapPlanner(simulator, mode="dynamic").objective(workload)
    evaluator = Evaluator(
        simulator,
        MappingBuilder(workload, platform.component_names),
        objective,
        Budget(simulations=settings.budget * settings.reference_factor),
    )
    evolve(evaluator, np.random.default_rng(settings.seed + 1))
    ours = float(objective.scores(np.asarray(rankmap_d_rates))[0])
    best = max(float(evaluator.best_score), ours)
    return {
        "search": f"GA on the simulator, {evaluator.simulations} evaluations",
        "best_score": best,
        "rankmap_d_score": ours,
        "ratio": ours / best if best > 0 else None,
    }


def arrival_scenario(model: ThroughputModel, platform: Platform, settings: Settings) -> dict[str, Any]:
    """Figure 8: DNNs arrive one by one; RankMap_D and OmniBoost re-plan, warm-started, at each arrival."""
    out: dict[str, Any] = {"models": list(ARRIVAL), "times": list(ARRIVAL_TIMES), "planners": {}}
    budget = Budget(simulations=settings.budget)
    planners = {
        "rankmap_d": make_planner("rankmap", model, mode="dynamic", budget=budget, seed=settings.seed),
        "omniboost": make_planner("omniboost", model, budget=budget, seed=settings.seed),
    }
    for name, planner in planners.items():
        phases = []
        current: Mapping | None = None
        for k, at in enumerate(ARRIVAL_TIMES):
            workload = Workload.from_models(ARRIVAL[: k + 1])
            plan = planner.plan(workload, warm_start=current)
            current = plan.mapping
            rates = throughputs(platform, workload, [plan.mapping])[0]
            ideal = np.array([ideal_throughput(platform, m) for m in workload.models])
            phases.append(
                {
                    "time": at,
                    "potential_throughput": dict(zip(workload.names, (rates / ideal).tolist(), strict=True)),
                    "mean_throughput": float(rates.mean()),
                    "plan_seconds": plan.plan_seconds,
                }
            )
        out["planners"][name] = phases
    return out


def priority_shift_scenario(model: ThroughputModel, platform: Platform, settings: Settings) -> dict[str, Any]:
    """Figure 10: RankMap_S moves the 0.7 weight from one DNN to the next, re-planning warm-started."""
    workload = Workload.from_models(SHIFT)
    ideal = np.array([ideal_throughput(platform, m) for m in workload.models])
    planner = make_planner("rankmap", model, budget=Budget(simulations=settings.budget), seed=settings.seed)
    phases = []
    current: Mapping | None = None
    for k in range(len(SHIFT)):
        vector = [0.1] * len(SHIFT)
        vector[k] = CRITICAL_PRIORITY
        plan = planner.plan(workload, priorities=vector, warm_start=current)
        current = plan.mapping
        rates = throughputs(platform, workload, [plan.mapping])[0]
        phases.append(
            {
                "priorities": dict(zip(workload.names, vector, strict=True)),
                "potential_throughput": dict(zip(workload.names, (rates / ideal).tolist(), strict=True)),
                "plan_seconds": plan.plan_seconds,
            }
        )
    return {"models": list(SHIFT), "phases": phases}


def summarize(mixes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per planner and mix size: the means the paper's figures show."""
    by_planner: dict[str, Any] = {}
    for name in PLANNERS:
        sizes: dict[str, Any] = {}
        for size in MIX_SIZES:
            rows = [m["planners"][name] for m in mixes if len(m["models"]) == size]
            if not rows:
                continue
            rs = [r["pearson_r"] for r in rows if r["pearson_r"] is not None]
            p_high = [r["p_high_priority"] for r in rows]
            sizes[str(size)] = {
                "mixes": len(rows),
                "normalized_throughput": float(np.mean([r["normalized_throughput"] for r in rows])),
                "p_high_priority": float(np.mean(p_high)),
                "p_high_priority_min": float(np.min(p_high)),
                "p_high_priority_max": float(np.max(p_high)),
                "starved": int(sum(r["starved"] for r in rows)),
                "pearson_r": float(np.mean(rs)) if rs else None,
                "plan_seconds": float(statistics.median(r["plan_seconds"] for r in rows)),
            }
        by_planner[name] = {
            "by_size": sizes,
            "starved_total": int(sum(m["planners"][name]["starved"] for m in mixes)),
            "mixes": len(mixes),
        }
    margins = {
        size: {
            name: by_planner["rankmap_d"]["by_size"][size]["normalized_throughput"]
            / by_planner[name]["by_size"][size]["normalized_throughput"]
            for name in PLANNERS
            if name != "rankmap_d"
        }
        for size in by_planner["rankmap_d"]["by_size"]
    }
    p_over = {
        size: {
            name: by_planner["rankmap_s"]["by_size"][size]["p_high_priority"]
            / max(by_planner[name]["by_size"][size]["p_high_priority"], 1e-12)
            for name in PLANNERS
            if name != "rankmap_s"
        }
        for size in by_planner["rankmap_s"]["by_size"]
    }
    gaps: dict[str, Any] = {}
    for size in MIX_SIZES:
        ratios = [m["reference"]["ratio"] for m in mixes if len(m["models"]) == size and m["reference"]["ratio"]]
        if ratios:
            gaps[str(size)] = {"mean_ratio": float(np.mean(ratios)), "min_ratio": float(np.min(ratios))}
    return {"planners": by_planner, "rankmap_d_T_over": margins, "rankmap_s_P_over": p_over, "reference": gaps}


def _fingerprint(settings: Settings, model_name: str, platform: Platform) -> str:
    """What a cached mix depends on; the estimator by its checkpoint's bytes, as `estimator build`
    replaces the shipped one in place."""
    from rankmap_ros.core.estimator.checkpoint import shipped_path

    weights = shipped_path(platform.name) if model_name == "estimator" else None
    model = hashlib.sha256(weights.read_bytes()).hexdigest() if weights is not None and weights.is_file() else ""
    text = json.dumps([asdict(settings), model_name, model, platform.to_dict(), core_digest()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_paper(
    out_dir: Path | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    model: str | None = None,
    platform: str | Platform = "orange_pi_5",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run the experiment; with `out_dir`, write paper.json, paper.md and the figures, and cache per mix."""
    plat = platform if isinstance(platform, Platform) else load_platform(platform)
    base = settings or (QUICK if quick else FULL)
    settings = Settings(base.mixes_per_size, base.budget, base.reference_factor, seed)
    model_name = model or default_model_name(plat)
    throughput_model = load_model(model_name, plat)
    mixes = make_mixes(seed, settings.mixes_per_size)
    cache = None
    if out_dir is not None:
        cache = Path(out_dir) / "cache" / _fingerprint(settings, model_name, plat)
        cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for index, models in enumerate(tqdm(mixes, desc="paper (simulated)", file=sys.stderr, disable=None)):
        path = None if cache is None else cache / f"mix_{index:03d}.json"
        result = read_cached(path)
        if result is None:
            result = run_mix(models, settings, throughput_model, plat)
            write_cached(path, result)
        results.append(result)
    scenarios: dict[str, Any] = {}
    for name, scenario in (("arrival", arrival_scenario), ("priority_shift", priority_shift_scenario)):
        path = None if cache is None else cache / f"{name}.json"  # a resumed run does not plan them again
        scenarios[name] = read_cached(path)
        if scenarios[name] is None:
            say = f"paper: the {name.replace('_', ' ')} scenario (simulated)"
            print(say, file=sys.stderr)
            scenarios[name] = scenario(throughput_model, plat, settings)
            write_cached(path, scenarios[name])
    report: dict[str, Any] = {
        "experiment": "paper",
        "simulated": True,
        "platform": plat.name,
        "model": throughput_model.name,
        "settings": asdict(settings),
        "quick": quick,
        "starvation_epsilon": STARVATION_EPSILON,
        **summarize(results),
        **scenarios,
        "mixes": results,
        "paper": PAPER,
    }
    report["seconds"] = time.perf_counter() - started
    if out_dir is not None:
        out = Path(out_dir)
        write_text_atomic(out / "paper.json", json.dumps(report, indent=2) + "\n")
        write_text_atomic(out / "paper.md", markdown(report))
        from rankmap_ros.experiments.paper_figures import write_figures

        write_figures(out, report)
    return report


def bench_planning(
    mixes: int = 12, budget: int = 3000, seed: int = 0, model: str | None = None, platform: str = "orange_pi_5"
) -> dict[str, Any]:
    """Median planning seconds of RankMap_D per mix size (caches warmed first, as on a running manager).

    Also what one evaluation costs inside the search, and what one unbatched `simulate()` of a
    random mapping costs, the figures docs/PLANNER.md and docs/SIMULATOR.md quote.
    """
    plat = load_platform(platform)
    model_name = model or default_model_name(plat)
    throughput_model = load_model(model_name, plat)
    planner = make_planner("rankmap", throughput_model, mode="dynamic", budget=Budget(simulations=budget), seed=seed)
    rng = np.random.default_rng(seed)
    by_size: dict[str, Any] = {}
    for size in MIX_SIZES:
        workloads = [Workload.from_models(rng.choice(PAPER_POOL, size=size, replace=False)) for _ in range(mixes)]
        for workload in workloads:  # profiles and unit costs are computed once per model and cached
            throughput_model.predict(workload, [Mapping.all_on(workload, plat.reference_component)])
        plans = [planner.plan(w) for w in workloads]
        seconds = [p.plan_seconds for p in plans]
        by_size[str(size)] = {
            "mixes": mixes,
            "median_plan_seconds": float(statistics.median(seconds)),
            "max_plan_seconds": float(max(seconds)),
            "median_ms_per_evaluation": float(statistics.median(1e3 * p.plan_seconds / p.simulations for p in plans)),
            "median_simulate_ms": _simulate_ms(plat, workloads, np.random.default_rng(seed + size)),
        }
    return {
        "benchmark": "planner",
        "platform": plat.name,
        "model": throughput_model.name,
        "budget": budget,
        "target_seconds": PLANNING_TARGET_SECONDS,
        "by_size": by_size,
        "meets_target": by_size["5"]["median_plan_seconds"] <= PLANNING_TARGET_SECONDS,
    }


def _simulate_ms(platform: Platform, workloads: Sequence[Workload], rng: np.random.Generator) -> float:
    """Median milliseconds of one `simulate()` call over random mappings of these workloads.

    `rng` is its own: drawing from the mixes' generator would change the later mixes.
    """
    components = list(platform.component_names)
    times = []
    for workload in workloads:
        for mapping in [Mapping.random(workload, components, rng) for _ in range(SIMULATE_CALLS)]:
            started = time.perf_counter()
            simulate(platform, workload, mapping)
            times.append(time.perf_counter() - started)
    return float(statistics.median(times) * 1e3)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """Tables beside the paper's numbers."""
    planners = report["planners"]
    sizes = [str(s) for s in MIX_SIZES if str(s) in planners["rankmap_d"]["by_size"]]
    lines = [
        f"# Section V on the simulated {report['platform']} (model: {report['model']})",
        "",
        f"Every number is simulated. Mixes per size: {report['settings']['mixes_per_size']}, "
        f"search budget {report['settings']['budget']} mappings, seed {report['settings']['seed']}.",
        "",
        "## Normalized throughput T (Figure 5): RankMap_D's T over each planner's (ours | paper)",
        "",
        "| planner | " + " | ".join(f"T, {s} DNNs | D/x ours | D/x paper" for s in sizes) + " |",
        "|---|" + "---|---|---|" * len(sizes),
    ]
    for name in PLANNERS:
        cells = []
        for s in sizes:
            ours = report["rankmap_d_T_over"][s].get(name)
            paper = PAPER["rankmap_d_T_over"][s].get(name)
            cells += [_fmt(planners[name]["by_size"][s]["normalized_throughput"]), _fmt(ours), _fmt(paper)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## P of the high-priority DNN (Figure 6): RankMap_S's P over each planner's (ours | paper)",
        "",
        "| planner | " + " | ".join(f"P, {s} DNNs | S/x ours | S/x paper" for s in sizes) + " |",
        "|---|" + "---|---|---|" * len(sizes),
    ]
    for name in PLANNERS:
        cells = []
        for s in sizes:
            ours = report["rankmap_s_P_over"][s].get(name)
            paper = PAPER["rankmap_s_P_over"][s].get(name)
            cells += [_fmt(planners[name]["by_size"][s]["p_high_priority"], 3), _fmt(ours), _fmt(paper)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    s_sizes = planners["rankmap_s"]["by_size"]
    lines += [
        "",
        "RankMap_S's P of the critical DNN, min..max (ours | paper): "
        + ", ".join(
            f"{s} DNNs {s_sizes[s]['p_high_priority_min']:.2f}..{s_sizes[s]['p_high_priority_max']:.2f} | "
            f"{PAPER['rankmap_s_P_min_max'][s][0]}..{PAPER['rankmap_s_P_min_max'][s][1]}"
            for s in sizes
        ),
        "",
        f"## Starved DNNs, P < {report['starvation_epsilon']} (Figure 7), out of {planners['gpu']['mixes']} mixes",
        "",
        "| planner | ours | paper (of 72) |",
        "|---|---|---|",
        *(f"| {name} | {planners[name]['starved_total']} | {PAPER['starved_of_72'][name]} |" for name in PLANNERS),
        "",
        "## Pearson r between P and RankMap_D's priority vector (Figure 9), mean over mixes",
        "",
        "| DNNs | RankMap_D ours | paper |",
        "|---|---|---|",
        *(
            f"| {s} | {_fmt(planners['rankmap_d']['by_size'][s]['pearson_r'])} | "
            f"{_fmt(PAPER['rankmap_d_pearson_r'][s])} |"
            for s in sizes
        ),
        "",
        "## Planning seconds, median (this machine; the paper: on the board's host)",
        "",
        "| planner | " + " | ".join(f"{s} DNNs" for s in sizes) + " | paper |",
        "|---|" + "---|" * len(sizes) + "---|",
        *(
            f"| {name} | "
            + " | ".join(_fmt(planners[name]["by_size"][s]["plan_seconds"], 3) for s in sizes)
            + f" | {PAPER['plan_seconds'][name]} |"
            for name in PLANNERS
        ),
        "",
        "## RankMap_D vs a long direct search on the simulator (its own objective)",
        "",
        "| DNNs | mean ratio | worst ratio |",
        "|---|---|---|",
        *(f"| {s} | {_fmt(g['mean_ratio'], 3)} | {_fmt(g['min_ratio'], 3)} |" for s, g in report["reference"].items()),
        "",
        "## Arrival scenario (Figure 8): P per DNN after each arrival",
        "",
    ]
    for name, phases in report["arrival"]["planners"].items():
        last = phases[-1]
        lines.append(
            f"- {name}: final P "
            + ", ".join(f"{k} {v:.2f}" for k, v in last["potential_throughput"].items())
            + f"; final mean throughput {last['mean_throughput']:.1f} inf/s"
            + f" (paper T: {PAPER['arrival_T'].get(name, 'n/a')})"
        )
    lines += ["", "## Priority shift (Figure 10): P per DNN while the 0.7 weight moves", ""]
    for phase in report["priority_shift"]["phases"]:
        top = max(phase["priorities"], key=phase["priorities"].get)
        lines.append(
            f"- 0.7 on {top}: "
            + ", ".join(f"{k} {v:.2f}" for k, v in phase["potential_throughput"].items())
            + f" ({phase['plan_seconds']:.2f} s)"
        )
    return "\n".join(lines) + "\n"


def summary_text(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    planners = report["planners"]
    lines = [f"paper experiment on {report['platform']} (simulated), model {report['model']}; per 3/4/5 DNNs:"]
    for name in PLANNERS:
        sizes = planners[name]["by_size"]

        def row(key: str, digits: int, sizes: dict[str, Any] = sizes) -> str:
            return " / ".join(f"{sizes[s][key]:.{digits}f}" for s in sizes)

        lines.append(
            f"  {name:<10} T {row('normalized_throughput', 2)}  P_high {row('p_high_priority', 2)}"
            f"  starved {planners[name]['starved_total']}  plan s {row('plan_seconds', 2)}"
        )
    return "\n".join(lines)
