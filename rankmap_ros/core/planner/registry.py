"""Planners and throughput models by name: what the CLI, the experiments and the ROS manager pick from."""

from __future__ import annotations

from rankmap_ros.core.planner.base import DEFAULT_BUDGET, Budget, Planner, PlannerError
from rankmap_ros.core.planner.baselines import GaPlanner, GpuPlanner, OmniBoostPlanner
from rankmap_ros.core.planner.rankmap import Mode, RankMapPlanner
from rankmap_ros.core.planner.regression import MosaicPlanner, OdmdefPlanner
from rankmap_ros.core.planner.reward import DEFAULT_MIN_POTENTIAL
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.throughput import SimulatorModel, ThroughputModel

PLANNERS = ("rankmap", "omniboost", "ga", "mosaic", "odmdef", "gpu")
MODELS = ("simulator", "estimator")


def make_planner(
    name: str,
    model: ThroughputModel,
    *,
    mode: Mode = "static",
    budget: Budget = DEFAULT_BUDGET,
    seed: int = 0,
    max_stages: int = 3,
    min_potential: float = DEFAULT_MIN_POTENTIAL,
) -> Planner:
    """A planner by name; `mode` and `min_potential` only concern RankMap, `budget` RankMap and OmniBoost."""
    if name == "rankmap":
        return RankMapPlanner(
            model, mode=mode, budget=budget, seed=seed, max_stages=max_stages, min_potential=min_potential
        )
    if name == "omniboost":
        return OmniBoostPlanner(model, budget=budget, seed=seed, max_stages=max_stages)
    if name == "ga":
        return GaPlanner(model, seed=seed, max_stages=max_stages)
    if name == "mosaic":
        return MosaicPlanner(model, max_stages=max_stages)
    if name == "odmdef":
        return OdmdefPlanner(model, max_stages=max_stages)
    if name == "gpu":
        return GpuPlanner(model)
    raise PlannerError(f"unknown planner {name!r} (known: {', '.join(PLANNERS)})")


def estimator_available(platform: Platform) -> bool:
    """Whether a trained estimator is shipped for this platform."""
    try:
        from rankmap_ros.core.estimator import shipped_path
    except ImportError:
        return False
    return shipped_path(platform.name).is_file()


def default_model_name(platform: Platform) -> str:
    """The learned estimator where one is shipped for the platform, else the simulator."""
    return "estimator" if estimator_available(platform) else "simulator"


def load_model(name: str, platform: Platform) -> ThroughputModel:
    """The throughput model a planner plans with."""
    if name == "simulator":
        return SimulatorModel(platform)
    if name == "estimator":
        try:
            from rankmap_ros.core.estimator import EstimatorError, load_estimator
        except ImportError as exc:
            raise PlannerError(f"the learned estimator cannot be imported ({exc}); use --model simulator") from exc
        try:
            return load_estimator(platform)
        except EstimatorError as exc:
            raise PlannerError(f"cannot load the learned estimator: {exc}; use --model simulator") from exc
    raise PlannerError(f"unknown throughput model {name!r} (known: {', '.join(MODELS)})")
