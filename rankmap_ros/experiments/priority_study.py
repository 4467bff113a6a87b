"""Why RankMap_D's P does not follow its priority vector p (the paper's Figure 9), and why GA wins T.

A diagnostic study, not part of `rankmap experiment paper`: RankMap_D as shipped and three
variants of its objective, plus GA and OmniBoost, on seeded mixes of the paper's pool, every
mapping judged by the simulator (docs/PLANNER.md, "Figure 9 and GA").

- `rankmap_d`: as shipped, p_i ∝ seconds per inference alone on the GPU, reward O(M)ᵀp ∝ Σ P_i.
- `rankmap_d_flops`: the other reading of "computational demands as characterized by the layer
  profile": p_i ∝ the DNN's FLOPs, reward O(M)ᵀp = FLOPs processed per second.
- `rankmap_mean_t`: RankMap's search and thresholds with GA's and OmniBoost's reward, mean inf/s.

    rankmap experiment priority [--per-size 12] [--budget 3000] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from rankmap_ros.core.files import write_text_atomic
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner import Budget, RankMapPlanner
from rankmap_ros.core.planner.base import Planner
from rankmap_ros.core.planner.registry import make_planner
from rankmap_ros.core.planner.reward import Objective, thresholds
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.simulator import ideal_throughput, throughputs
from rankmap_ros.core.throughput import SimulatorModel
from rankmap_ros.core.unitvec import profile
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.cache import cache_dir, core_digest, read_cached, write_cached, write_report
from rankmap_ros.experiments.motivation import STARVATION_EPSILON
from rankmap_ros.experiments.paper import make_mixes

VARIANTS = ("rankmap_d", "rankmap_d_flops", "rankmap_mean_t", "ga", "omniboost")


def flops_priorities(workload: Workload) -> np.ndarray:
    flops = np.array([sum(u.flops for u in profile(m)) for m in workload.models], dtype=float)
    return flops / flops.sum()


def time_priorities(workload: Workload, platform: Platform) -> np.ndarray:
    demand = np.array([1.0 / ideal_throughput(platform, m) for m in workload.models])
    return demand / demand.sum()


class _Variant(RankMapPlanner):
    """RankMap's search with another dynamic-mode reward (thresholds unchanged)."""

    def __init__(self, model: SimulatorModel, reward: str, budget: Budget) -> None:
        super().__init__(model, mode="dynamic", budget=budget)
        self.reward = reward

    def objective(self, workload: Workload, priorities: Sequence[float] | None = None) -> Objective:
        n = len(workload)
        weights = flops_priorities(workload) if self.reward == "flops" else np.full(n, 1.0 / n)
        th = thresholds(self.model.platform, workload, self.min_potential)
        return Objective("rankmap", weights, th, tuple(weights.tolist()))


def _planner(name: str, model: SimulatorModel, budget: Budget) -> Planner:
    if name == "rankmap_d":
        return RankMapPlanner(model, mode="dynamic", budget=budget)
    if name == "rankmap_d_flops":
        return _Variant(model, "flops", budget)
    if name == "rankmap_mean_t":
        return _Variant(model, "mean", budget)
    return make_planner(name, model, budget=budget)


