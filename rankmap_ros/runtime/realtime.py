"""Real-time DNNs measured on this host under one component scheduling policy (issue 7).

`run_realtime` starts a mapping under a policy, measures deadline misses, drops, preemptions,
throughput, latency, utilisation and the arbiters' cost per decision, and stops everything:
the measured counterpart of core/rtsim.py's simulation (`RtResult.simulated` is False).
`preemption_cost` measures what yielding at unit boundaries adds to a stage's compute.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import Policy, RtResult
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime.pipeline import Executor, Pipeline

DEFAULT_WARMUP_S = 1.0


def run_realtime(
    platform: Platform,
    workload: Workload,
    mapping: Mapping,
    policy: Policy | str,
    seconds: float,
    *,
    warmup_s: float = DEFAULT_WARMUP_S,
    drop_late: bool = True,
    weights: dict[str, str] | None = None,
    executor: Executor = "stage",
) -> RtResult:
    """Run `mapping` under `policy` for `seconds` (after `warmup_s`) and return what was measured.

    Real-time DNNs (workload entries with a period) get one synthetic input per period,
    best-effort ones as many as they take. A program calling this must guard its entry point
    with `if __name__ == "__main__":` (stage processes come from a fork server).
    """
    with Pipeline(
        platform, workload, policy=policy, drop_late=drop_late, weights=weights, executor=executor
    ) as pipeline:
        pipeline.start(mapping)
        return pipeline.measure_realtime(seconds, warmup_s=warmup_s)


def preemption_cost(
    platform: Platform,
    best_effort: str = "resnet50",
    realtime: str = "squeezenet_v2",
    period: float = 0.03,
    seconds: float = 4.0,
    rounds: int = 2,
    component: str | None = None,
    executors: tuple[Executor, ...] = ("stage",),
) -> dict[str, dict[str, Any]]:
    """What preemption adds to a stage's compute, with what sharing does held apart.

    The best-effort DNN's service time (waits for the component excluded) in three runs:
    alone under edf; beside a real-time DNN under np_edf, which never preempts it, so the two
    DNNs only take turns between jobs; and beside it under edf, which preempts it at unit
    boundaries. `preemption_overhead` is edf over np_edf with the same neighbour: the cost of
    preempting (the median of the ratios within a round, as the host drifts).
    `sharing_overhead` is np_edf over alone: what taking turns with another DNN does to a
    stage's caches anyway. `resume_overhead` is the part of the first that is measured
    directly: each unit right after a preemption against that unit's usual time.
    Rounds alternate the three runs under every executor in `executors` (runtime/pipeline.py),
    so executors are compared side by side; the result has one entry per executor.
    """
    component = component or platform.reference_component
    alone = Workload.from_dict({"dnns": [{"name": "be", "model": best_effort}]})
    shared = Workload.from_dict(
        {"dnns": [{"name": "be", "model": best_effort}, {"name": "rt", "model": realtime, "period": period}]}
    )
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        ex: {"alone": [], "not_preempted": [], "preempted": []} for ex in executors
    }
    kinds = (("alone", alone, Policy.EDF), ("not_preempted", shared, Policy.NP_EDF), ("preempted", shared, Policy.EDF))
    for _ in range(rounds):
        for executor, (kind, workload, policy) in ((ex, k) for ex in executors for k in kinds):
            with Pipeline(platform, workload, policy=policy, executor=executor) as pipeline:
                pipeline.start(Mapping.all_on(workload, component))
                report = pipeline.measure(seconds, warmup_s=DEFAULT_WARMUP_S)
                be = next(d for d in report.dnns if d.name == "be")
                counters = pipeline.realtime_counters()
            runs[executor][kind].append(
                {
                    "service_time_s": be.stages[0].service_time_s,
                    "frames": counters["be"]["frames"],
                    "preempted_jobs": counters["be"]["preempted"],
                    "yields": counters["be"]["yields"],
                    "resume_extra_s": counters["be"]["resume_extra_s"],
                }
            )
    return {ex: _cost(runs[ex], component, best_effort, realtime, period) for ex in executors}


def _cost(
    runs: dict[str, list[dict[str, float]]], component: str, best_effort: str, realtime: str, period: float
) -> dict[str, Any]:
    alone_s, shared_s, preempted_s = (
        float(np.median([r["service_time_s"] for r in runs[k]])) for k in ("alone", "not_preempted", "preempted")
    )
    resume_s = float(np.median([r["resume_extra_s"] / max(r["frames"], 1) for r in runs["preempted"]]))
    return {
        "component": component,
        "best_effort": best_effort,
        "realtime": realtime,
        "period_s": period,
        "runs": runs,
        "service_time_alone_s": alone_s,
        "service_time_not_preempted_s": shared_s,
        "service_time_preempted_s": preempted_s,
        "preemption_overhead": _paired(runs["preempted"], runs["not_preempted"]),
        "sharing_overhead": _paired(runs["not_preempted"], runs["alone"]),
        "resume_overhead": resume_s / shared_s if shared_s > 0 else math.nan,
        "resume_extra_s_per_job": resume_s,
        "yields_per_job": float(np.median([r["yields"] / max(r["frames"], 1) for r in runs["preempted"]])),
    }


def _paired(runs: list[dict[str, float]], baseline: list[dict[str, float]]) -> float:
    """Median over rounds of the service-time ratio within a round: the host's drift cancels.

    A round where either side completed no job (a starved best-effort DNN) has no ratio; NaN when
    no round has one.
    """
    ratios = [
        r["service_time_s"] / b["service_time_s"] - 1.0
        for r, b in zip(runs, baseline, strict=True)
        if r["service_time_s"] > 0 and b["service_time_s"] > 0
    ]
    return float(np.median(ratios)) if ratios else math.nan
