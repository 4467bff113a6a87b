"""Re-planning with measured rates on this host: the planned mapping runs, is measured, and is planned again.

The measured counterpart of experiments/correction.py. Here the truth is this machine: each
round plans (RankMap_S, 0.7 on the workload's first DNN, the manager's budget) with the host
platform's simulator, runs the mapping through the runtime (one process per stage, pinned to
its cluster) for `seconds`, and notes the measured rates. `none` plans with the simulator as it
is; `mapping` with core/correction.py fed by the rounds before. The two alternate round by
round, so that a change in the machine's speed touches both alike. Reported per round: the
objective on the measured rates, DNNs below their threshold, and how far the plan's prediction
was from what it measured. Everything here is measured.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from rankmap_ros.core.correction import CorrectedModel, Observations
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner import Budget, RankMapPlanner
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.throughput import SimulatorModel, ThroughputModel
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.cache import (
    cache_dir,
    core_digest,
    read_cached,
    write_cached,
    write_report,
)
from rankmap_ros.experiments.correction import judged
from rankmap_ros.experiments.paper import critical_priorities

STRATEGIES = ("none", "mapping")
# The models `rankmap calibrate`'s documented command profiles on this host (docs/BENCHMARKS.md)
WORKLOADS = (
    ("shufflenet", "squeezenet_v2", "mobilenet_v2"),
    ("mobilenet_v2", "alexnet", "squeezenet_v2"),
    ("alexnet", "shufflenet", "mobilenet_v2"),
)


def run_correction_measured(
    platform: Platform,
    workloads: Sequence[Sequence[str]] = WORKLOADS,
    rounds: int = 3,
    seconds: float = 6.0,
    warmup_s: float = 2.0,
    budget: int = 300,
    seed: int = 0,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """`platform`: this host's, as the planner sees it (components with cores of their own).

    With `out_dir`, write correction_measured.json there and keep each finished workload's rows,
    so that an interrupted run goes on with the next workload.
    """
    from rankmap_ros.runtime.bench import run_mapping

    base = SimulatorModel(platform)
    settings = {"rounds": rounds, "seconds": seconds, "warmup_s": warmup_s, "budget": budget, "seed": seed}
    cache = None
    if out_dir is not None:
        cache = cache_dir(out_dir, [settings, platform.to_dict(), core_digest()])
    rows = []
    bar = tqdm(
        total=len(workloads) * rounds * len(STRATEGIES), desc="measured correction", file=sys.stderr, disable=None
    )
    for index, models in enumerate(workloads):
        path = None if cache is None else cache / f"workload_{index:02d}_{'_'.join(models)}.json"
        row = read_cached(path)
        if row is None:
            workload = Workload.from_models(models)
            priorities = critical_priorities(len(models))
            judge = RankMapPlanner(base, "static").objective(workload, priorities)
            observations = Observations(platform.component_names)
            warm: dict[str, Mapping | None] = dict.fromkeys(STRATEGIES)
            steps: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
            for _ in range(rounds):
                for strategy in STRATEGIES:
                    model: ThroughputModel = base
                    if strategy == "mapping":
                        model = CorrectedModel(base, observations.snapshot())
                    plan = RankMapPlanner(model, "static", Budget(budget), seed=seed).plan(
                        workload, priorities, warm[strategy]
                    )
                    warm[strategy] = plan.mapping
                    measured = run_mapping(platform, workload, plan.mapping, seconds, warmup_s).throughput
                    rates = np.array([measured[n] for n in workload.names])
                    predicted = np.asarray(plan.predicted_throughput)
                    if strategy == "mapping":
                        base_predicted = base.predict(workload, [plan.mapping])[0]
                        observations.record(
                            base.name,
                            plan.mapping,
                            dict(zip(workload.names, base_predicted.tolist(), strict=True)),
                            measured,
                        )
                    steps[strategy].append(
                        {
                            "mapping": plan.mapping.to_dict(),
                            "predicted": predicted.tolist(),
                            "measured": rates.tolist(),
                            **judged(judge, predicted, rates),
                        }
                    )
                    bar.update()
            row = {"models": list(models), "rounds": steps}
            write_cached(path, row)
        else:
            bar.update(rounds * len(STRATEGIES))
        rows.append(row)
    bar.close()
    summary = {
        s: [
            {
                "mean_score": float(np.mean([row["rounds"][s][r]["score"] for row in rows])),
                "starved_dnns": sum(row["rounds"][s][r]["starved"] for row in rows),
                "median_error": float(statistics.median(row["rounds"][s][r]["error"] for row in rows)),
                "worst_error": float(max(row["rounds"][s][r]["error"] for row in rows)),
            }
            for r in range(rounds)
        ]
        for s in STRATEGIES
    }
    report = {
        "experiment": "correction",
        "measured": True,
        "simulated": False,
        "platform": platform.name,
        "components": list(platform.component_names),
        "settings": settings,
        "summary": summary,
        "workloads": rows,
    }
    write_report(out_dir, "correction_measured", report, _plot)
    return report


def _plot(path: Path, report: dict[str, Any]) -> None:
    """Per round: the mean score on the measured rates, and the plan's median and worst prediction error."""
    fig = Figure(figsize=(9.0, 3.6))
    left, right = fig.subplots(1, 2)
    for strategy, steps in report["summary"].items():
        rounds = range(1, len(steps) + 1)
        left.plot(rounds, [s["mean_score"] for s in steps], marker="o", label=strategy)
        line = right.plot(rounds, [100 * s["median_error"] for s in steps], marker="o", label=f"{strategy}, median")
        worst = [100 * s["worst_error"] for s in steps]
        right.plot(rounds, worst, marker="x", ls="--", color=line[0].get_color(), label=f"{strategy}, worst")
    for ax in (left, right):
        ax.set_xticks(range(1, len(report["summary"]["none"]) + 1))
    left.set_xlabel("round (plan, run, measure)")
    left.set_ylabel("score on the measured rates")
    right.set_xlabel("round (plan, run, measure)")
    right.set_ylabel("prediction error of the plan (%)")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(f"Re-planning with measured rates on {', '.join(report['components'])} of this host (measured)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
