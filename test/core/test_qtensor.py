"""Q: a channel per DNN, a row per unit, the unit vector in its component's column block."""

import numpy as np
import pytest

from rankmap_ros.core.mapping import DnnMapping, Mapping, MappingError
from rankmap_ros.core.qtensor import DEFAULT_MAX_UNITS, encode, q_shape
from rankmap_ros.core.unitvec import VECTOR_DIM, vectors
from rankmap_ros.core.workload import Workload

COMPONENTS = ("gpu", "big", "little")


def test_vectors_sit_in_their_components_block() -> None:
    workload = Workload.from_models(["alexnet", "squeezenet_v2"])
    alex = ("gpu", "gpu", "big", "big", "big", "little", "little", "gpu")
    mapping = Mapping(
        (DnnMapping("alexnet", "alexnet", alex), Mapping.all_on(workload, "big").dnns[1]),
    )
    q = encode(workload, mapping, COMPONENTS)
    assert q.shape == q_shape(3) == (5, DEFAULT_MAX_UNITS, 3 * VECTOR_DIM)
    vecs = vectors("alexnet")
    for row, component in enumerate(alex):
        block = COMPONENTS.index(component)
        assert np.array_equal(q[0, row, block * VECTOR_DIM : (block + 1) * VECTOR_DIM], vecs[row])
        others = [b for b in range(3) if b != block]
        for b in others:
            assert not q[0, row, b * VECTOR_DIM : (b + 1) * VECTOR_DIM].any()
    assert not q[0, len(alex) :].any()  # padding rows
    assert not q[2:].any()  # padding channels
    n_sq = len(vectors("squeezenet_v2"))
    assert np.array_equal(q[1, :n_sq, VECTOR_DIM : 2 * VECTOR_DIM], vectors("squeezenet_v2"))


def test_compressed_vectors_change_the_block_width() -> None:
    workload = Workload.from_models(["alexnet"])
    q = encode(workload, Mapping.all_on(workload, "little"), COMPONENTS, unit_vectors=lambda m: vectors(m)[:, :16])
    assert q.shape == (5, DEFAULT_MAX_UNITS, 48)
    assert q[0, :8, 32:].any() and not q[0, :, :32].any()


def test_invalid_mapping_is_rejected() -> None:
    workload = Workload.from_models(["alexnet"])
    with pytest.raises(MappingError, match="unknown component 'npu'"):
        encode(workload, Mapping.all_on(workload, "npu"), COMPONENTS)
