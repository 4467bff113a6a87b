"""The manager's one door into core: platform, throughput model and planner behind small functions.

The planner, estimator and runtime packages are young; keeping every call the manager makes into
them here means an API change there is a change in this file only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rankmap_ros.core.correction import CorrectedModel, Observations
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import ideal_throughput
from rankmap_ros.core.throughput import SimulatorModel, ThroughputModel
from rankmap_ros.core.workload import Workload

PLANNERS = ("rankmap", "gpu", "omniboost")
MODES = ("static", "dynamic")


@dataclass(frozen=True)
class PlanSettings:
    planner: str = "rankmap"
    mode: str = "static"
    simulations: int = 300
    time_limit_s: float = 1.0
    min_potential: float = 0.1
    seed: int = 0
    policy: str = "time_sharing"  # the components' scheduling policy (core.realtime.Policy)


@dataclass(frozen=True)
class PlanOutcome:
    mapping: Mapping
    predicted: dict[str, float]
    priorities: dict[str, float]
    planner: str
    seconds: float
    base_predicted: dict[str, float]  # by the model before any measured correction: what errors are noted against
    base_model: str  # that model's name


def load_platform(name: str, split: str, opencl_cpu_as_gpu: bool) -> Platform:
    """'host' (discovered; components sharing the CPU clusters' cores dropped) or a platform file."""
    from rankmap_ros.runtime.host import independent_platform, resolve_platform

    return independent_platform(resolve_platform(name, split or None, opencl_cpu_as_gpu))


def throughput_model(platform: Platform, checkpoint: str) -> ThroughputModel:
    """The learned estimator of `checkpoint`; without one, the estimator shipped for this
    platform when there is one that fits it (as `rankmap map` does), else the simulator.

    A shipped checkpoint that no longer fits the platform (a recalibrated platform file, another
    zoo) is passed over for the simulator rather than stopping the manager; a checkpoint the
    user names must load.
    """
    from rankmap_ros.core.estimator.predictor import load_estimator

    if checkpoint:
        return load_estimator(platform, Path(checkpoint))
    from rankmap_ros.core.planner.registry import estimator_available

    if estimator_available(platform):
        try:
            return load_estimator(platform)
        except ValueError:
            pass
    return SimulatorModel(platform)


def with_input_rates(workload: Workload, rates: dict[str, float]) -> Workload:
    """The workload with each best-effort DNN's measured input rate (real-time ones have periods)."""
    return Workload(
        tuple(replace(d, input_rate=rates[d.name]) if d.name in rates and not d.realtime else d for d in workload.dnns),
        max_dnns=workload.max_dnns,
    )


def load_measurements(path: str, platform: Platform) -> tuple[Observations, str | None]:
    """What an earlier run of the manager measured on this platform, and why it is not used if not.

    A missing file is an empty start (the first run). A file that cannot be used (taken on a
    platform since recalibrated, or cut short by a power loss) is moved aside to
    `<file>.unusable`, for a look, and the manager starts measuring afresh.
    """
    import json

    from rankmap_ros.core.correction import MeasurementsError, platform_key

    empty = Observations(platform.component_names)
    file = Path(path).expanduser()
    try:
        if not file.exists():
            return empty, None
        data = json.loads(file.read_text())
        return Observations.from_dict(data, platform_key(platform), platform.component_names), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, MeasurementsError) as exc:
        problem = f"measurements_file {file}: {exc}"
    aside = file.with_name(file.name + ".unusable")
    try:
        file.replace(aside)
    except OSError as exc:
        raise OSError(f"{problem}; it cannot be moved aside either ({exc})") from None
    return empty, f"{problem}; moved to {aside}, measuring afresh"


def save_measurements(path: str, platform: Platform, observations: Observations) -> None:
    import json

    from rankmap_ros.core.correction import platform_key
    from rankmap_ros.core.files import write_text_atomic

    write_text_atomic(Path(path).expanduser(), json.dumps(observations.to_dict(platform_key(platform)), indent=1))


