"""The DNN zoo: the paper's pool of networks, each a chain of partition units."""

from rankmap_ros.core.zoo.catalog import (
    ZooError,
    build,
    canonical_name,
    file_architecture,
    get_spec,
    is_model_file,
    names,
    specs,
)
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitDef, UnitKind, UnitNet, UnitSlice

__all__ = [
    "ModelSpec",
    "UnitDef",
    "UnitKind",
    "UnitNet",
    "UnitSlice",
    "ZooError",
    "build",
    "canonical_name",
    "file_architecture",
    "get_spec",
    "is_model_file",
    "names",
    "specs",
]
