"""Steepest-ascent polish of the best mapping: the tree finds the basin, the polish its floor.

Random rollouts place cut points coarsely; one unit either way often changes a bottleneck
stage's time by several percent. The polish scores every single edit of a leading mapping (move a
cut by 1, 2, 4 or 8 units, put a stage on an unused component, swap two stages' components,
merge two stages, split off a head or tail of 1, 2, 4 or 8 units or half a stage) in one batch
and moves to the best, until no edit helps or the budget is spent. Steps of several units let
it leave the plateaus that random cut points land on.
"""

from __future__ import annotations

from rankmap_ros.core.planner.plans import Evaluator, Key, StagePlan

_STEPS = (-8, -4, -2, -1, 1, 2, 4, 8)
_SPLITS = (1, 2, 4, 8)


def polish(evaluator: Evaluator, max_stages: int = 3) -> None:
    """Climb from each of the evaluator's best keys (they often lie in different basins) while budget remains."""
    for start in list(evaluator.leaders):
        climb(evaluator, start, max_stages)


def climb(evaluator: Evaluator, current: Key, max_stages: int) -> None:
    """Move to the best single edit of `current` until none improves it."""
    n_comps = len(evaluator.builder.components)
    units = evaluator.builder.units
    score = evaluator.scores[current]
    while not evaluator.exhausted():
        candidates = [
            (*current[:i], plan, *current[i + 1 :])
            for i, old in enumerate(current)
            for plan in neighbours(old, units[i], n_comps, max_stages)
        ]
        fresh = [c for c in dict.fromkeys(candidates) if c not in evaluator.scores][: evaluator.remaining]
        if not fresh:
            return
        scores = evaluator.evaluate(fresh)
        best = max(range(len(fresh)), key=scores.__getitem__)
        if scores[best] <= score:
            return
        current, score = fresh[best], scores[best]


def neighbours(plan: StagePlan, n: int, n_comps: int, max_stages: int) -> list[StagePlan]:
    """Every plan one edit away from `plan` (valid: contiguous, distinct components, capped)."""
    stops = [s for s, _ in plan]
    comps = [c for _, c in plan]
    unused = [c for c in range(n_comps) if c not in comps]
    out: list[StagePlan] = []

    def add(new_stops: list[int], new_comps: list[int]) -> None:
        out.append(tuple(zip(new_stops, new_comps, strict=True)))

    for k in range(len(stops) - 1):  # move cut k, near and far
        low = stops[k - 1] + 1 if k else 1
        for step in _STEPS:
            cut = stops[k] + step
            if low <= cut < stops[k + 1]:
                add([*stops[:k], cut, *stops[k + 1 :]], comps)
        add(stops[:k] + stops[k + 1 :], comps[:k] + comps[k + 1 :])  # merge: the later stage's component
        add(stops[:k] + stops[k + 1 :], comps[: k + 1] + comps[k + 2 :])  # merge: the earlier one's
    for k in range(len(comps)):
        for c in unused:
            add(stops, [*comps[:k], c, *comps[k + 1 :]])
        for j in range(k + 1, len(comps)):
            swapped = list(comps)
            swapped[k], swapped[j] = swapped[j], swapped[k]
            add(stops, swapped)
    if len(plan) < max_stages:  # split a stage, handing a short or long head or tail to an unused component
        start = 0
        for k, stop in enumerate(stops):
            for cut in sorted({start + d for d in _SPLITS} | {stop - d for d in _SPLITS} | {(start + stop) // 2}):
                if start < cut < stop:
                    for c in unused:
                        add([*stops[:k], cut, *stops[k:]], [*comps[:k], c, *comps[k:]])
                        add([*stops[:k], cut, *stops[k:]], [*comps[: k + 1], c, *comps[k + 1 :]])
            start = stop
    return out
