"""Stage specs of a mapping: how many torch threads each stage process gets."""

from __future__ import annotations

from rankmap_ros.core.mapping import DnnMapping, Mapping
from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.realtime import Policy
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime.stage import stage_specs


def test_stages_sharing_a_cpu_cluster_split_its_cores_unless_an_arbiter_serialises_them():
    platform = load_platform("orange_pi_5")  # big and little clusters of four cores each, and a GPU
    workload = Workload.from_models(["squeezenet_v2", "shufflenet", "mobilenet_v2"])
    mapping = Mapping(
        (
            DnnMapping("squeezenet_v2", "squeezenet_v2", ("big",) * 18),
            DnnMapping("shufflenet", "shufflenet", ("big",) * 9 + ("little",) * 9),
            DnnMapping("mobilenet_v2", "mobilenet_v2", ("big",) * 10 + ("gpu",) * 10),
        )
    )

    def threads(policy: Policy) -> dict[tuple[str, str], int]:
        specs = stage_specs(platform, workload, mapping, policy=policy)
        return {(s.dnn, s.component): s.threads for stages in specs.values() for s in stages}

    # three stages on the four big cores: one thread each (not 3 x 4); alone on little: all four
    assert threads(Policy.TIME_SHARING) == {
        ("squeezenet_v2", "big"): 1,
        ("shufflenet", "big"): 1,
        ("shufflenet", "little"): 4,
        ("mobilenet_v2", "big"): 1,
        ("mobilenet_v2", "gpu"): 1,
    }
    # one stage at a time holds a component under edf, with all of a cluster's cores
    assert threads(Policy.EDF) == {
        ("squeezenet_v2", "big"): 4,
        ("shufflenet", "big"): 4,
        ("shufflenet", "little"): 4,
        ("mobilenet_v2", "big"): 4,
        ("mobilenet_v2", "gpu"): 1,
    }
