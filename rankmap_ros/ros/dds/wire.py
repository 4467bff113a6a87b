"""DDS topic types that carry ready-made CDR.

cyclonedds-python needs an IdlStruct per topic: it supplies the DDS type name and the XTypes
type information, both generated here from the same rosbags definitions as the codec so that two
of our processes always agree. Its own (slow for images) serializer is bypassed: `serialize()`
returns the bytes rosbags produced, and `deserialize()` hands the raw payload back as `RawSample`.
Services prepend rmw_cyclonedds' in-band request header (client guid, sequence number).
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any

from cyclonedds.idl import IdlStruct, make_idl_struct
from cyclonedds.idl import types as idl
from rosbags.interfaces import Nodetype

from rankmap_ros.ros.dds.types import registry

_PRIMITIVES: dict[str, Any] = {
    "bool": bool,
    "byte": idl.byte,
    "char": idl.uint8,
    "int8": idl.int8,
    "uint8": idl.uint8,
    "int16": idl.int16,
    "uint16": idl.uint16,
    "int32": idl.int32,
    "uint32": idl.uint32,
    "int64": idl.int64,
    "uint64": idl.uint64,
    "float32": idl.float32,
    "float64": idl.float64,
}
REQUEST_HEADER = struct.Struct("<Qq")


class RawSample(bytes):
    """One received payload (encapsulation header included); the reader attaches `sample_info`."""

    sample_info: Any


def dds_type_name(typename: str) -> str:
    """'sensor_msgs/msg/Image' → 'sensor_msgs::msg::dds_::Image_' (rmw's typesupport naming)."""
    package, kind, name = typename.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def _member(desc: Any) -> Any:
    node, detail = desc
    if node == Nodetype.NAME:
        return _struct(detail)
    if node == Nodetype.BASE:
        typ, bound = detail
        if typ == "string":
            return idl.bounded_str[bound] if bound else str
        return _PRIMITIVES[typ]
    sub, size = detail
    if node == Nodetype.ARRAY:
        return idl.array[_member(sub), size]
    return idl.sequence[_member(sub), size] if size else idl.sequence[_member(sub)]


def _fields(typename: str) -> dict[str, Any]:
    return {name: _member(desc) for name, desc in registry().store.fielddefs[typename][1]}


@cache
def _struct(typename: str) -> type[IdlStruct]:
    return make_idl_struct(typename.rsplit("/", 1)[1] + "_", dds_type_name(typename), _fields(typename))


def _raw_serialize(self: Any, buffer: Any = None, endianness: Any = None, use_version_2: Any = None) -> bytes:
    return self._cdr


def _raw_deserialize(cls: Any, data: bytes, has_header: bool = True, use_version_2: Any = None) -> RawSample:
    return RawSample(data)


def _no_key(cls: Any, data: bytes, has_header: bool = True, use_version_2: Any = None) -> None:
    return None


@cache
def topic_type(typename: str, request_header: bool = False) -> type[IdlStruct]:
    """The IdlStruct a DDS Topic of this ROS type is created with (raw CDR in and out)."""
    if request_header:
        fields = {"_client_guid": idl.uint64, "_sequence_number": idl.int64, **_fields(typename)}
        cls = make_idl_struct(typename.rsplit("/", 1)[1] + "_", dds_type_name(typename), fields)
    else:
        cls = _struct(typename)
    cls.serialize = _raw_serialize
    cls.deserialize = classmethod(_raw_deserialize)
    cls.deserialize_key = classmethod(_no_key)
    return cls


def wrap(cls: type[IdlStruct], cdr: bytes) -> IdlStruct:
    """A sample of the topic type whose serialization is `cdr`."""
    sample = object.__new__(cls)
    sample._cdr = cdr
    return sample


def add_request_header(cdr: bytes, guid: int, sequence: int) -> bytes:
    """Insert rmw_cyclonedds' header after the encapsulation; 16 bytes keep the 8-byte alignment."""
    return cdr[:4] + REQUEST_HEADER.pack(guid, sequence) + cdr[4:]


def split_request_header(payload: bytes) -> tuple[int, int, bytes]:
    guid, sequence = REQUEST_HEADER.unpack_from(payload, 4)
    return guid, sequence, payload[:4] + payload[20:]
