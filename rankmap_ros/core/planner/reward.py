"""Objectives: what a planner maximises, with the paper's disqualification of starving mappings.

RankMap's reward is the paper's O(M)ᵀp. In dynamic mode p is each DNN's computational demand
(priorities.py), so O(M)ᵀp is proportional to the sum of potential throughputs P_i. In static
mode a user's vector s is a share of attention: it is scaled by demand too, giving sᵀP(M).
Multiplying raw inferences/s by s directly would let 0.1 on SqueezeNet (120 inf/s) outweigh
0.7 on VGG-16 (5 inf/s), and a priority would mean nothing for a heavy DNN (docs/PLANNER.md).
Scores are reported in units of P: the share-weighted mean potential throughput.

A DNN whose sensor delivers a known input rate cannot answer more images than arrive: its
rate counts up to INPUT_HEADROOM times that rate and no further (capacity beyond it serves
nobody, so the search gives it to the other DNNs), and its threshold is at most that rate.

A mapping under which any DNN's predicted rate falls below its threshold th is disqualified:
its score is negative, below every qualifying mapping's, graded by how far it falls short so
that a search in a workload where few mappings qualify still moves towards them, and bounded
so that the averages in the search tree stay meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import ideal_throughput
from rankmap_ros.core.workload import Workload

# Default threshold: a DNN with no minimum rate must keep 10% of its isolated (alone on the GPU)
# rate. That is twice the starvation line of the experiments (P < 0.05, experiments/motivation.py),
# a margin for the throughput model's error so that a predicted 0.1 does not land below 0.05.
DEFAULT_MIN_POTENTIAL = 0.1
# A capped DNN's rate counts up to this multiple of its input rate: planned to answer exactly its
# input rate, it would fall short by the throughput model's error (up to ~30% on a measured host,
# docs/BENCHMARKS.md); measured in the demo, a cap of 1.0 left the top-priority DNN at 73-83% of
# its camera's rate (docs/ROS_NODES.md, Re-planning).
INPUT_HEADROOM = 1.5
# Score of a disqualified mapping: DISQUALIFIED minus its mean relative shortfall, so in [-2, -1).
DISQUALIFIED = -1.0


@dataclass(frozen=True)
class Objective:
    """score = weightsᵀ rates when every rate meets its threshold, else a disqualified score."""

    name: str
    weights: np.ndarray
    thresholds: np.ndarray
    priorities: tuple[float, ...] | None = None
    caps: np.ndarray | None = None  # per DNN, the most inferences/s that count (its input rate)

    def scores(self, rates: np.ndarray) -> np.ndarray:
        """One score per row of a (mappings, DNNs) array of inferences/s."""
        rates = self.counted(np.atleast_2d(rates))
        value = rates @ self.weights
        with np.errstate(divide="ignore", invalid="ignore"):
            shortfall = np.where(self.thresholds > 0, 1.0 - rates / self.thresholds, 0.0)
        shortfall = np.clip(shortfall, 0.0, 1.0)
        failed = (shortfall > 0).any(axis=1)
        return np.where(failed, DISQUALIFIED - shortfall.mean(axis=1), value)

    def feasible(self, rates: Sequence[float] | np.ndarray) -> bool:
        return bool(np.all(self.counted(np.asarray(rates)) >= self.thresholds))

    def counted(self, rates: np.ndarray) -> np.ndarray:
        return rates if self.caps is None else np.minimum(rates, self.caps)


def thresholds(platform: Platform, workload: Workload, min_potential: float = DEFAULT_MIN_POTENTIAL) -> np.ndarray:
    """th per DNN (inferences/s): its min_rate when given, else min_potential times its isolated rate.

    A real-time DNN needs at least one job per relative deadline (issue 7), whichever is higher;
    none asks more than its input rate, when known.
    """
    return np.array(
        [
            min(
                max(
                    d.min_rate if d.min_rate is not None else min_potential * ideal_throughput(platform, d.model),
                    d.task.threshold_rate,
                ),
                math.inf if d.input_rate is None else d.input_rate,
            )
            for d in workload.dnns
        ]
    )


def input_caps(workload: Workload) -> np.ndarray | None:
    """Per DNN the most inferences/s that count (inf where its input rate is unknown); None when none is known."""
    if all(d.input_rate is None for d in workload.dnns):
        return None
    return np.array([math.inf if d.input_rate is None else INPUT_HEADROOM * d.input_rate for d in workload.dnns])


def rankmap_objective(
    platform: Platform,
    workload: Workload,
    shares: Sequence[float],
    priorities: Sequence[float],
    min_potential: float = DEFAULT_MIN_POTENTIAL,
) -> Objective:
    """sᵀP(M) subject to O(M)_i >= th_i for every DNN i; `priorities` is the vector reported as p."""
    ideal = np.array([ideal_throughput(platform, d.model) for d in workload.dnns])
    return Objective(
        name="rankmap",
        weights=np.asarray(shares, dtype=float) / ideal,
        thresholds=thresholds(platform, workload, min_potential),
        priorities=tuple(priorities),
        caps=input_caps(workload),
    )


def mean_throughput_objective(workload: Workload) -> Objective:
    """The mean of the DNNs' inferences/s, no priorities, no thresholds (OmniBoost, GA)."""
    n = len(workload)
    return Objective(name="mean_throughput", weights=np.full(n, 1.0 / n), thresholds=np.zeros(n))
