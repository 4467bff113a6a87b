"""Seeded message values and an independent rosbags reference for the byte-equality checks.

The reference store is plain rosbags: its stock Jazzy store plus our definition files parsed here
with rosbags' own parser, serialized with rosbags' own classes. The only ROS rule added by hand is
rosidl's: an empty structure gets one `uint8 structure_needs_at_least_one_member`.
"""

from __future__ import annotations

import array
import random
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "rankmap_ros" / "ros" / "interfaces"
STANDARD_PUBLISHED = [
    "sensor_msgs/msg/Image",
    "std_msgs/msg/Header",
    "diagnostic_msgs/msg/DiagnosticArray",
    "diagnostic_msgs/msg/DiagnosticStatus",
    "std_msgs/msg/Float64MultiArray",
    "rmw_dds_common/msg/ParticipantEntitiesInfo",
    "rcl_interfaces/msg/ParameterDescriptor",
    "rcl_interfaces/msg/Log",
]
DTYPES = {
    "bool": "?", "byte": "u1", "char": "u1", "int8": "i1", "uint8": "u1", "int16": "<i2", "uint16": "<u2",
    "int32": "<i4", "uint32": "<u4", "int64": "<i8", "uint64": "<u8", "float32": "<f4", "float64": "<f8",
}  # fmt: skip
TEXT = ["", "a", "dnn_0", "größe", "目标", "🤖 robot", "x" * 37]


def reference_store() -> Any:
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    for path in sorted((ROOT / "msg").glob("*.msg")) + sorted(SHIPPED.glob("*/msg/*.msg")):
        package = "rankmap_ros" if path.parent == ROOT / "msg" else path.parent.parent.name
        types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    for path in sorted((ROOT / "srv").glob("*.srv")) + sorted(SHIPPED.glob("*/srv/*.srv")):
        package = "rankmap_ros" if path.parent == ROOT / "srv" else path.parent.parent.name
        request, response = re.split(r"^---\s*$", path.read_text(), maxsplit=1, flags=re.MULTILINE)
        for text, suffix in ((request, "Request"), (response, "Response")):
            ((consts, fields),) = get_types_from_msg(text, f"{package}/msg/{path.stem}_{suffix}").values()
            fields = fields or [("structure_needs_at_least_one_member", (Nodetype.BASE, ("uint8", 0)))]
            types[f"{package}/srv/{path.stem}_{suffix}"] = (consts, fields)
    store.register(types)
    return store


def own_messages() -> list[str]:
    names = [f"rankmap_ros/msg/{p.stem}" for p in sorted((ROOT / "msg").glob("*.msg"))]
    names += [f"{p.parent.parent.name}/msg/{p.stem}" for p in sorted(SHIPPED.glob("*/msg/*.msg"))]
    return names


def own_services() -> list[str]:
    names = [f"rankmap_ros/srv/{p.stem}" for p in sorted((ROOT / "srv").glob("*.srv"))]
    names += [f"{p.parent.parent.name}/srv/{p.stem}" for p in sorted(SHIPPED.glob("*/srv/*.srv"))]
    return names


def _value(store: Any, desc: Any, rng: random.Random) -> Any:
    node, detail = desc
    if node == Nodetype.NAME:
        return values(store, detail, rng)
    if node == Nodetype.BASE:
        typ, bound = detail
        if typ == "string":
            text = rng.choice(TEXT)
            return text[:bound] if bound else text
        if typ == "bool":
            return rng.random() < 0.5
        if typ.startswith("float"):
            value = rng.choice([0.0, -1.5, 3.25, 1e-3, float(rng.randint(-1000, 1000)) / 7])
            return float(np.float32(value)) if typ == "float32" else value
        info = np.iinfo("i1" if typ == "byte" else DTYPES[typ])  # rosbags holds a byte as int8
        return rng.randint(int(info.min), int(info.max))
    sub, size = detail
    count = size if node == Nodetype.ARRAY else rng.randint(0, size or 4)
    items = [_value(store, sub, rng) for _ in range(count)]
    if sub[0] == Nodetype.BASE and sub[1][0] == "byte":  # a byte sequence is uint8 (ParameterValue.byte_array_value)
        return np.array(items, dtype="i1").view("u1")
    if sub[0] == Nodetype.BASE and sub[1][0] != "string":
        return np.array(items, dtype=DTYPES[sub[1][0]])
    return items


def values(store: Any, typename: str, rng: random.Random) -> dict[str, Any]:
    return {name: _value(store, desc, rng) for name, desc in store.fielddefs[typename][1]}


def seeded(store: Any, typename: str, seed: int = 7) -> dict[str, Any]:
    return values(store, typename, random.Random(zlib.crc32(typename.encode()) + seed))


def reference_object(store: Any, typename: str, data: dict[str, Any]) -> Any:
    """rosbags' own class for the type, built from the plain values."""
    fields = store.fielddefs[typename][1]
    args = []
    for name, (node, detail) in fields:
        value = data[name]
        if node == Nodetype.NAME:
            value = reference_object(store, detail, value)
        elif node in (Nodetype.ARRAY, Nodetype.SEQUENCE) and detail[0][0] == Nodetype.NAME:
            value = [reference_object(store, detail[0][1], v) for v in value]
        args.append(value)
    return store.types[typename](*args)


def reference_cdr(store: Any, typename: str, data: dict[str, Any]) -> bytes:
    return bytes(store.serialize_cdr(reference_object(store, typename, data), typename))


def our_object(typename: str, data: dict[str, Any]) -> Any:
    """Our class for the type, built the way node code builds messages (keywords, bytes for byte)."""
    from rankmap_ros.ros.dds.types import TYPECODES, get_message, registry

    cls = registry().classes[typename] if "/srv/" in typename else get_message(typename)
    fields = dict(registry().store.fielddefs[typename][1])
    kwargs = {}
    for name, plain in data.items():
        node, detail = fields[name]
        if node == Nodetype.NAME:
            kwargs[name] = our_object(detail, plain)
        elif node in (Nodetype.ARRAY, Nodetype.SEQUENCE) and detail[0][0] == Nodetype.NAME:
            kwargs[name] = [our_object(detail[0][1], v) for v in plain]
        elif node == Nodetype.BASE and detail[0] == "byte":
            kwargs[name] = bytes((plain % 256,))
        elif node == Nodetype.SEQUENCE and detail[0][0] == Nodetype.BASE and detail[0][1][0] in TYPECODES:
            code = TYPECODES[detail[0][1][0]]  # rclpy's setters take array.array, not numpy
            kwargs[name] = array.array(code, np.asarray(plain, np.dtype(code)).tobytes())
        else:
            kwargs[name] = plain
    return cls(**kwargs)
