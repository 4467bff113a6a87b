"""ROS 2 message and service classes without rosidl.

rosbags parses the interface definitions (its stock ROS 2 store, our msg/ and srv/ files, and the
vision_msgs files we ship) and is the only CDR codec, so our bytes are the bytes of an independent
ROS 2 implementation. On top of its type store we generate classes that behave like rclpy's
generated ones: keyword construction with defaults, `bytes` for `byte` fields, constants as
class attributes, `get_fields_and_field_types()`. Numeric sequences and arrays are numpy arrays
(rclpy uses array.array / numpy; both expose the buffer protocol). A numeric sequence is set as
rclpy's generated setters allow, an array.array of its typecode or a sequence of Python numbers,
or as a received message holds it; a numpy array of our own is refused as there: code that
publishes here must publish under rclpy too.
"""

from __future__ import annotations

import array
import ast
import os
import re
from collections import UserList, UserString
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from rankmap_ros.ros.dds.distro import HUMBLE_LIKE, distro
from rankmap_ros.ros.share import PACKAGE, find_share

EMPTY_MEMBER = "structure_needs_at_least_one_member"
SHIPPED = Path(__file__).resolve().parents[1] / "interfaces"

_DTYPES = {
    "bool": np.dtype("?"),
    "byte": np.dtype("u1"),
    "char": np.dtype("u1"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "int16": np.dtype("<i2"),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "uint32": np.dtype("<u4"),
    "int64": np.dtype("<i8"),
    "uint64": np.dtype("<u8"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
}
_IDL_NAMES = {"byte": "octet", "char": "uint8", "float32": "float", "float64": "double"}
# Field defaults from .msg files that the stock rosbags store does not keep.
_STOCK_DEFAULTS = {"geometry_msgs/msg/Quaternion": {"w": 1.0}}


class InterfaceError(LookupError):
    """An interface name that no definition provides."""


class Byte(bytes):
    """A ROS `byte` as rclpy holds it (one-byte `bytes`) that rosbags' codec also accepts.

    rosbags packs and unpacks `byte` as a signed int8; the bits on the wire are the same octet.
    """

    __slots__ = ()

    def __new__(cls, value: bytes | int = b"\x00") -> Byte:
        # memoryview, not bytes(value): Python 3.10 reads a Byte's __index__ as a length
        raw = bytes((value % 256,)) if isinstance(value, int) else bytes(memoryview(value))
        if len(raw) != 1:
            raise ValueError(f"a byte field holds exactly one byte, not {raw!r}")
        return super().__new__(cls, raw)

    def __index__(self) -> int:
        return self[0] - 256 if self[0] > 127 else self[0]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type_text: str
    default: Callable[[], Any]
    coerce: Callable[[Any], Any] | None  # from the decoder: numpy arrays
    check: Callable[[Any], Any] | None = None  # from user code: what rclpy's setter accepts


class Message:
    """Base of every generated message class (mirrors rclpy's generated classes)."""

    __slots__ = ()
    _TYPE: ClassVar[str]
    _FIELDS: ClassVar[tuple[FieldSpec, ...]]
    _NAMES: ClassVar[frozenset[str]]
    _COERCE: ClassVar[dict[str, Callable[[Any], Any]]]
    _CHECK: ClassVar[dict[str, Callable[[Any], Any]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Keywords as rclpy's classes take them; positional values only from rosbags' decoder."""
        if len(args) > len(self._FIELDS):
            raise TypeError(f"{self._TYPE} takes at most {len(self._FIELDS)} positional values")
        if unknown := kwargs.keys() - self._NAMES:
            raise TypeError(f"{self._TYPE} has no field(s) {', '.join(sorted(unknown))}")
        for index, spec in enumerate(self._FIELDS):
            if index < len(args):
                value = args[index]
                object.__setattr__(self, spec.name, spec.coerce(value) if spec.coerce else value)
            elif spec.name in kwargs:
                setattr(self, spec.name, kwargs[spec.name])
            else:
                object.__setattr__(self, spec.name, spec.default())

    def __setattr__(self, name: str, value: Any) -> None:
        coerce = self._CHECK.get(name) or self._COERCE.get(name)
        object.__setattr__(self, name, coerce(value) if coerce else value)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_equal(getattr(self, s.name), getattr(other, s.name)) for s in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        body = ", ".join(f"{s.name}={getattr(self, s.name)!r}" for s in self._FIELDS)
        return f"{self._TYPE.replace('/msg/', '.msg.').replace('/srv/', '.srv.')}({body})"

    @classmethod
    def get_fields_and_field_types(cls) -> dict[str, str]:
        return {s.name: s.type_text for s in cls._FIELDS if s.name != EMPTY_MEMBER}


class Service:
    """Base of every generated service class: `Request` and `Response` message classes."""

    _TYPE: ClassVar[str]
    Request: ClassVar[type[Message]]
    Response: ClassVar[type[Message]]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)


def _as_array(dtype: np.dtype) -> Callable[[Any], np.ndarray]:
    def coerce(value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray) and value.dtype == dtype and value.flags.c_contiguous:
            return value
        if isinstance(value, (bytes, bytearray, memoryview)) and dtype.itemsize == 1:
            return np.frombuffer(value, dtype)
        return np.ascontiguousarray(value, dtype=dtype)

    return coerce


TYPECODES = {  # array.array's type code of each numeric ROS type, as rclpy uses them
    "int8": "b",
    "uint8": "B",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}


def _as_rclpy_sequence(name: str, typ: str) -> Callable[[Any], np.ndarray]:
    """What rosidl's generated setter of a numeric sequence accepts, with its message."""
    code, dtype = TYPECODES[typ], _DTYPES[typ]
    kind = float if typ.startswith("float") else int

    def check(value: Any) -> np.ndarray:
        if isinstance(value, array.array):
            if value.typecode != code:
                raise AssertionError(
                    f"The '{name}' array.array() must have the type code of '{code}', not '{value.typecode}'"
                )
            return np.frombuffer(value.tobytes(), dtype)
        if isinstance(value, (bytes, bytearray)) and code == "B":
            return np.frombuffer(bytes(value), dtype)
        if isinstance(value, np.ndarray) and not value.flags.writeable and value.dtype == dtype:
            return value  # a received message's field, passed on (under rclpy an array.array)
        if (
            not isinstance(value, (Sequence, AbstractSet, UserList))
            or isinstance(value, (str, UserString))
            or not all(isinstance(v, kind) for v in value)
        ):
            given = (
                f"a numpy array: pass array.array('{code}', a.tobytes())"
                if isinstance(value, np.ndarray)
                else f"{type(value).__name__} {value!r:.60}"
            )
            raise AssertionError(
                f"The '{name}' field must be a set or sequence and each value of type '{kind.__name__}', "
                f"as rclpy requires; got {given}"
            )
        return np.asarray(list(value), dtype)

    return check


# --- where definitions come from ------------------------------------------------------------


def interface_root() -> Path:
    """The directory holding this package's msg/ and srv/ (source tree or installed share/)."""
    given = os.environ.get("RANKMAP_ROS_INTERFACES", "")
    if given and (Path(given) / "msg").is_dir():
        return Path(given)
    found = find_share("msg")
    if found is not None and found.is_dir():
        return found.parent
    raise InterfaceError(f"no msg/ directory of {PACKAGE} found (set RANKMAP_ROS_INTERFACES)")


def _definition_files() -> Iterator[tuple[str, str, Path]]:
    """(package, kind, file) for our interfaces and the shipped third-party ones."""
    root = interface_root()
    for kind in ("msg", "srv"):
        for path in sorted((root / kind).glob(f"*.{kind}")):
            yield PACKAGE, kind, path
    for kind in ("msg", "srv"):
        for path in sorted(SHIPPED.glob(f"*/{kind}/*.{kind}")):
            yield path.parent.parent.name, kind, path


_DEFAULT_LINE = re.compile(r"^\s*([\w/]+(?:\[[^\]]*\])?)\s+(\w+)\s+([^=#\s][^#]*?)\s*(?:#.*)?$")


def _literal(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    try:
        return ast.literal_eval(text.strip().replace("true", "True").replace("false", "False"))
    except (ValueError, SyntaxError):
        return text.strip().strip("'\"")


def _msg_defaults(text: str) -> dict[str, Any]:
    """Field defaults (`float64 x 1.5`), which rosbags' parser reads but does not keep."""
    return {m.group(2): _literal(m.group(3)) for line in text.splitlines() if (m := _DEFAULT_LINE.match(line))}


def _with_member(fields: list[Any]) -> list[Any]:
    """rosidl gives an empty struct one uint8 member; the wire carries it."""
    return fields or [(EMPTY_MEMBER, (Nodetype.BASE, ("uint8", 0)))]


def parse_definitions() -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str], list[str]]:
    """(typesdict, defaults, message names, service names) of our and the shipped definitions."""
    types: dict[str, Any] = {}
    defaults: dict[str, dict[str, Any]] = {}
    messages: list[str] = []
    services: list[str] = []
    for package, kind, path in _definition_files():
        text = path.read_text()
        if kind == "msg":
            name = f"{package}/msg/{path.stem}"
            for key, (consts, fields) in get_types_from_msg(text, name).items():
                types[key] = (consts, _with_member(fields))
            defaults[name] = _msg_defaults(text)
            messages.append(name)
            continue
        parts = re.split(r"^---\s*$", text, maxsplit=1, flags=re.MULTILINE)
        if len(parts) != 2:
            raise InterfaceError(f"{path}: a service needs one '---' line")
        for part, suffix in zip(parts, ("Request", "Response"), strict=True):
            parsed = get_types_from_msg(part, f"{package}/msg/{path.stem}_{suffix}")
            ((consts, fields),) = parsed.values()
            name = f"{package}/srv/{path.stem}_{suffix}"
            types[name] = (consts, _with_member(fields))
            defaults[name] = _msg_defaults(part)
        services.append(f"{package}/srv/{path.stem}")
    return types, defaults, messages, services


# --- the type store and generated classes ----------------------------------------------------


@dataclass
class Registry:
    store: Typestore
    classes: dict[str, type[Message]]
    services: dict[str, type[Service]]
    own_messages: list[str]
    own_services: list[str]


def _field_spec(
    name: str, desc: Any, classes: dict[str, type[Message]], defaults: dict[str, Any], build: Callable[[str], None]
) -> FieldSpec:
    node, detail = desc
    if node == Nodetype.NAME:
        build(detail)
        nested = classes[detail]
        return FieldSpec(name, detail.replace("/msg/", "/"), nested, None)
    if node == Nodetype.BASE:
        typ, bound = detail
        text = f"{typ}<={bound}" if typ == "string" and bound else typ
        if typ == "string":
            value = str(defaults.get(name, ""))
            return FieldSpec(name, text, lambda: value, None)
        if typ == "byte":
            byte = Byte(int(defaults.get(name, 0)))
            return FieldSpec(name, "octet", lambda: byte, Byte)
        scalar = _DTYPES[typ].type(defaults.get(name, 0)).item()
        return FieldSpec(name, _IDL_NAMES.get(typ, typ), lambda: scalar, None)
    (sub_node, sub_detail), size = detail
    fixed = node == Nodetype.ARRAY
    if sub_node == Nodetype.NAME:
        build(sub_detail)
        nested = classes[sub_detail]
        elem = sub_detail.replace("/msg/", "/")
        if fixed:
            return FieldSpec(name, f"{elem}[{size}]", lambda: [nested() for _ in range(size)], None)
        return FieldSpec(name, f"sequence<{elem}{f', {size}' if size else ''}>", list, None)
    typ, bound = sub_detail
    elem = f"string<={bound}" if typ == "string" and bound else _IDL_NAMES.get(typ, typ)
    text = f"{elem}[{size}]" if fixed else f"sequence<{elem}{f', {size}' if size else ''}>"
    if typ == "string":
        if fixed:
            return FieldSpec(name, text, lambda: [""] * size, None)
        return FieldSpec(name, text, list, None)
    dtype = _DTYPES[typ]
    initial = np.asarray(defaults.get(name, np.zeros(size if fixed else 0)), dtype=dtype)
    check = _as_rclpy_sequence(name, typ) if not fixed and typ in TYPECODES else None
    return FieldSpec(name, text, initial.copy, _as_array(dtype), check)


def _make_class(
    typename: str, store: Typestore, classes: dict[str, type[Message]], defaults: dict[str, dict[str, Any]]
) -> None:
    if typename in classes:
        return
    consts, fields = store.fielddefs[typename]
    own = defaults.get(typename, _STOCK_DEFAULTS.get(typename, {}))
    specs = tuple(
        _field_spec(name, desc, classes, own, lambda t: _make_class(t, store, classes, defaults))
        for name, desc in fields
    )
    namespace: dict[str, Any] = {
        "__slots__": tuple(s.name for s in specs),
        "_TYPE": typename,
        "_FIELDS": specs,
        "_NAMES": frozenset(s.name for s in specs),
        "_COERCE": {s.name: s.coerce for s in specs if s.coerce},
        "_CHECK": {s.name: s.check for s in specs if s.check},
        "__msgtype__": typename,
    }
    for const_name, const_type, value in consts:
        namespace[const_name] = Byte(value) if const_type == "byte" else value
    classes[typename] = type(typename.rsplit("/", 1)[1], (Message,), namespace)


@cache
def registry() -> Registry:
    """Build once per process: stock store of the imitated distro plus our definitions."""
    store = get_typestore(Stores.ROS2_HUMBLE if distro() in HUMBLE_LIKE else Stores.ROS2_JAZZY)
    types, defaults, messages, services = parse_definitions()
    store.register(types)
    classes: dict[str, type[Message]] = {}
    for typename in list(store.fielddefs):
        _make_class(typename, store, classes, defaults)
    store.types.update(classes)  # rosbags now builds (deserializes into) our classes
    service_classes: dict[str, type[Service]] = {}
    for typename in {n.rsplit("_", 1)[0] for n in store.fielddefs if "/srv/" in n}:
        if f"{typename}_Request" in classes and f"{typename}_Response" in classes:
            service_classes[typename] = type(
                typename.rsplit("/", 1)[1],
                (Service,),
                {
                    "_TYPE": typename,
                    "Request": classes[f"{typename}_Request"],
                    "Response": classes[f"{typename}_Response"],
                },
            )
    return Registry(store, classes, service_classes, messages, services)


def normalize(name: str, kind: str) -> str:
    """'sensor_msgs/Image', 'sensor_msgs/msg/Image' or 'sensor_msgs.msg.Image' → 'sensor_msgs/msg/Image'."""
    parts = name.replace(".", "/").split("/")
    if len(parts) == 2:
        parts = [parts[0], kind, parts[1]]
    if len(parts) != 3 or parts[1] != kind:
        raise InterfaceError(f"{name!r} is not a {kind} name like 'pkg/{kind}/Name'")
    return "/".join(parts)


def get_message(name: str) -> type[Message]:
    typename = normalize(name, "msg")
    try:
        return registry().classes[typename]
    except KeyError:
        raise InterfaceError(f"unknown message type {typename!r}") from None


def get_service(name: str) -> type[Service]:
    typename = normalize(name, "srv")
    try:
        return registry().services[typename]
    except KeyError:
        raise InterfaceError(f"unknown service type {typename!r}") from None


def serialize(message: Message) -> bytes:
    """CDR with the little-endian encapsulation header, as rmw_cyclonedds writes it."""
    return bytes(registry().store.serialize_cdr(message, message._TYPE))


def deserialize(data: bytes | memoryview, cls: type[Message]) -> Message:
    return registry().store.deserialize_cdr(data, cls._TYPE)  # type: ignore[return-value]


@cache
def type_hash(typename: str) -> str:
    """RIHS01 hash as rosidl computes it: `char` is uint8 after the IDL translation."""
    return _hashing_store().hash_rihs01(typename)


@cache
def _hashing_store() -> Typestore:
    hashing = Typestore()
    for name, (consts, fields) in registry().store.fielddefs.items():
        hashing.fielddefs[name] = (consts, [(n, _char_as_uint8(d)) for n, d in fields])
    return hashing


def _char_as_uint8(desc: Any) -> Any:
    node, detail = desc
    if node == Nodetype.BASE and detail[0] == "char":
        return (node, ("uint8", detail[1]))
    if node in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return (node, (_char_as_uint8(detail[0]), detail[1]))
    return desc
