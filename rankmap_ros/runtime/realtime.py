"""Real-time DNNs measured on this host under one component scheduling policy (issue 7).

`run_realtime` starts a mapping under a policy, measures deadline misses, drops, preemptions,
throughput, latency, utilisation and the arbiters' cost per decision, and stops everything:
the measured counterpart of core/rtsim.py's simulation (`RtResult.simulated` is False).
`preemption_cost` measures what yielding at unit boundaries adds to a stage's compute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import Policy, RtResult
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime.pipeline import Pipeline

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
) -> RtResult:
    """Run `mapping` under `policy` for `seconds` (after `warmup_s`) and return what was measured.

    Real-time DNNs (workload entries with a period) get one synthetic input per period,
    best-effort ones as many as they take. A program calling this must guard its entry point
    with `if __name__ == "__main__":` (stage processes come from a fork server).
    """
    with Pipeline(platform, workload, policy=policy, drop_late=drop_late, weights=weights) as pipeline:
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
) -> dict[str, Any]:
    """What preemption adds to a stage's compute: the best-effort DNN's service time under edf
    alone (never preempted) against beside a real-time DNN that preempts it at unit boundaries
    (`preemption_overhead`: resuming, and whatever else sharing the component with another DNN
    does to the stage's compute), and the part of it that resuming itself accounts for
    (`resume_overhead`: each unit right after a preemption against that unit's usual time).
    Service time excludes waits for the component. Rounds alternate the two runs.
    """
    component = component or platform.reference_component
    alone = Workload.from_dict({"dnns": [{"name": "be", "model": best_effort}]})
    shared = Workload.from_dict(
        {"dnns": [{"name": "be", "model": best_effort}, {"name": "rt", "model": realtime, "period": period}]}
    )
    runs: dict[str, list[dict[str, float]]] = {"alone": [], "preempted": []}
    for _ in range(rounds):
        for kind, workload in (("alone", alone), ("preempted", shared)):
            with Pipeline(platform, workload, policy=Policy.EDF) as pipeline:
                pipeline.start(Mapping.all_on(workload, component))
                report = pipeline.measure(seconds, warmup_s=DEFAULT_WARMUP_S)
                be = next(d for d in report.dnns if d.name == "be")
                counters = pipeline.realtime_counters()
            runs[kind].append(
                {
                    "service_time_s": be.stages[0].service_time_s,
                    "frames": counters["be"]["frames"],
                    "preempted_jobs": counters["be"]["preempted"],
                    "yields": counters["be"]["yields"],
                    "resume_extra_s": counters["be"]["resume_extra_s"],
                }
            )
    alone_s = float(np.median([r["service_time_s"] for r in runs["alone"]]))
    preempted_s = float(np.median([r["service_time_s"] for r in runs["preempted"]]))
    resume_s = float(np.median([r["resume_extra_s"] / max(r["frames"], 1) for r in runs["preempted"]]))
    return {
        "component": component,
        "best_effort": best_effort,
        "realtime": realtime,
        "period_s": period,
        "runs": runs,
        "service_time_alone_s": alone_s,
        "service_time_preempted_s": preempted_s,
        "preemption_overhead": preempted_s / alone_s - 1.0,
        # the part due to resuming alone: the first unit after each preemption over its usual time
        "resume_overhead": resume_s / alone_s,
        "resume_extra_s_per_job": resume_s,
        "yields_per_job": float(np.median([r["yields"] / max(r["frames"], 1) for r in runs["preempted"]])),
    }
