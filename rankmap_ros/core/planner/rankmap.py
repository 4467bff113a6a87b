"""RankMap (the paper's Section IV.B and IV.E): priority-aware MCTS with starvation disqualification."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner.base import DEFAULT_BUDGET, Budget, Plan, Planner, PlannerError
from rankmap_ros.core.planner.mcts import DEFAULT_MCTS, MctsConfig, Tree
from rankmap_ros.core.planner.plans import Evaluator, MappingBuilder, finish, single_component_keys, warm_key
from rankmap_ros.core.planner.polish import polish
from rankmap_ros.core.planner.priorities import dynamic_priorities, static_priorities
from rankmap_ros.core.planner.reward import DEFAULT_MIN_POTENTIAL, Objective, rankmap_objective
from rankmap_ros.core.planner.spaces import StageSpace
from rankmap_ros.core.throughput import ThroughputModel
from rankmap_ros.core.workload import Workload

Mode = Literal["static", "dynamic"]
# Shares of the budget after which the tree pauses and its best mapping is polished.
_POLISH_AT = (0.4, 0.6, 0.8)
# At most this share of the budget goes to scoring whole-DNN-on-one-component mappings first.
_COARSE_SHARE = 0.1


class RankMapPlanner(Planner):
    """RankMap_S (mode 'static': the given or the workload's priorities) or RankMap_D ('dynamic').

    `whole_dnn_seeding` and `polishing` switch the two additions to plain MCTS off, for the
    comparison in `rankmap experiment search` (docs/PLANNER.md).
    """

    def __init__(
        self,
        model: ThroughputModel,
        mode: Mode = "static",
        budget: Budget = DEFAULT_BUDGET,
        seed: int = 0,
        max_stages: int = 3,
        min_potential: float = DEFAULT_MIN_POTENTIAL,
        config: MctsConfig = DEFAULT_MCTS,
        whole_dnn_seeding: bool = True,
        polishing: bool = True,
    ) -> None:
        super().__init__(model)
        if mode not in ("static", "dynamic"):
            raise PlannerError(f"unknown priority mode {mode!r} (static or dynamic)")
        if not isinstance(max_stages, int) or max_stages < 1:
            raise PlannerError(f"max_stages must be a positive integer, got {max_stages!r}")
        if not 0 <= min_potential < 1:
            raise PlannerError(f"min_potential must be in [0, 1), got {min_potential!r}")
        self.name = "rankmap_s" if mode == "static" else "rankmap_d"
        self.mode = mode
        self.budget = budget
        self.seed = seed
        self.max_stages = max_stages
        self.min_potential = min_potential
        self.config = config
        self.whole_dnn_seeding = whole_dnn_seeding
        self.polishing = polishing

    def objective(self, workload: Workload, priorities: Sequence[float] | None = None) -> Objective:
        """The reward: static mode weighs P by the given (or the workload's) vector, dynamic mode equally."""
        platform = self.model.platform
        if self.mode == "dynamic":
            if priorities is not None:
                raise PlannerError("dynamic mode derives priorities from the DNNs' profiles; do not pass any")
            shares = (1.0 / len(workload),) * len(workload)
            return rankmap_objective(
                platform, workload, shares, dynamic_priorities(workload, platform), self.min_potential
            )
        shares = static_priorities(workload, priorities)
        return rankmap_objective(platform, workload, shares, shares, self.min_potential)

    def plan(
        self,
        workload: Workload,
        priorities: Sequence[float] | None = None,
        warm_start: Mapping | None = None,
    ) -> Plan:
        started = time.perf_counter()
        objective = self.objective(workload, priorities)
        builder = MappingBuilder(workload, self.components)
        evaluator = Evaluator(self.model, builder, objective, self.budget)
        # Decide the DNNs whose inferences earn the most reward first (share / isolated rate; in
        # dynamic mode the heaviest DNN first): the top of the tree gets the most visits.
        order = sorted(range(len(workload)), key=lambda i: -objective.weights[i])
        space = StageSpace(builder.units, len(self.components), self.max_stages, order)
        rng = np.random.default_rng(self.seed)
        tree = Tree(space, rng, self.config)
        # Seed the tree with the current mapping (warm start) and with the coarse layer of the
        # space: every DNN whole on one component. There are only 3^5 = 243 such mappings for 5
        # DNNs, and on a contended board they are often optimal or next to it (docs/PLANNER.md).
        limit = round(self.budget.simulations * _COARSE_SHARE) if self.whole_dnn_seeding else 0
        seeds = single_component_keys(builder, limit, rng)
        if warm_start is not None:
            reference = self.model.platform.reference_component
            seeds.insert(0, warm_key(builder, warm_start, self.max_stages, reference))
        tree.seed(evaluator, seeds)
        # Grow the tree, polish its best mappings, and repeat; budget a polish leaves unused goes
        # back to the tree.
        for share in _POLISH_AT if self.polishing else ():
            evaluator.phase(share)
            tree.grow(evaluator)
            evaluator.phase(1.0)
            polish(evaluator, self.max_stages)
        tree.grow(evaluator)
        return finish(self.name, evaluator, started)
