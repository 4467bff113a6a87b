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
All tree searches use random rollouts. Everything here is simulated.
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

import numpy as np
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


def run_search_comparison(
    mixes_per_size: int = 4,
    budget: int = 3000,
    reference_factor: int = 20,
    seed: int = 0,
    repeats: int = 2,
    platform: str = "orange_pi_5",
) -> dict[str, Any]:
    """Each mix twice: RankMap_D's objective, and RankMap_S's with 0.7 on the mix's first DNN."""
    plat = load_platform(platform)
    model = SimulatorModel(plat)
    mixes = make_mixes(seed + 100, mixes_per_size)  # not the paper experiment's mixes
    rows: list[dict[str, Any]] = []
    for models in tqdm(mixes, desc="search designs (simulated)", file=sys.stderr, disable=None):
        workload = Workload.from_models(models)
        for mode, priorities in (("dynamic", None), ("static", critical_priorities(len(models)))):
            scores = {
                name: [_variant(name, workload, priorities, model, budget, r) for r in range(repeats)]
                for name in VARIANTS
            }
            reference = _variant("ga", workload, priorities, model, budget * reference_factor, seed + 1)
            best = max(reference, *(max(v) for v in scores.values()))
            rows.append({"models": list(models), "mode": mode, "best": best, "scores": scores})
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
    return {
        "experiment": "search",
        "simulated": True,
        "platform": plat.name,
        "budget": budget,
        "repeats": repeats,
        "mixes": rows,
        "variants": summary,
    }
