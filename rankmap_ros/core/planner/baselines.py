"""Baselines behind the Planner interface: all-on-GPU, GA and OmniBoost (MOSAIC and ODMDEF: regression.py).

None of them knows priorities or thresholds (the paper's Table I); each follows the paper's
description of it, and docs/PLANNER.md says where we had to fill in details.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner.base import DEFAULT_BUDGET, Budget, Plan, Planner
from rankmap_ros.core.planner.ga import DEFAULT_GA, GaConfig, evolve
from rankmap_ros.core.planner.mcts import DEFAULT_MCTS, Tree
from rankmap_ros.core.planner.plans import Evaluator, MappingBuilder, finish, warm_key
from rankmap_ros.core.planner.reward import mean_throughput_objective
from rankmap_ros.core.planner.spaces import UnitSpace
from rankmap_ros.core.throughput import SimulatorModel, ThroughputModel
from rankmap_ros.core.workload import Workload

# GA: 15 generations of 20 chromosomes, each measured on the board (the paper's reason it is slowest).
GA_MEASUREMENTS = 300


class GpuPlanner(Planner):
    """The paper's baseline: every DNN whole on the reference component (the GPU)."""

    name = "gpu"

    def plan(
        self,
        workload: Workload,
        priorities: Sequence[float] | None = None,
        warm_start: Mapping | None = None,
    ) -> Plan:
        started = time.perf_counter()
        mapping = Mapping.all_on(workload, self.model.platform.reference_component)
        return self.one_shot(workload, mapping, started)


class OmniBoostPlanner(Planner):
    """OmniBoost: MCTS deciding each unit's component, maximising mean throughput (no priorities, no threshold).

    As in its code: one decision per unit (stay on the current stage's component or open a stage
    on an unused one, at most three stages), uniformly random rollouts, the mean return as node
    value. It gets the same throughput model and the same number of simulations as RankMap.
    """

    name = "omniboost"

    def __init__(
        self, model: ThroughputModel, budget: Budget = DEFAULT_BUDGET, seed: int = 0, max_stages: int = 3
    ) -> None:
        super().__init__(model)
        self.budget = budget
        self.seed = seed
        self.max_stages = max_stages

    def plan(
        self,
        workload: Workload,
        priorities: Sequence[float] | None = None,
        warm_start: Mapping | None = None,
    ) -> Plan:
        started = time.perf_counter()
        builder = MappingBuilder(workload, self.components)
        evaluator = Evaluator(self.model, builder, mean_throughput_objective(workload), self.budget)
        space = UnitSpace(builder.units, len(self.components), self.max_stages, range(len(workload)))
        tree = Tree(space, np.random.default_rng(self.seed), DEFAULT_MCTS)
        if warm_start is not None:
            tree.seed(
                evaluator, [warm_key(builder, warm_start, self.max_stages, self.model.platform.reference_component)]
            )
        tree.grow(evaluator)
        return finish(self.name, evaluator, started)


class GaPlanner(Planner):
    """GA (the paper's [5]): evolutionary search whose every fitness call is a board measurement.

    The board is the simulator of the model's platform, whatever model the other planners use;
    fitness is the mean throughput. `Plan.measurements` counts the measurements, and the plan's
    throughput is the measured one.
    """

    name = "ga"

    def __init__(
        self,
        model: ThroughputModel,
        measurements: int = GA_MEASUREMENTS,
        seed: int = 0,
        max_stages: int = 3,
        config: GaConfig = DEFAULT_GA,
    ) -> None:
        super().__init__(model)
        self.board = SimulatorModel(model.platform)
        self.measurements = measurements
        self.seed = seed
        self.max_stages = max_stages
        self.config = config

    def plan(
        self,
        workload: Workload,
        priorities: Sequence[float] | None = None,
        warm_start: Mapping | None = None,
    ) -> Plan:
        started = time.perf_counter()
        builder = MappingBuilder(workload, self.components)
        evaluator = Evaluator(
            self.board, builder, mean_throughput_objective(workload), Budget(simulations=self.measurements)
        )
        reference = self.model.platform.reference_component
        seeds = [] if warm_start is None else [warm_key(builder, warm_start, self.max_stages, reference)]
        evolve(evaluator, np.random.default_rng(self.seed), self.max_stages, self.config, seeds)
        return finish(self.name, evaluator, started, measurements=evaluator.simulations)
