"""Which search design: the same RankMap objective and budget, searched in different ways.

Per mix and objective (RankMap_D's, and RankMap_S's with 0.7 on one DNN), every variant gets
the same number of simulator evaluations and is scored against the best mapping any of them, or
a long GA on the simulator, found. The variants:

- `unit_mcts`: UCT deciding one unit at a time (OmniBoost's decision space);
- `stage_mcts`: UCT deciding each DNN's route, then its cut points by halving (RankMap's space);
- `stage_mcts_seeded`: the same, first scoring every whole-DNN-on-one-component mapping;
- `stage_mcts_polished`: the same, polishing the best mappings at 40, 60 and 80% of the budget;
- `rankmap`: the planner as shipped (both);
- `ga`: the evolutionary search at the same budget.
All tree searches use random rollouts. Everything here is simulated. With an output directory
each (mix, objective) row is cached there, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from rankmap_ros.core.planner import Budget, RankMapPlanner
from rankmap_ros.core.planner.ga import evolve
from rankmap_ros.core.planner.mcts import Tree
from rankmap_ros.core.planner.plans import Evaluator, MappingBuilder
from rankmap_ros.core.planner.rankmap import Mode
from rankmap_ros.core.planner.spaces import UnitSpace
from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.throughput import SimulatorModel
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.cache import cache_dir, core_digest, read_cached, write_cached, write_report
from rankmap_ros.experiments.paper import critical_priorities, make_mixes

VARIANTS = ("unit_mcts", "stage_mcts", "stage_mcts_seeded", "stage_mcts_polished", "rankmap", "ga")
_SWITCHES = {
    "stage_mcts": (False, False),
    "stage_mcts_seeded": (True, False),
    "stage_mcts_polished": (False, True),
    "rankmap": (True, True),
}


def _variant(
    name: str, workload: Workload, priorities: list[float] | None, model: SimulatorModel, budget: int, seed: int
) -> float:
    """Best score one search design reaches on RankMap's objective within `budget` evaluations.

    `priorities` None means RankMap_D's objective, else RankMap_S's with that vector.
    """
    mode: Mode = "dynamic" if priorities is None else "static"
    if name in _SWITCHES:
        seeding, polishing = _SWITCHES[name]
        planner = RankMapPlanner(model, mode, Budget(budget), seed=seed, whole_dnn_seeding=seeding, polishing=polishing)
        return planner.plan(workload, priorities).reward
    objective = RankMapPlanner(model, mode).objective(workload, priorities)
    builder = MappingBuilder(workload, model.platform.component_names)
    evaluator = Evaluator(model, builder, objective, Budget(budget))
    rng = np.random.default_rng(seed)
    if name == "ga":
        evolve(evaluator, rng)
    else:
        order = sorted(range(len(workload)), key=lambda i: -objective.weights[i])
        Tree(UnitSpace(builder.units, len(builder.components), 3, order), rng).grow(evaluator)
    return evaluator.best_score


def _row(
    models: tuple[str, ...],
    mode: str,
    model: SimulatorModel,
    budget: int,
    reference_factor: int,
    seed: int,
    repeats: int,
) -> dict[str, Any]:
    workload = Workload.from_models(models)
    priorities = None if mode == "dynamic" else critical_priorities(len(models))
    scores = {
        name: [_variant(name, workload, priorities, model, budget, r) for r in range(repeats)] for name in VARIANTS
    }
    reference = _variant("ga", workload, priorities, model, budget * reference_factor, seed + 1)
    best = max(reference, *(max(v) for v in scores.values()))
    return {"models": list(models), "mode": mode, "best": best, "scores": scores}


def _cache_dir(out_dir: Path, settings: dict[str, Any], platform: dict[str, Any]) -> Path:
    """A directory per set of what the rows depend on, so other settings never reuse a row."""
    return cache_dir(out_dir, [settings, platform, core_digest()])


def run_search_comparison(
    mixes_per_size: int = 4,
    budget: int = 3000,
    reference_factor: int = 20,
    seed: int = 0,
    repeats: int = 2,
    platform: str = "orange_pi_5",
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Each mix twice: RankMap_D's objective, and RankMap_S's with 0.7 on the mix's first DNN.

    With `out_dir`, also write search.json and search.png there, and cache every row.
    """
    plat = load_platform(platform)
    model = SimulatorModel(plat)
    mixes = make_mixes(seed + 100, mixes_per_size)  # not the paper experiment's mixes
    settings = {
        "mixes_per_size": mixes_per_size,
        "budget": budget,
        "reference_factor": reference_factor,
        "seed": seed,
        "repeats": repeats,
    }
    cache = None if out_dir is None else _cache_dir(Path(out_dir), settings, plat.to_dict())
    rows: list[dict[str, Any]] = []
    for index, models in enumerate(tqdm(mixes, desc="search designs (simulated)", file=sys.stderr, disable=None)):
        for mode in ("dynamic", "static"):
            path = None if cache is None else cache / f"mix_{index:03d}_{mode}.json"
            row = read_cached(path)
            if row is None:
                row = _row(models, mode, model, budget, reference_factor, seed, repeats)
                write_cached(path, row)
            rows.append(row)
    summary: dict[str, Any] = {}
    for mode in ("dynamic", "static", "both"):
        summary[mode] = {}
        for name in VARIANTS:
            ratios = [
                s / row["best"]
                for row in rows
                if row["best"] > 0 and mode in (row["mode"], "both")
                for s in row["scores"][name]
            ]
            summary[mode][name] = {
                "mean_ratio": float(np.mean(ratios)),
                "median_ratio": float(statistics.median(ratios)),
                "worst_ratio": float(np.min(ratios)),
                "within_5_percent": float(np.mean([r >= 0.95 for r in ratios])),
            }
    report = {
        "experiment": "search",
        "simulated": True,
        "platform": plat.name,
        "budget": budget,
        "repeats": repeats,
        "settings": settings,
        "mixes": rows,
        "variants": summary,
    }
    write_report(out_dir, "search", report, _plot)
    return report


def _plot(path: Path, report: dict[str, Any]) -> None:
    """Mean ratio to the best known mapping per design and objective, each run as a dot."""
    fig = Figure(figsize=(8.0, 3.8))
    ax = fig.subplots()
    width = 0.38
    for k, mode in enumerate(("dynamic", "static")):
        xs = np.arange(len(VARIANTS)) + (k - 0.5) * width
        ax.bar(
            xs, [report["variants"][mode][n]["mean_ratio"] for n in VARIANTS], width, label=f"RankMap_{mode[0].upper()}"
        )
        for x, name in zip(xs, VARIANTS, strict=True):
            ratios = [
                s / row["best"]
                for row in report["mixes"]
                if row["mode"] == mode and row["best"] > 0
                for s in row["scores"][name]
            ]
            ax.plot([x] * len(ratios), ratios, ".", color="black", markersize=3)
    ax.set_xticks(range(len(VARIANTS)), VARIANTS, fontsize=8, rotation=15)
    ax.set_ylabel("score / best known")
    ax.set_title(f"Search designs at {report['budget']} evaluations ({report['platform']}, simulated)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