def corrected(model: ThroughputModel, observations: Observations) -> ThroughputModel:
    """`model` corrected by what earlier mappings measured (core/correction.py), when any did.

    `observations` must not change while it plans: the manager passes a snapshot.
    """
    return CorrectedModel(model, observations) if len(observations) else model


def make_plan(
    model: ThroughputModel,
    workload: Workload,
    settings: PlanSettings,
    priorities: Sequence[float] | None,
    warm_start: Mapping | None = None,
) -> PlanOutcome:
    """Plan `workload`; `priorities` (static mode, workload order) override the DNNs' own."""
    from rankmap_ros.core.planner.base import Budget, Planner
    from rankmap_ros.core.planner.baselines import GpuPlanner, OmniBoostPlanner
    from rankmap_ros.core.planner.rankmap import RankMapPlanner

    budget = Budget(settings.simulations, settings.time_limit_s)
    planner: Planner
    if settings.planner == "rankmap":
        planner = RankMapPlanner(
            model,
            mode="dynamic" if settings.mode == "dynamic" else "static",
            budget=budget,
            seed=settings.seed,
            min_potential=settings.min_potential,
        )
    elif settings.planner == "omniboost":
        planner = OmniBoostPlanner(model, budget=budget, seed=settings.seed)
    else:
        planner = GpuPlanner(model)
    dynamic = settings.mode == "dynamic"
    plan = planner.plan(workload, None if dynamic else priorities, warm_start)
    if any(d.realtime for d in workload.dnns):
        from rankmap_ros.core.planner.policy import plan_for_policy

        # among the search's best mappings, the one the policy makes miss the fewest deadlines
        plan, _ = plan_for_policy(plan, model.platform, workload, settings.policy, seed=settings.seed)
    p = priorities_in_force(
        workload,
        model.platform,
        settings.mode,
        [d.priority for d in workload.dnns] if priorities is None else priorities,
    )
    base = model.base if isinstance(model, CorrectedModel) else model
    return PlanOutcome(
        mapping=plan.mapping,
        predicted=dict(zip(workload.names, map(float, plan.predicted_throughput), strict=True)),
        priorities=dict(zip(workload.names, p, strict=True)),
        planner=plan.planner,
        seconds=plan.plan_seconds,
        base_predicted=dict(zip(workload.names, map(float, base.predict(workload, [plan.mapping])[0]), strict=True)),
        base_model=base.name,
    )


def ideal_rate(platform: Platform, model: str) -> float:
    """The DNN alone on the reference component: the denominator of P."""
    rate = ideal_throughput(platform, model)
    return rate if math.isfinite(rate) and rate > 0 else math.nan


def priorities_in_force(
    workload: Workload, platform: Platform, mode: str, weights: Sequence[float]
) -> tuple[float, ...]:
    """The normalised vector the planner weighs: the static weights, or each DNN's profile."""
    from rankmap_ros.core.planner.priorities import dynamic_priorities, static_priorities

    if mode == "dynamic":
        return dynamic_priorities(workload, platform)
    return static_priorities(workload, planning_weights(weights))


def planning_weights(weights: Sequence[float]) -> list[float]:
    """Static weights as planned: all zero (the DNNs that had weight left) means equal weights.

    A set of zeros is refused when a user sets it, but it can remain after an unregister or
    while DNNs are parked; the DNNs left must still be planned, and none outranks another.
    """
    return [1.0] * len(weights) if weights and not any(weights) else list(weights)


def check_priorities(workload: Workload, values: Sequence[float]) -> tuple[float, ...]:
    """Normalised static priorities, or PlannerError naming what is wrong (NaN, negative, count)."""
    from rankmap_ros.core.planner.priorities import static_priorities

    return static_priorities(workload, values)


def planner_error() -> type[Exception]:
    from rankmap_ros.core.planner.base import PlannerError

    return PlannerError
