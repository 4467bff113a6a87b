"""Why RankMap_D's P does not follow its priority vector p (the paper's Figure 9), and why GA wins T.

A diagnostic study, not part of `rankmap experiment paper`: RankMap_D as shipped and three
variants of its objective, plus GA and OmniBoost, on seeded mixes of the paper's pool, every
mapping judged by the simulator (docs/PLANNER.md, "Figure 9 and GA").

- `rankmap_d`: as shipped, p_i ∝ seconds per inference alone on the GPU, reward O(M)ᵀp ∝ Σ P_i.
- `rankmap_d_flops`: the other reading of "computational demands as characterized by the layer
  profile": p_i ∝ the DNN's FLOPs, reward O(M)ᵀp = FLOPs processed per second.
- `rankmap_mean_t`: RankMap's search and thresholds with GA's and OmniBoost's reward, mean inf/s.

    python -m rankmap_ros.experiments.priority_study [--per-size 12] [--budget 3000]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

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


def run(per_size: int, budget: int, platform_name: str = "orange_pi_5") -> list[dict[str, float | int | str]]:
    platform = load_platform(platform_name)
    model = SimulatorModel(platform)
    rows: dict[tuple[str, int], list[tuple[float, ...]]] = {}
    for models in make_mixes(0, per_size):
        workload = Workload.from_models(models)
        ideal = np.array([ideal_throughput(platform, m) for m in workload.models])
        cpu = np.array([max(ideal_throughput(platform, m, c) for c in ("big", "little")) for m in workload.models])
        base = throughputs(platform, workload, [Mapping.all_on(workload, platform.reference_component)])[0].mean()
        p_time, p_flops = time_priorities(workload, platform), flops_priorities(workload)
        for name in VARIANTS:
            mapping = _planner(name, model, Budget(simulations=budget)).plan(workload).mapping
            rates = throughputs(platform, workload, [mapping])[0]
            potential = rates / ideal
            rows.setdefault((name, len(models)), []).append(
                (
                    rates.mean() / base,
                    float((potential < STARVATION_EPSILON).sum()),
                    _r(potential, p_time),
                    _r(potential, p_flops),
                    _r(potential, cpu / ideal),
                    potential.mean(),
                )
            )
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
                "r_P_cpu_over_gpu": float(a[:, 4].mean()),
                "mean_P": float(a[:, 5].mean()),
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-size", type=int, default=12)
    parser.add_argument("--budget", type=int, default=3000)
    args = parser.parse_args(argv)
    rows = run(args.per_size, args.budget)
    print("| planner | DNNs | T | starved | r(P, p_time) | r(P, p_flops) | mixes r(P, p_time) > 0 | ", end="")
    print("r(P, cpu/gpu) | mean P |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['planner']} | {row['dnns']} | {row['T']:.2f} | {row['starved']} | {row['r_P_p_time']:.2f} | "
            f"{row['r_P_p_flops']:.2f} | {row['mixes_r_time_positive']}/{args.per_size} | "
            f"{row['r_P_cpu_over_gpu']:.2f} | {row['mean_P']:.3f} |"
        )


if __name__ == "__main__":
    main()
