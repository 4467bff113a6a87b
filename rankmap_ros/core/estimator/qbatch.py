"""Q tensors for many mappings at once, built with array operations (the planner asks for thousands).

A mapping is reduced to an index array: the component of every (DNN, unit), -1 for padding.
Q is then one gather and one broadcast product: the one-hot component of each unit times its
(encoded) unit vector, which puts the vector in its component's column block and zeros in the
others, exactly as `qtensor.encode` does one mapping at a time.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from rankmap_ros.core.mapping import Mapping, MappingError, unit_count
from rankmap_ros.core.workload import Workload


def assignments(workload: Workload, mappings: Sequence[Mapping], components: Sequence[str]) -> np.ndarray:
    """(len(mappings), len(workload), max units of the workload) int8 component indices, -1 padding."""
    counts = [unit_count(m) for m in workload.models]
    total = sum(counts)
    column = {c: i for i, c in enumerate(components)}
    models = workload.models
    try:
        flat = np.fromiter(
            map(column.__getitem__, itertools.chain.from_iterable(d.assignment for m in mappings for d in m.dnns)),
            dtype=np.int8,
        )
    except KeyError:
        flat = None
    if (
        flat is None
        or len(flat) != total * len(mappings)
        or any(tuple(d.model for d in m.dnns) != models for m in mappings)
    ):
        for mapping in mappings:  # slow path: only to name what is wrong
            mapping.validate(workload, components)
        raise MappingError("mappings do not fit the workload")
    out = np.full((len(mappings), len(counts), max(counts)), -1, dtype=np.int8)
    dnn = np.repeat(np.arange(len(counts)), counts)
    unit = np.concatenate([np.arange(c) for c in counts])
    out[:, dnn, unit] = flat.reshape(len(mappings), total)
    return out


def q_batch(table: torch.Tensor, models: torch.Tensor, assign: torch.Tensor, n_components: int) -> torch.Tensor:
    """Q (B, D, U, n_components * dim) from a unit table (M, >=U, dim), model ids (B, D) and components (B, D, U).

    Ids of -1 mark padding; padded channels and rows come out as zeros.
    """
    units = assign.shape[-1]
    vec = table[models.clamp(min=0), :units]  # (B, D, U, dim)
    onehot = F.one_hot(assign.clamp(min=0).long(), n_components).to(vec.dtype)
    onehot = onehot * (assign >= 0).unsqueeze(-1).to(vec.dtype)
    q = onehot.unsqueeze(-1) * vec.unsqueeze(-2)  # (B, D, U, C, dim)
    return q.flatten(-2)
