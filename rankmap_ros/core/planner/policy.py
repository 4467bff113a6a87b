"""The planner and the component scheduling policy (issue 7): predicted deadline misses of a plan.

The search ranks mappings by throughput; which of several near-equal mappings meets the most
deadlines depends on the policy the components run, which only a job-level replay shows
(core/rtsim.py). So among the plan's best few qualifying candidates, the one with the lowest
predicted miss rate is kept; ties go to the higher reward.
"""

from __future__ import annotations

import dataclasses

from rankmap_ros.core.planner.base import Plan
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import Policy, RtResult
from rankmap_ros.core.rtsim import PREDICT_HORIZON, choose_for_policy, predict
from rankmap_ros.core.workload import Workload


def plan_for_policy(
    plan: Plan,
    platform: Platform,
    workload: Workload,
    policy: Policy | str,
    horizon: float = PREDICT_HORIZON,
    seed: int = 0,
) -> tuple[Plan, RtResult]:
    """The plan re-chosen among its candidates for `policy`, and its predicted real-time behaviour.

    Only candidates that meet every threshold compete (reward >= 0), and only when the best one
    does; a workload without real-time DNNs keeps the plan as it is.
    """
    pool = [c for c in plan.candidates if c[1] >= 0] if plan.reward >= 0 else []
    if not any(d.realtime for d in workload.dnns) or len(pool) < 2:
        return plan, predict(platform, workload, plan.mapping, policy, horizon, seed)
    best, results = choose_for_policy(platform, workload, [(m, r) for m, r, _ in pool], policy, horizon, seed)
    mapping, reward, rates = pool[best]
    if mapping == plan.mapping:
        return plan, results[best]
    chosen = dataclasses.replace(plan, mapping=mapping, reward=reward, predicted_throughput=rates, feasible=True)
    return chosen, results[best]
