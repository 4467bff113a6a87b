"""Re-planning with measured rates: what the planner gains when its throughput model is wrong.

A robot's board never matches the model the planner was given. Here the board is a simulated
"truth": the Orange Pi 5 model with every unit's time on every component off by a random
factor (one per model and component, log-sd SIGMA_COMPONENT, and one per unit, SIGMA_UNIT) and
every component's concurrency loss off too (log-sd SIGMA_LOSS). The planner plans with the
unperturbed model; each round the mapping "runs" (the truth's rates, with MEASUREMENT_NOISE),
the rates are measured, and the planner plans again, warm-started, under one of:

- `none`: the model as it is (what planning once, as the paper does, gets);
- `per_dnn`: each DNN's prediction scaled by its last measured / predicted rate, on every
  mapping alike (the manager's correction before core/correction.py, which it applied only
  after a DNN starved; here it is applied every round, like the others);
- `mapping`: core/correction.py, the measured error kept per mapping and fading with distance,
  plus each DNN's shrunk systematic error;
- `oracle`: planned with the truth itself (what a correction could reach at the same budget; a
  300-evaluation search, not a proven optimum).

Every mapping is judged by the truth, with RankMap_S's objective (0.7 on the mix's first DNN)
and its thresholds. Everything here is simulated.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from rankmap_ros.core.correction import CorrectedModel, Observations
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner import Budget, RankMapPlanner
from rankmap_ros.core.planner.reward import Objective
from rankmap_ros.core.platform import MeasuredUnits, Platform, load_platform
from rankmap_ros.core.simulator import model_costs
from rankmap_ros.core.throughput import SimulatorModel, ThroughputModel
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.cache import cache_dir, core_digest, read_cached, write_cached, write_report
from rankmap_ros.experiments.paper import critical_priorities, make_mixes

STRATEGIES = ("none", "per_dnn", "mapping", "oracle")
SIGMA_COMPONENT = 0.2
SIGMA_UNIT = 0.1
SIGMA_LOSS = 0.3
MEASUREMENT_NOISE = 0.03


def perturbed(platform: Platform, models: Sequence[str], seed: int) -> Platform:
    """The 'true' board: `platform` with unit times and concurrency losses off by seeded factors."""
    rng = np.random.default_rng(seed)
    units: list[MeasuredUnits] = []
    for model in models:
        costs = model_costs(platform, model)
        for c, component in enumerate(platform.components):
            times = np.diff(np.asarray(costs.time[c]))
            factor = np.exp(rng.normal(0.0, SIGMA_COMPONENT) + rng.normal(0.0, SIGMA_UNIT, size=times.size))
            units.append(MeasuredUnits(model, component.name, tuple((times * factor).tolist())))
    components = tuple(
        replace(c, concurrency_loss=min(0.9, c.concurrency_loss * math.exp(rng.normal(0.0, SIGMA_LOSS))))
        for c in platform.components
    )
    return replace(platform, name=f"{platform.name}-truth-{seed}", components=components, unit_times=tuple(units))


class _PerDnn:
    """Each DNN scaled by its last measured / base-predicted rate, whatever the mapping."""

    def __init__(self, base: ThroughputModel, factors: dict[str, float]) -> None:
        self.base, self.factors, self.platform, self.name = base, factors, base.platform, f"{base.name}+per_dnn"

    def predict(self, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        scale = np.array([self.factors.get(n, 1.0) for n in workload.names])
        return self.base.predict(workload, mappings) * scale


class _Truth:
    """The perturbed board's rates, under the nominal platform's objective (the judge's, for the oracle too)."""

    def __init__(self, platform: Platform, truth: Platform) -> None:
        self.platform, self.truth, self.name = platform, SimulatorModel(truth), "truth"

    def predict(self, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        return self.truth.predict(workload, mappings)


def judged(judge: Objective, predicted: np.ndarray, rates: np.ndarray) -> dict[str, Any]:
    """One round as the truth (`rates`) judges it: the objective, DNNs below threshold, the plan's worst error."""
    return {
        "score": float(judge.scores(rates)[0]),
        "starved": int(np.sum(rates < judge.thresholds)),
        # finite in the JSON when a DNN answered nothing
        "error": float(np.max(np.abs(predicted - rates) / np.maximum(rates, 1e-3))),
    }


def _run_strategy(
    strategy: str, workload: Workload, priorities: list[float], base: SimulatorModel, truth: _Truth,
    rounds: int, budget: int, seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    rng = np.random.default_rng(seed)
    observations = Observations(base.platform.component_names)
    factors: dict[str, float] = {}
    judge = RankMapPlanner(base, "static").objective(workload, priorities)
    warm: Mapping | None = None
    out = []
    for _ in range(rounds):
        model: ThroughputModel = base
        if strategy == "oracle":
            model = truth
        elif strategy == "per_dnn":
            model = _PerDnn(base, factors)
        elif strategy == "mapping":
            model = CorrectedModel(base, observations)
        plan = RankMapPlanner(model, "static", Budget(budget), seed=seed).plan(workload, priorities, warm)
        warm = plan.mapping
        true_rates = truth.predict(workload, [plan.mapping])[0]
        measured = true_rates * np.exp(rng.normal(0.0, MEASUREMENT_NOISE, size=len(workload)))
        predicted = np.asarray(plan.predicted_throughput)
        base_predicted = base.predict(workload, [plan.mapping])[0]
        factors = dict(zip(workload.names, (measured / base_predicted).tolist(), strict=True))
        observations.record(
            base.name,
            plan.mapping,
            dict(zip(workload.names, base_predicted.tolist(), strict=True)),
            dict(zip(workload.names, measured.tolist(), strict=True)),
        )
        out.append({**judged(judge, predicted, true_rates), "critical_rate": float(true_rates[0])})
    return out


def _row(
    models: tuple[str, ...], platform: Platform, truth_seed: int, rounds: int, budget: int, seed: int
) -> dict[str, Any]:
    workload = Workload.from_models(models)
    priorities = critical_priorities(len(models))
    base = SimulatorModel(platform)
    truth = _Truth(platform, perturbed(platform, workload.models, truth_seed))
    return {
        "models": list(models),
        "truth_seed": truth_seed,
        "rounds": {s: _run_strategy(s, workload, priorities, base, truth, rounds, budget, seed) for s in STRATEGIES},
    }


def run_correction(
    mixes_per_size: int = 16,
    rounds: int = 6,
    budget: int = 300,
    seed: int = 0,
    platform: str = "orange_pi_5",
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Every mix against its own perturbed truth, every strategy for `rounds` rounds of plan-run-measure.

    With `out_dir`, write correction.json and correction.png there and cache every mix's row.
    """
    plat = load_platform(platform)
    mixes = make_mixes(seed + 200, mixes_per_size)
    settings = {"mixes_per_size": mixes_per_size, "rounds": rounds, "budget": budget, "seed": seed}
    cache = None
    if out_dir is not None:
        # core_digest covers the correction's formula, the truths and the strategies: a change must not reuse a row
        cache = cache_dir(out_dir, [settings, plat.to_dict(), core_digest()])
    rows = []
    for index, models in enumerate(tqdm(mixes, desc="measured correction (simulated)", file=sys.stderr, disable=None)):
        path = None if cache is None else cache / f"mix_{index:03d}.json"
        row = read_cached(path)
        if row is None:
            row = _row(models, plat, seed * 1000 + index, rounds, budget, seed)
            write_cached(path, row)
        rows.append(row)
    report = {
        "experiment": "correction",
        "simulated": True,
        "platform": plat.name,
        "settings": settings,
        "truth": _constants(),
        "summary": _summary(rows, rounds),
        "mixes": rows,
    }
    write_report(out_dir, "correction", report, _plot)
    return report


def _constants() -> dict[str, float]:
    return {
        "sigma_component": SIGMA_COMPONENT,
        "sigma_unit": SIGMA_UNIT,
        "sigma_loss": SIGMA_LOSS,
        "measurement_noise": MEASUREMENT_NOISE,
    }


def _summary(rows: list[dict[str, Any]], rounds: int) -> dict[str, list[dict[str, float]]]:
    """Per strategy and round: score over the oracle's last, starved DNNs, prediction errors."""
    out: dict[str, list[dict[str, float]]] = {}
    for strategy in STRATEGIES:
        per_round = []
        for r in range(rounds):
            ratios, starved, errors, starved_mixes = [], 0, [], 0
            for row in rows:
                step = row["rounds"][strategy][r]
                best = row["rounds"]["oracle"][-1]["score"]
                ratios.append(max(step["score"], 0.0) / best if best > 0 else 1.0)
                starved += step["starved"]
                starved_mixes += step["starved"] > 0
                errors.append(step["error"])
            per_round.append(
                {
                    "score_vs_oracle": float(np.mean(ratios)),
                    "starved_dnns": starved,
                    "mixes_with_starved": starved_mixes,
                    "median_error": float(statistics.median(errors)),
                    "worst_error": float(max(errors)),
                }
            )
        out[strategy] = per_round
    return out


def _plot(path: Path, report: dict[str, Any]) -> None:
    """Per round: mean score against the oracle, and mixes with a starved DNN, per strategy."""
    fig = Figure(figsize=(9.0, 3.6))
    left, right = fig.subplots(1, 2)
    summary = report["summary"]
    for strategy in STRATEGIES:
        rounds = range(1, len(summary[strategy]) + 1)
        left.plot(rounds, [s["score_vs_oracle"] for s in summary[strategy]], marker="o", label=strategy)
        right.plot(rounds, [s["mixes_with_starved"] for s in summary[strategy]], marker="o", label=strategy)
    for ax in (left, right):
        ax.set_xticks(range(1, len(summary["none"]) + 1))
    left.set_xlabel("round (plan, run, measure)")
    left.set_ylabel("score / oracle's (judged by the truth)")
    right.set_xlabel("round (plan, run, measure)")
    right.set_ylabel(f"mixes with a starved DNN (of {len(report['mixes'])})")
    left.legend(fontsize=8)
    fig.suptitle(f"Re-planning with measured rates ({report['platform']} vs perturbed truths, simulated)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
