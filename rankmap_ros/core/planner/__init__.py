"""Planners: RankMap (priority-aware MCTS with a starvation guard) and the paper's five baselines.

    from rankmap_ros.core.planner import RankMapPlanner, Budget
    plan = RankMapPlanner(SimulatorModel(platform), mode="dynamic", budget=Budget(3000)).plan(workload)

Every planner returns a Plan (mapping, predicted throughput, reward, feasibility, seconds,
simulations). docs/PLANNER.md explains the search and what each baseline follows.
"""

from rankmap_ros.core.planner.base import DEFAULT_BUDGET, Budget, Plan, Planner, PlannerError
from rankmap_ros.core.planner.baselines import GaPlanner, GpuPlanner, OmniBoostPlanner
from rankmap_ros.core.planner.priorities import dynamic_priorities, normalize, parse_priorities, static_priorities
from rankmap_ros.core.planner.rankmap import RankMapPlanner
from rankmap_ros.core.planner.registry import MODELS, PLANNERS, default_model_name, load_model, make_planner
from rankmap_ros.core.planner.regression import MosaicPlanner, OdmdefPlanner
from rankmap_ros.core.planner.reward import DEFAULT_MIN_POTENTIAL, Objective, thresholds

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_MIN_POTENTIAL",
    "MODELS",
    "PLANNERS",
    "Budget",
    "GaPlanner",
    "GpuPlanner",
    "MosaicPlanner",
    "Objective",
    "OdmdefPlanner",
    "OmniBoostPlanner",
    "Plan",
    "Planner",
    "PlannerError",
    "RankMapPlanner",
    "default_model_name",
    "dynamic_priorities",
    "load_model",
    "make_planner",
    "normalize",
    "parse_priorities",
    "static_priorities",
    "thresholds",
]
