"""The planners: search quality against exhaustive search, disqualification, priorities, seeds, warm starts."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner import (
    PLANNERS,
    Budget,
    OmniBoostPlanner,
    PlannerError,
    RankMapPlanner,
    dynamic_priorities,
    make_planner,
    normalize,
    parse_priorities,
    static_priorities,
)
from rankmap_ros.core.planner.plans import (
    MappingBuilder,
    enumerate_plans,
    legal_routes,
    plan_from_assignment,
    routes,
)
from rankmap_ros.core.planner.reward import DEFAULT_MIN_POTENTIAL, DISQUALIFIED, INPUT_HEADROOM
from rankmap_ros.core.planner.spaces import StageSpace, UnitSpace
from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.simulator import ideal_throughput, throughputs
from rankmap_ros.core.throughput import SimulatorModel
from rankmap_ros.core.workload import Workload, WorkloadError
from rankmap_ros.experiments.motivation import STARVATION_EPSILON

PLATFORM = load_platform("orange_pi_5")
MODEL = SimulatorModel(PLATFORM)
SMALL = Workload.from_models(["alexnet", "resnet12"])  # 8 and 5 units: 171 x 63 mappings


def all_keys(workload: Workload) -> list[tuple]:
    builder = MappingBuilder(workload, PLATFORM.component_names)
    per_dnn = [list(enumerate_plans(n, legal_routes(n, routes(3, 3)))) for n in builder.units]
    return list(itertools.product(*per_dnn))


@pytest.fixture(scope="module")
def small_scores() -> dict[str, tuple[np.ndarray, list[tuple]]]:
    """Every mapping of SMALL scored with the static and the dynamic objective, exhaustively."""
    keys = all_keys(SMALL)
    builder = MappingBuilder(SMALL, PLATFORM.component_names)
    rates = throughputs(PLATFORM, SMALL, [builder.mapping(k) for k in keys])
    static = RankMapPlanner(MODEL, "static").objective(SMALL, [0.7, 0.3])
    dynamic = RankMapPlanner(MODEL, "dynamic").objective(SMALL)
    return {"static": (static.scores(rates), keys), "dynamic": (dynamic.scores(rates), keys), "rates": rates}


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_mcts_finds_the_exhaustive_optimum_within_2_percent(mode: str, small_scores: dict) -> None:
    scores, _ = small_scores[mode]
    best = float(scores.max())
    priorities = [0.7, 0.3] if mode == "static" else None
    plan = RankMapPlanner(MODEL, mode, budget=Budget(1500), seed=1).plan(SMALL, priorities)
    assert plan.simulations <= 1500 < len(scores)  # a seventh of the space at most
    assert plan.reward >= 0.98 * best
    assert plan.feasible


def test_disqualification_excludes_starving_mappings(small_scores: dict) -> None:
    rates = small_scores["rates"]
    # Ask for more of ResNet-12 than the unconstrained optimum gives it.
    ideal = np.array([ideal_throughput(PLATFORM, m) for m in SMALL.models])
    free_best = rates[np.argmax((rates / ideal).sum(axis=1))]
    demand = free_best[1] * 1.5
    workload = Workload.from_models(SMALL.models, min_rates=[None, demand])
    objective = RankMapPlanner(MODEL, "dynamic").objective(workload)
    scores = objective.scores(rates)
    starving = rates[:, 1] < demand
    assert starving.any() and (~starving).any()
    assert scores[starving].max() < 0 <= scores[~starving].min()
    assert scores.min() >= DISQUALIFIED - 1
    plan = RankMapPlanner(MODEL, "dynamic", budget=Budget(1500)).plan(workload)
    simulated = throughputs(PLATFORM, workload, [plan.mapping])[0]
    assert plan.feasible and simulated[1] >= demand
    assert plan.reward >= 0.98 * scores.max()


def test_default_threshold_keeps_every_dnn_above_the_starvation_line() -> None:
    assert DEFAULT_MIN_POTENTIAL > STARVATION_EPSILON
    workload = Workload.from_models(["vgg16", "squeezenet_v2", "inception_v4", "mobilenet_v2", "resnet50"])
    plan = RankMapPlanner(MODEL, "dynamic", budget=Budget(800)).plan(workload)
    simulated = throughputs(PLATFORM, workload, [plan.mapping])[0]
    ideal = np.array([ideal_throughput(PLATFORM, m) for m in workload.models])
    assert plan.feasible
    assert (simulated / ideal >= DEFAULT_MIN_POTENTIAL - 1e-9).all()


def test_infeasible_request_returns_the_least_short_mapping() -> None:
    workload = Workload.from_models(["vgg16", "alexnet"], min_rates=[1000.0, None])
    plan = RankMapPlanner(MODEL, "static", budget=Budget(300)).plan(workload)
    assert not plan.feasible
    assert DISQUALIFIED - 1 <= plan.reward < DISQUALIFIED
    plan.mapping.validate(workload, PLATFORM.component_names)


def test_a_dnn_capped_by_its_sensor_leaves_its_surplus_to_the_others() -> None:
    # SqueezeNet-V2 alone could answer ~126/s, but its camera gives 30: planned with that, the
    # capacity it cannot use goes to ResNet-50, and SqueezeNet-V2 still keeps up with its camera
    free = Workload.from_models(["squeezenet_v2", "resnet50"])
    capped = Workload((dataclasses.replace(free.dnns[0], input_rate=30.0), free.dnns[1]))
    planner = RankMapPlanner(MODEL, "static", budget=Budget(1500), seed=0)
    unaware, aware = planner.plan(free, [0.5, 0.5]), planner.plan(capped, [0.5, 0.5])
    assert unaware.predicted_throughput[0] > 90
    assert aware.predicted_throughput[0] >= 30.0 and aware.feasible
    assert aware.predicted_throughput[1] > 1.3 * unaware.predicted_throughput[1]


def test_an_input_rate_caps_what_counts_and_what_is_asked() -> None:
    from rankmap_ros.core.planner.reward import rankmap_objective

    workload = Workload.from_models(["vgg16", "alexnet"], min_rates=[20.0, None])
    slow = Workload((dataclasses.replace(workload.dnns[0], input_rate=2.0), workload.dnns[1]))
    objective = rankmap_objective(PLATFORM, slow, [0.5, 0.5], [0.5, 0.5])
    assert objective.thresholds[0] == 2.0  # a minimum rate above the sensor's asks only the sensor's
    rates = np.array([[2.0 * INPUT_HEADROOM, 40.0], [50.0, 40.0], [2.0, 40.0], [1.5, 40.0]])
    scores = objective.scores(rates)
    # beyond a margin over what arrives, capacity counts for nothing; below the sensor's rate, starved
    assert scores[0] == scores[1] > scores[2] > 0 > scores[3]
    with pytest.raises(WorkloadError, match="input_rate must be a finite number > 0"):
        dataclasses.replace(workload.dnns[0], input_rate=0.0)


def test_static_priority_raises_the_critical_dnns_p() -> None:
    workload = Workload.from_models(["inception_v4", "resnet50", "vgg16", "mobilenet_v2"])
    ideal = ideal_throughput(PLATFORM, "inception_v4")
    planner = RankMapPlanner(MODEL, "static", budget=Budget(1000))
    equal = planner.plan(workload, [1, 1, 1, 1])
    critical = planner.plan(workload, [0.7, 0.1, 0.1, 0.1])
    p_equal, p_critical = (throughputs(PLATFORM, workload, [p.mapping])[0][0] / ideal for p in (equal, critical))
    assert p_critical > 2 * p_equal


def test_dynamic_priorities_weigh_heavier_dnns_higher() -> None:
    workload = Workload.from_models(["squeezenet_v2", "resnet50", "vgg16"])
    p = dynamic_priorities(workload, PLATFORM)
    assert math.isclose(sum(p), 1.0)
    assert p[0] < p[1] < p[2]
    assert RankMapPlanner(MODEL, "dynamic").objective(workload).priorities == p


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.5, 0.5], "2 priorities given for 3 DNNs"),
        ([0.5, -0.1, 0.6], "must be >= 0"),
        ([0.5, math.nan, 0.5], "finite"),
        ([0.5, math.inf, 0.5], "finite"),
        ([0, 0, 0], "all zero"),
        ([0.5, "a", 0.5], "finite number"),
    ],
)
def test_bad_priority_vectors_are_rejected(values: list, message: str) -> None:
    workload = Workload.from_models(["alexnet", "resnet50", "vgg16"])
    with pytest.raises(PlannerError, match=message):
        normalize(values, workload)


def test_priorities_near_the_float_maximum_keep_their_ratio() -> None:
    # their sum overflows to inf: a manager that added them up first crashed in its service
    workload = Workload.from_models(["alexnet", "resnet50", "vgg16"])
    assert normalize([1e308, 1e308, 0.5e308], workload) == pytest.approx((0.4, 0.4, 0.2))
    assert normalize([5e-324, 0, 5e-324], workload) == (0.5, 0.0, 0.5)


def test_priority_parsing() -> None:
    workload = Workload.from_models(["alexnet", "resnet50", "vgg16"])
    assert parse_priorities("2,1,1", workload) == (0.5, 0.25, 0.25)
    assert parse_priorities("vgg16=0.7, alexnet=0.2, resnet50=0.1", workload) == pytest.approx((0.2, 0.1, 0.7))
    for text, message in [
        ("yolo=1,alexnet=1,resnet50=1", "unknown DNN 'yolo'"),
        ("alexnet=1,resnet50=1", "no priority given for vgg16"),
        ("alexnet=1,1,1", "not both"),
        ("1,x,1", "'x' is not a number"),
        ("1,nan,1", "finite"),
        ("", "empty"),
    ]:
        with pytest.raises(PlannerError, match=message):
            parse_priorities(text, workload)
    assert static_priorities(Workload.from_models(["alexnet", "vgg16"], priorities=[3, 1])) == (0.75, 0.25)


def test_dynamic_mode_refuses_a_given_vector() -> None:
    with pytest.raises(PlannerError, match="dynamic mode"):
        RankMapPlanner(MODEL, "dynamic").plan(SMALL, [0.5, 0.5])


def test_same_seed_same_plan_and_budget_is_kept() -> None:
    workload = Workload.from_models(["resnet50", "mobilenet_v2", "vgg16", "squeezenet"])
    a, b = (RankMapPlanner(MODEL, "dynamic", budget=Budget(400), seed=7).plan(workload) for _ in range(2))
    assert a.mapping == b.mapping and a.reward == b.reward
    assert a.simulations <= 400


def test_time_limit_stops_the_search() -> None:
    workload = Workload.from_models(["resnet50", "mobilenet_v2", "vgg16", "squeezenet", "inception_v4"])
    plan = RankMapPlanner(MODEL, "dynamic", budget=Budget(10**7, seconds=0.3)).plan(workload)
    assert plan.plan_seconds < 1.5
    assert plan.simulations < 10**7


def test_warm_start_is_never_lost() -> None:
    workload = Workload.from_models(["resnet50", "mobilenet_v2", "vgg16"])
    good = RankMapPlanner(MODEL, "dynamic", budget=Budget(1500)).plan(workload)
    again = RankMapPlanner(MODEL, "dynamic", budget=Budget(40), seed=3).plan(workload, warm_start=good.mapping)
    assert again.reward >= good.reward
    # A DNN arrives: the others keep their plans as the starting point, the newcomer starts on the GPU.
    grown = Workload.from_models(["resnet50", "mobilenet_v2", "vgg16", "alexnet"])
    plan = RankMapPlanner(MODEL, "dynamic", budget=Budget(300)).plan(grown, warm_start=good.mapping)
    plan.mapping.validate(grown, PLATFORM.component_names)


def test_stage_cap() -> None:
    workload = Workload.from_models(["resnet50", "googlenet"])
    for cap in (1, 2):
        plan = RankMapPlanner(MODEL, "dynamic", budget=Budget(300), max_stages=cap).plan(workload)
        assert all(len(d.stages) <= cap for d in plan.mapping.dnns)
    with pytest.raises(PlannerError, match="max_stages"):
        RankMapPlanner(MODEL, max_stages=0)


@pytest.mark.parametrize("name", PLANNERS)
def test_every_planner_returns_a_valid_mapping(name: str) -> None:
    workload = Workload.from_models(["resnet50", "mobilenet_v2", "alexnet"])
    plan = make_planner(name, MODEL, budget=Budget(200)).plan(workload)
    plan.mapping.validate(workload, PLATFORM.component_names)
    assert len(plan.predicted_throughput) == 3 and all(r > 0 for r in plan.predicted_throughput)
    assert plan.plan_seconds >= 0
    assert all(len(d.stages) <= 3 for d in plan.mapping.dnns)
    if name == "ga":
        assert 0 < plan.measurements <= 300
    data = plan.to_dict()
    assert set(data["predicted_throughput"]) == set(workload.names)


def test_unknown_planner_is_rejected() -> None:
    with pytest.raises(PlannerError, match="unknown planner 'best'"):
        make_planner("best", MODEL)


@pytest.mark.parametrize("space_class", [StageSpace, UnitSpace])
def test_decision_paths_rebuild_their_mapping(space_class: type) -> None:
    workload = Workload.from_models(["resnet50", "alexnet", "squeezenet"])
    builder = MappingBuilder(workload, PLATFORM.component_names)
    space = space_class(builder.units, 3, 3, [2, 0, 1])
    rng = np.random.default_rng(0)
    for _ in range(50):
        key = space.rollout(space.root(), rng)
        actions = space.path(key)
        assert actions is not None
        cursor = space.root()
        for action in actions:
            assert action in space.actions(cursor)
            cursor = space.step(cursor, action)
        assert space.actions(cursor) == ()
        assert space.rollout(cursor, rng) == key


def test_mappings_outside_the_space_have_no_path() -> None:
    workload = Workload.from_models(["alexnet"])
    builder = MappingBuilder(workload, PLATFORM.component_names)
    repeated = Mapping.from_dict(
        {"dnns": [{"name": "alexnet", "model": "alexnet", "assignment": ["gpu"] * 3 + ["big"] * 2 + ["gpu"] * 3}]}
    )
    key = (plan_from_assignment(repeated.dnns[0].assignment, PLATFORM.component_names),)
    assert StageSpace(builder.units, 3, 3, [0]).path(key) is None
    assert UnitSpace(builder.units, 3, 3, [0]).path(key) is None
    # As a warm start it is still scored, and the answer is at least as good.
    planner = RankMapPlanner(MODEL, "dynamic", budget=Budget(20))
    score = planner.objective(workload).scores(throughputs(PLATFORM, workload, [repeated]))[0]
    plan = planner.plan(workload, warm_start=repeated)
    plan.mapping.validate(workload, PLATFORM.component_names)
    assert plan.reward >= score


def test_omniboost_maximises_mean_throughput_without_priorities() -> None:
    workload = Workload.from_models(["resnet50", "mobilenet_v2"])
    plan = OmniBoostPlanner(MODEL, budget=Budget(300)).plan(workload, priorities=[0.9, 0.1])
    assert plan.priorities is None and plan.thresholds is None
    assert plan.reward == pytest.approx(float(np.mean(plan.predicted_throughput)))
