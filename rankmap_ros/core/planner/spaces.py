"""Decision spaces for the tree search: how a mapping is built one decision at a time.

`StageSpace` (RankMap): per DNN, first its route (which components, in pipeline order; 15
choices for 3 components and at most 3 stages), then each cut point by successive halving of
its admissible range (binary decisions). A 5-DNN mapping is about 50 decisions deep with at
most 15 choices per node, and cut points close to each other share the statistics of their
common ancestors, so the search learns "cut early" or "cut late" before it learns the unit.

`UnitSpace` (OmniBoost): one decision per unit, its component (stay on the current stage's
component or open a stage on an unused one), as in OmniBoost's environment: about 100
decisions deep for 5 DNNs, with no sharing between neighbouring cut points.

A cursor is an immutable tuple describing a partial mapping; DNNs are decided in `order`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rankmap_ros.core.planner.plans import Key, StagePlan, expand, legal_routes, plan_from_indices, random_plan, routes

Cursor = tuple


class DecisionSpace(Protocol):
    def root(self) -> Cursor: ...

    def actions(self, cursor: Cursor) -> tuple[int, ...]: ...

    def step(self, cursor: Cursor, action: int) -> Cursor: ...

    def rollout(self, cursor: Cursor, rng: np.random.Generator) -> Key: ...

    def path(self, key: Key) -> list[int] | None: ...


class StageSpace:
    """Cursor: (k, done plans in decision order, route or None, fixed cuts, lo, hi).

    A rollout completes the current DNN with uniformly random cuts, and every later DNN with a
    random route (each as likely) and uniformly random cuts.
    """

    def __init__(self, units: Sequence[int], n_components: int, max_stages: int, order: Sequence[int]) -> None:
        self.units = tuple(units)
        self.order = tuple(order)
        all_routes = routes(n_components, max_stages)
        self.routes = tuple(legal_routes(self.units[i], all_routes) for i in self.order)
        self._binary = (0, 1)

    def root(self) -> Cursor:
        return (0, (), None, (), 0, 0)

    def actions(self, cursor: Cursor) -> tuple[int, ...]:
        k, _, route, _, _, _ = cursor
        if k == len(self.order):
            return ()
        if route is None:
            return tuple(range(len(self.routes[k])))
        return self._binary

    def step(self, cursor: Cursor, action: int) -> Cursor:
        k, done, route, cuts, lo, hi = cursor
        if route is None:
            route = self.routes[k][action]
            return self._settle(k, done, route, (), 1, self.units[self.order[k]] - len(route) + 1)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if action == 0 else (mid + 1, hi)
        return self._settle(k, done, route, cuts, lo, hi)

    def _settle(self, k: int, done: tuple, route: tuple[int, ...], cuts: tuple[int, ...], lo: int, hi: int) -> Cursor:
        """Fix every cut whose range has shrunk to one unit; finish the DNN once all its cuts are fixed.

        Cut j (from 0) of an s-stage route lies in [previous cut + 1, n - (s - 1 - j)].
        """
        n = self.units[self.order[k]]
        stages = len(route)
        while len(cuts) < stages - 1 and lo == hi:
            cuts = (*cuts, lo)
            lo, hi = lo + 1, n - (stages - 1 - len(cuts))
        if len(cuts) == stages - 1:
            return (k + 1, (*done, tuple(zip([*cuts, n], route, strict=True))), None, (), 0, 0)
        return (k, done, route, cuts, lo, hi)

    def rollout(self, cursor: Cursor, rng: np.random.Generator) -> Key:
        k, done, route, cuts, lo, hi = cursor
        plans = list(done)
        if k < len(self.order):
            n = self.units[self.order[k]]
            if route is None:
                plans.append(random_plan(n, self.routes[k], rng))
            else:
                fixed = list(cuts)
                fixed.append(int(rng.integers(lo, hi + 1)))
                while len(fixed) < len(route) - 1:
                    last = n - (len(route) - 1 - len(fixed))
                    fixed.append(int(rng.integers(fixed[-1] + 1, last + 1)))
                plans.append(tuple(zip([*fixed, n], route, strict=True)))
            for j in range(k + 1, len(self.order)):
                plans.append(random_plan(self.units[self.order[j]], self.routes[j], rng))
        return _workload_order(self.order, plans)

    def path(self, key: Key) -> list[int] | None:
        """The decisions that build `key`, or None when it lies outside this space."""
        actions: list[int] = []
        cursor = self.root()
        for k, i in enumerate(self.order):
            plan = key[i]
            route = tuple(c for _, c in plan)
            if route not in self.routes[k]:
                return None
            actions.append(self.routes[k].index(route))
            cursor = self.step(cursor, actions[-1])
            while cursor[0] == k:
                _, _, _, cuts, lo, hi = cursor
                actions.append(0 if plan[len(cuts)][0] <= (lo + hi) // 2 else 1)
                cursor = self.step(cursor, actions[-1])
        return actions if _workload_order(self.order, cursor[1]) == key else None


class UnitSpace:
    """Cursor: (k, done plans in decision order, components of the current DNN's units so far)."""

    def __init__(self, units: Sequence[int], n_components: int, max_stages: int, order: Sequence[int]) -> None:
        self.units = tuple(units)
        self.order = tuple(order)
        self.n_components = n_components
        self.max_stages = min(max_stages, n_components)

    def root(self) -> Cursor:
        return (0, (), ())

    def actions(self, cursor: Cursor) -> tuple[int, ...]:
        k, _, assigned = cursor
        if k == len(self.order):
            return ()
        if not assigned:
            return tuple(range(self.n_components))
        used = list(dict.fromkeys(assigned))
        if len(used) >= self.max_stages:
            return (assigned[-1],)
        return (assigned[-1], *(c for c in range(self.n_components) if c not in used))

    def step(self, cursor: Cursor, action: int) -> Cursor:
        k, done, assigned = cursor
        assigned = (*assigned, action)
        n = self.units[self.order[k]]
        if len(set(assigned)) >= self.max_stages:  # no stage can open any more: the rest stays put
            assigned = assigned + (action,) * (n - len(assigned))
        if len(assigned) == n:
            return (k + 1, (*done, plan_from_indices(assigned)), ())
        return (k, done, assigned)

    def rollout(self, cursor: Cursor, rng: np.random.Generator) -> Key:
        """Uniformly random decisions, as OmniBoost's."""
        while cursor[0] < len(self.order):
            choices = self.actions(cursor)
            cursor = self.step(cursor, choices[int(rng.integers(len(choices)))])
        return _workload_order(self.order, cursor[1])

    def path(self, key: Key) -> list[int] | None:
        actions: list[int] = []
        cursor = self.root()
        for k, i in enumerate(self.order):
            assignment = expand(key[i])
            while cursor[0] == k:
                comp = assignment[len(cursor[2])]
                if comp not in self.actions(cursor):
                    return None
                actions.append(comp)
                cursor = self.step(cursor, comp)
        return actions if _workload_order(self.order, cursor[1]) == key else None


def _workload_order(order: Sequence[int], plans: Sequence[StagePlan]) -> Key:
    """Plans listed in decision order, rearranged into workload order."""
    key: list[StagePlan] = [()] * len(plans)
    for position, plan in zip(order, plans, strict=True):
        key[position] = plan
    return tuple(key)
