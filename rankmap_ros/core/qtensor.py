"""The estimator's input tensor Q for a (workload, mapping) pair (paper Section IV.A).

Q has a channel per DNN, a row per unit and one column block per component; a unit's vector
sits in the block of the component that runs it and zeros fill the other blocks. Sizes are
fixed (maximum DNNs, maximum units) so that every workload gives a tensor of the same shape;
padding channels and rows are zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rankmap_ros.core.mapping import Mapping, MappingError
from rankmap_ros.core.unitvec import VECTOR_DIM, vectors
from rankmap_ros.core.workload import DEFAULT_MAX_DNNS, Workload

# The deepest zoo model has fewer units than this; checked by the tests.
DEFAULT_MAX_UNITS = 32

UnitVectors = Callable[[str], np.ndarray]


def q_shape(
    n_components: int,
    dim: int = VECTOR_DIM,
    max_dnns: int = DEFAULT_MAX_DNNS,
    max_units: int = DEFAULT_MAX_UNITS,
) -> tuple[int, int, int]:
    return (max_dnns, max_units, n_components * dim)


def encode(
    workload: Workload,
    mapping: Mapping,
    components: Sequence[str],
    unit_vectors: UnitVectors = vectors,
    max_dnns: int = DEFAULT_MAX_DNNS,
    max_units: int = DEFAULT_MAX_UNITS,
) -> np.ndarray:
    """Q as float32 (max_dnns, max_units, len(components) * dim).

    `unit_vectors(model)` gives the (units, dim) vectors: the raw 22-dim ones by default, or a
    VQ-VAE's compressed ones.
    """
    mapping.validate(workload, components)
    if len(workload) > max_dnns:
        raise MappingError(f"workload has {len(workload)} DNNs, Q holds at most {max_dnns}")
    column = {name: i for i, name in enumerate(components)}
    per_dnn = [np.asarray(unit_vectors(dnn.model), dtype=np.float32) for dnn in mapping.dnns]
    for dnn, vecs in zip(mapping.dnns, per_dnn, strict=True):
        if len(vecs) > max_units:
            raise MappingError(f"model {dnn.model} has {len(vecs)} units, Q holds at most {max_units}")
    dim = per_dnn[0].shape[1]
    q = np.zeros(q_shape(len(components), dim, max_dnns, max_units), dtype=np.float32)
    for channel, (dnn, vecs) in enumerate(zip(mapping.dnns, per_dnn, strict=True)):
        for row, component in enumerate(dnn.assignment):
            block = column[component]
            q[channel, row, block * dim : (block + 1) * dim] = vecs[row]
    return q
