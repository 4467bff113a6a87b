"""Evolutionary search over stage plans: the GA baseline and the long reference search.

A genome is one stage plan per DNN. Children take each DNN's plan from either parent (uniform
crossover) and mutate a plan by moving a cut, swapping a stage's component, splitting or
merging stages, or drawing a fresh random plan. The two best genomes survive each generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankmap_ros.core.planner.plans import Evaluator, Key, StagePlan, legal_routes, random_plan, routes


@dataclass(frozen=True)
class GaConfig:
    population: int = 20
    elite: int = 2
    tournament: int = 3
    crossover: float = 0.9


DEFAULT_GA = GaConfig()


def evolve(
    evaluator: Evaluator,
    rng: np.random.Generator,
    max_stages: int = 3,
    config: GaConfig = DEFAULT_GA,
    seeds: Sequence[Key] = (),
) -> None:
    """Evolve until the evaluator's budget is spent; the evaluator keeps the best genome."""
    units = evaluator.builder.units
    n_comps = len(evaluator.builder.components)
    choices = [legal_routes(n, routes(n_comps, max_stages)) for n in units]
    population = list(dict.fromkeys(seeds))[: config.population]
    while len(population) < config.population:
        population.append(tuple(random_plan(n, choices[i], rng) for i, n in enumerate(units)))
    scores = evaluator.evaluate(population)
    idle = 0
    while not evaluator.exhausted() and idle < 20:
        ranked = sorted(range(len(population)), key=lambda i: -scores[i])
        children = [population[i] for i in ranked[: config.elite]]
        while len(children) < config.population:
            a = population[_tournament(scores, config.tournament, rng)]
            b = population[_tournament(scores, config.tournament, rng)]
            if rng.random() < config.crossover:
                child = tuple(a[i] if rng.random() < 0.5 else b[i] for i in range(len(units)))
            else:
                child = a
            children.append(_mutate(child, units, n_comps, max_stages, choices, rng))
        before = evaluator.simulations
        population = children[: config.elite + max(1, evaluator.remaining)]
        scores = evaluator.evaluate(population)
        idle = idle + 1 if evaluator.simulations == before else 0


def _tournament(scores: Sequence[float], size: int, rng: np.random.Generator) -> int:
    picks = rng.integers(len(scores), size=size)
    return int(max(picks, key=lambda i: scores[i]))


def _mutate(
    key: Key,
    units: Sequence[int],
    n_comps: int,
    max_stages: int,
    choices: Sequence[Sequence[tuple[int, ...]]],
    rng: np.random.Generator,
) -> Key:
    """Mutate one DNN's plan, sometimes two."""
    plans = list(key)
    for _ in range(1 + int(rng.random() < 0.3)):
        i = int(rng.integers(len(plans)))
        plans[i] = mutate_plan(plans[i], units[i], n_comps, max_stages, choices[i], rng)
    return tuple(plans)


def mutate_plan(
    plan: StagePlan,
    n: int,
    n_comps: int,
    max_stages: int,
    choices: Sequence[tuple[int, ...]],
    rng: np.random.Generator,
) -> StagePlan:
    """One random edit of a stage plan that keeps it valid (contiguous, distinct components, capped)."""
    stops = [s for s, _ in plan]
    comps = [c for _, c in plan]
    unused = [c for c in range(n_comps) if c not in comps]
    moves = ["fresh", "swap"]
    if len(plan) > 1:
        moves += ["shift", "shift", "merge"]
    if unused:
        moves.append("replace")
    if unused and len(plan) < max_stages and n > len(plan):
        moves.append("split")
    move = moves[int(rng.integers(len(moves)))]
    if move == "fresh":
        return random_plan(n, choices, rng)
    if move == "swap":
        if len(comps) > 1:
            a, b = rng.choice(len(comps), size=2, replace=False)
            comps[a], comps[b] = comps[b], comps[a]
        else:
            comps = [int(rng.choice(unused))] if unused else comps
    elif move == "replace":
        comps[int(rng.integers(len(comps)))] = int(rng.choice(unused))
    elif move == "shift":
        k = int(rng.integers(len(stops) - 1))
        low = stops[k - 1] + 1 if k else 1
        high = stops[k + 1] - 1
        step = int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
        stops[k] = min(max(stops[k] + step, low), high)
    elif move == "merge":
        k = int(rng.integers(len(stops) - 1))
        del stops[k]
        del comps[k + int(rng.random() < 0.5)]
    else:  # split a stage of at least two units, the new part on an unused component
        sizes = [stop - (stops[k - 1] if k else 0) for k, stop in enumerate(stops)]
        wide = [k for k, size in enumerate(sizes) if size > 1]
        if not wide:
            return plan
        k = wide[int(rng.integers(len(wide)))]
        start = stops[k - 1] if k else 0
        cut = int(rng.integers(start + 1, stops[k]))
        new = int(rng.choice(unused))
        stops.insert(k, cut)
        comps.insert(k + int(rng.random() < 0.5), new)
    return tuple(zip(stops, comps, strict=True))
