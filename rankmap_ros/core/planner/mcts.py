"""Monte Carlo Tree Search over a decision space, scored by a throughput model in batches.

Each iteration selects a path by UCT, expands one untried decision, completes the mapping with
uniformly random decisions (the rollout) and backs its score up the path. Rollouts are gathered
in batches and scored by one `predict` call (the estimator is a batched network); a virtual
loss on the selected path spreads the rollouts of one batch over the tree. The search returns
nothing itself: the Evaluator keeps the best complete mapping ever scored, which is the answer.

UCT compares children by their mean score, normalised by the range of scores seen so far, so
one exploration constant serves rewards in units of P (RankMap) and in inferences/s (OmniBoost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankmap_ros.core.planner.plans import Evaluator, Key
from rankmap_ros.core.planner.spaces import Cursor, DecisionSpace


@dataclass(frozen=True)
class MctsConfig:
    """exploration: the UCT constant on scores normalised to [0, 1]; batch: rollouts per predict call."""

    exploration: float = 1.0
    batch: int = 32


DEFAULT_MCTS = MctsConfig()
# Batches in a row that brought no new mapping: the tree has (nearly) exhausted a small space.
_IDLE_BATCHES = 20
# Rollouts tried per selected path to find a mapping not scored yet.
_REROLLS = 4


class _Node:
    __slots__ = ("children", "cursor", "done", "pending", "total", "untried", "visits")

    def __init__(self, cursor: Cursor, actions: tuple[int, ...]) -> None:
        self.cursor = cursor
        self.untried = list(actions)
        self.children: list[_Node] = []
        self.visits = 0
        self.pending = 0
        self.total = 0.0
        self.done = False  # every mapping below has been scored: selection skips it


class Tree:
    """A search tree that can be grown in several sittings (RankMap polishes its best mapping in between)."""

    def __init__(
        self,
        space: DecisionSpace,
        rng: np.random.Generator,
        config: MctsConfig = DEFAULT_MCTS,
    ) -> None:
        self.space = space
        self.rng = rng
        self.config = config
        self.root = _Node(space.root(), space.actions(space.root()))

    def seed(self, evaluator: Evaluator, keys: Sequence[Key]) -> None:
        """Score given mappings in one batch and back each up along its path (warm start, seeding).

        A key outside the space is scored, so it can still be the answer, but has no path to back up.
        """
        scores = evaluator.evaluate(list(keys))
        for key, score in zip(keys, scores, strict=True):
            actions = self.space.path(key)
            if actions is not None:
                _backup(_follow(self.space, self.root, actions), score)

    def grow(self, evaluator: Evaluator) -> None:
        """Iterate until the evaluator's budget is spent or the tree has no new mapping to offer."""
        idle = 0
        while not evaluator.exhausted() and idle < _IDLE_BATCHES:
            if self.root.done:
                return
            batch: list[tuple[list[_Node], Key]] = []
            fresh: set[Key] = set()
            for _ in range(max(1, min(self.config.batch, evaluator.remaining))):
                path = _select(self.space, self.root, evaluator, self.config, self.rng)
                for _ in range(_REROLLS):  # prefer a rollout that brings a mapping not scored yet
                    key = self.space.rollout(path[-1].cursor, self.rng)
                    if key not in evaluator.scores and key not in fresh:
                        break
                fresh.add(key)
                batch.append((path, key))
            before = evaluator.simulations
            scores = evaluator.evaluate([key for _, key in batch])
            idle = idle + 1 if evaluator.simulations == before else 0
            for (path, _), score in zip(batch, scores, strict=True):
                for node in path:
                    node.pending -= 1
                _backup(path, score)


def _select(
    space: DecisionSpace, root: _Node, evaluator: Evaluator, config: MctsConfig, rng: np.random.Generator
) -> list[_Node]:
    """Walk down by UCT to a node with an untried decision, expand it, and mark the path pending."""
    node = root
    path = [root]
    low, high = (evaluator.low, evaluator.high) if evaluator.simulations else (0.0, 1.0)
    span = high - low if high > low else 1.0
    while not node.untried:
        if not node.children:
            break  # a complete mapping: its rollout is itself
        parent_visits = node.visits + node.pending
        log_n = math.log(parent_visits) if parent_visits > 1 else 0.0
        best_child = None
        best_value = -math.inf
        for child in node.children:
            if child.done:
                continue
            n = child.visits + child.pending
            if n == 0:
                value = math.inf
            else:
                mean = (child.total + child.pending * low) / n
                value = (mean - low) / span + config.exploration * math.sqrt(log_n / n)
            if value > best_value:
                best_child, best_value = child, value
        if best_child is None:
            break  # everything below is scored; backup will mark this node done
        node = best_child
        path.append(node)
    if node.untried:
        action = node.untried.pop(int(rng.integers(len(node.untried))))
        cursor = space.step(node.cursor, action)
        child = _Node(cursor, space.actions(cursor))
        node.children.append(child)
        path.append(child)
    for step in path:
        step.pending += 1
    return path


def _follow(space: DecisionSpace, root: _Node, actions: Sequence[int]) -> list[_Node]:
    """The path of a given decision sequence, expanding the nodes it needs (warm start)."""
    node = root
    path = [root]
    for action in actions:
        cursor = space.step(node.cursor, action)
        child = next((c for c in node.children if c.cursor == cursor), None)
        if child is None:
            node.untried.remove(action)
            child = _Node(cursor, space.actions(cursor))
            node.children.append(child)
        node = child
        path.append(node)
    return path


def _backup(path: Sequence[_Node], score: float) -> None:
    for node in reversed(path):
        node.visits += 1
        node.total += score
        node.done = not node.untried and all(child.done for child in node.children)
