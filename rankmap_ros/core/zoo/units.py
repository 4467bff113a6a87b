"""Networks as chains of partition units.

A partition unit is the smallest piece of a DNN that may become (part of) a pipeline stage:
exactly one tensor enters it and one tensor leaves it, so the network can be cut between any
two units and each slice runs on its own as a standalone module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import nn


class UnitKind(IntEnum):
    """What a unit mostly is; its integer value is the `t` entry of the unit vector."""

    CONV = 1
    DWCONV = 2
    FC = 3
    POOL = 4
    FIRE = 5
    INCEPTION = 6
    RESIDUAL = 7
    DENSE = 8
    TRANSITION = 9
    MBCONV = 10
    SHUFFLE = 11
    DETECT = 12


@dataclass(frozen=True)
class UnitDef:
    """A unit as a model declares it."""

    name: str
    kind: UnitKind
    module: nn.Module


class UnitSlice(nn.Module):
    """Units [start, stop) of a network, runnable on their own (shares the parent's modules)."""

    def __init__(self, units: Sequence[nn.Module], start: int, stop: int) -> None:
        super().__init__()
        self.start = start
        self.stop = stop
        self.units = nn.ModuleList(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = unit(x)
        return x


class UnitNet(nn.Module):
    """A DNN written as a sequence of partition units; `forward` runs them in order."""

    def __init__(self, units: Sequence[UnitDef]) -> None:
        super().__init__()
        if not units:
            raise ValueError("a UnitNet needs at least one unit")
        names = [u.name for u in units]
        if len(set(names)) != len(names):
            raise ValueError(f"unit names must be unique, got {names}")
        self.units = nn.ModuleList([u.module for u in units])
        self.unit_names: tuple[str, ...] = tuple(names)
        self.unit_kinds: tuple[UnitKind, ...] = tuple(u.kind for u in units)

    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self.units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units:
            x = unit(x)
        return x

    def slice(self, start: int, stop: int) -> UnitSlice:
        """Units [start, stop) as a standalone module (a pipeline stage)."""
        n = len(self.units)
        if not 0 <= start < stop <= n:
            raise IndexError(f"unit slice [{start}, {stop}) is outside [0, {n}) or empty")
        return UnitSlice([self.units[i] for i in range(start, stop)], start, stop)