def _r(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else 0.0


def _mix_rows(models: Sequence[str], platform: Platform, budget: int) -> dict[str, list[float]]:
    """Every variant's plan of one mix, judged by the simulator: the numbers `summarize` averages."""
    model = SimulatorModel(platform)
    workload = Workload.from_models(list(models))
    ideal = np.array([ideal_throughput(platform, m) for m in workload.models])
    cpu = np.array([max(ideal_throughput(platform, m, c) for c in ("big", "little")) for m in workload.models])
    base = throughputs(platform, workload, [Mapping.all_on(workload, platform.reference_component)])[0].mean()
    p_time, p_flops = time_priorities(workload, platform), flops_priorities(workload)
    out = {}
    for name in VARIANTS:
        mapping = _planner(name, model, Budget(simulations=budget)).plan(workload).mapping
        rates = throughputs(platform, workload, [mapping])[0]
        potential = rates / ideal
        out[name] = [
            float(rates.mean() / base),
            float((potential < STARVATION_EPSILON).sum()),
            _r(potential, p_time),
            _r(potential, p_flops),
            _r(potential, cpu / ideal),
            float(potential.mean()),
        ]
    return out


def summarize(mixes: list[dict[str, Any]]) -> list[dict[str, float | int | str]]:
    """Per planner and mix size: mean T over all-on-GPU, starved DNNs, and how P follows each p."""
    rows: dict[tuple[str, int], list[list[float]]] = {}
    for mix in mixes:
        for name in VARIANTS:
            rows.setdefault((name, len(mix["models"])), []).append(mix["variants"][name])
    out = []
    for (name, size), values in rows.items():
        a = np.array(values)
        out.append(
            {
                "planner": name,
                "dnns": size,
                "T": float(a[:, 0].mean()),
                "starved": int(a[:, 1].sum()),
                "r_P_p_time": float(a[:, 2].mean()),
                "r_P_p_flops": float(a[:, 3].mean()),
                "mixes_r_time_positive": int((a[:, 2] > 0).sum()),
                "mixes": len(a),
                "r_P_cpu_over_gpu": float(a[:, 4].mean()),
                "mean_P": float(a[:, 5].mean()),
            }
        )
    return out


def run_priority_study(
    out_dir: Path | None = None, per_size: int = 12, budget: int = 3000, platform_name: str = "orange_pi_5"
) -> dict[str, Any]:
    """Every mix under every variant; with `out_dir`, priority_study.json, .md and .png, and a
    per-mix cache an interrupted run resumes from."""
    platform = load_platform(platform_name)
    settings = {"per_size": per_size, "budget": budget}
    cache = None if out_dir is None else cache_dir(out_dir, [settings, platform.to_dict(), core_digest()])
    mixes = []
    for index, models in enumerate(
        tqdm(make_mixes(0, per_size), desc="priority study (simulated)", file=sys.stderr, disable=None)
    ):
        path = None if cache is None else cache / f"mix_{index:03d}.json"
        mix = read_cached(path)
        if mix is None:
            mix = {"models": list(models), "variants": _mix_rows(models, platform, budget)}
            write_cached(path, mix)
        mixes.append(mix)
    report = {
        "experiment": "priority_study",
        "simulated": True,
        "platform": platform.name,
        "settings": settings,
        "rows": summarize(mixes),
        "mixes": mixes,
    }
    write_report(out_dir, "priority_study", report, _plot)
    if out_dir is not None:
        write_text_atomic(Path(out_dir) / "priority_study.md", markdown(report) + "\n")
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| planner | DNNs | T | starved | r(P, p_time) | r(P, p_flops) | mixes r(P, p_time) > 0 "
        "| r(P, cpu/gpu) | mean P |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['planner']} | {row['dnns']} | {row['T']:.2f} | {row['starved']} | {row['r_P_p_time']:.2f} | "
            f"{row['r_P_p_flops']:.2f} | {row['mixes_r_time_positive']}/{row['mixes']} | "
            f"{row['r_P_cpu_over_gpu']:.2f} | {row['mean_P']:.3f} |"
        )
    return "\n".join(lines)


def _plot(path: Path, report: dict[str, Any]) -> None:
    """Per mix size: each planner's mean throughput over all-on-GPU, and how its P follows p_time."""
    fig = Figure(figsize=(10.0, 3.8))
    left, right = fig.subplots(1, 2)
    sizes = sorted({int(row["dnns"]) for row in report["rows"]})
    width = 0.8 / len(VARIANTS)
    for k, name in enumerate(VARIANTS):
        rows = {int(r["dnns"]): r for r in report["rows"] if r["planner"] == name}
        x = [i + (k - (len(VARIANTS) - 1) / 2) * width for i in range(len(sizes))]
        left.bar(x, [rows[s]["T"] for s in sizes], width=width, label=name)
        right.bar(x, [rows[s]["r_P_p_time"] for s in sizes], width=width, label=name)
    for ax in (left, right):
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([f"{s} DNNs" for s in sizes])
    left.set_ylabel("mean T / all-on-GPU's")
    right.set_ylabel("r(P, p_time): P following p")
    right.axhline(0.0, color="black", linewidth=0.8)
    left.legend(fontsize=7)
    fig.suptitle(f"What each objective rewards ({report['platform']}, simulated)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-size", type=int, default=12)
    parser.add_argument("--budget", type=int, default=3000)
    args = parser.parse_args(argv)
    print(markdown(run_priority_study(per_size=args.per_size, budget=args.budget)))


if __name__ == "__main__":
    main()
