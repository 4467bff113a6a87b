"""rclpy's parameters: Parameter, its types, and the per-node store with descriptors and callbacks.

Descriptors and results are the rcl_interfaces messages, as in rclpy, so node code builds
`ParameterDescriptor(description=..., read_only=True, floating_point_range=[FloatingPointRange(...)])`
the same way in both worlds. Static typing (the default since Galactic) is enforced as strictly as
rclpy does it (an integer is no double: `-p rate:=30` for a double fails here as it fails on a
robot), as are ranges and read-only; `add_on_set_parameters_callback` callbacks can refuse a change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

from rankmap_ros.ros.dds.types import get_message

ParameterDescriptor = get_message("rcl_interfaces/msg/ParameterDescriptor")
ParameterValue = get_message("rcl_interfaces/msg/ParameterValue")
IntegerRange = get_message("rcl_interfaces/msg/IntegerRange")
FloatingPointRange = get_message("rcl_interfaces/msg/FloatingPointRange")
SetParametersResult = get_message("rcl_interfaces/msg/SetParametersResult")

_TOLERANCE = 1e-9


class ParameterException(Exception):  # noqa: N818 - rclpy's names
    """Base of rclpy's parameter errors."""


class ParameterNotDeclaredException(ParameterException):
    pass


class ParameterAlreadyDeclaredException(ParameterException):
    pass


class InvalidParameterException(ParameterException):
    pass


class InvalidParameterValueException(ParameterException):
    pass


class InvalidParameterTypeException(ParameterException):
    pass


class ParameterImmutableException(ParameterException):
    pass


class ParameterUninitializedException(ParameterException):
    pass


class _Type(IntEnum):
    NOT_SET = 0
    BOOL = 1
    INTEGER = 2
    DOUBLE = 3
    STRING = 4
    BYTE_ARRAY = 5
    BOOL_ARRAY = 6
    INTEGER_ARRAY = 7
    DOUBLE_ARRAY = 8
    STRING_ARRAY = 9

    @classmethod
    def from_parameter_value(cls, value: Any) -> _Type:
        if value is None:
            return cls.NOT_SET
        if isinstance(value, bool):
            return cls.BOOL
        if isinstance(value, int):
            return cls.INTEGER
        if isinstance(value, float):
            return cls.DOUBLE
        if isinstance(value, str):
            return cls.STRING
        if isinstance(value, (bytes, bytearray)):
            return cls.BYTE_ARRAY
        if isinstance(value, (list, tuple)):
            if all(isinstance(v, bool) for v in value) and value:
                return cls.BOOL_ARRAY
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value:
                return cls.INTEGER_ARRAY
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and value:
                return cls.DOUBLE_ARRAY
            if all(isinstance(v, str) for v in value):
                return cls.STRING_ARRAY
        raise TypeError(f"the parameter value {value!r} has no ROS parameter type")

    def check(self, value: Any) -> bool:
        if self == _Type.NOT_SET:
            return value is None
        try:
            found = _Type.from_parameter_value(value)
        except TypeError:
            return False
        if found == self:
            return True
        return isinstance(value, (list, tuple)) and not value and self.name.endswith("_ARRAY")


class Parameter:
    """A named, typed value (rclpy.parameter.Parameter)."""

    Type = _Type

    def __init__(self, name: str, type_: _Type | None = None, value: Any = None) -> None:
        if type_ is None:
            type_ = _Type.from_parameter_value(value)
        if not type_.check(value):
            raise ValueError(f"type {type_.name} and value {value!r} of parameter {name!r} do not match")
        if type_ == _Type.DOUBLE_ARRAY and value is not None:  # [1, 2.5]: a double array of floats
            value = [float(v) for v in value]
        self._name = name
        self._type = type_
        self._value = value

    @property
    def name(self) -> str:
        return self._name

    @property
    def type_(self) -> _Type:
        return self._type

    @property
    def value(self) -> Any:
        return self._value

    def get_parameter_value(self) -> Any:
        msg = ParameterValue(type=int(self._type))
        if self._type in _VALUE_FIELDS:
            setattr(msg, _VALUE_FIELDS[self._type], self._value)
        return msg

    @classmethod
    def from_parameter_msg(cls, msg: Any) -> Parameter:
        """A Parameter from rcl_interfaces/msg/Parameter, as a set_parameters request carries it."""
        try:
            kind = _Type(msg.value.type)
        except ValueError:
            raise ValueError(f"parameter {msg.name!r} has the unknown type {msg.value.type}") from None
        value = getattr(msg.value, _VALUE_FIELDS[kind]) if kind in _VALUE_FIELDS else None
        if kind == _Type.BYTE_ARRAY:
            value = bytes(bytearray(int(b) % 256 for b in value))
        elif kind.name.endswith("_ARRAY"):
            value = [v.item() if hasattr(v, "item") else v for v in value]
        return cls(msg.name, kind, value)

    def to_parameter_msg(self) -> Any:
        return get_message("rcl_interfaces/msg/Parameter")(name=self._name, value=self.get_parameter_value())

    def __repr__(self) -> str:
        return f"Parameter({self._name!r}, {self._type.name}, {self._value!r})"


OnSet = Callable[[list[Parameter]], Any]
_VALUE_FIELDS = {
    _Type.BOOL: "bool_value",
    _Type.INTEGER: "integer_value",
    _Type.DOUBLE: "double_value",
    _Type.STRING: "string_value",
    _Type.BYTE_ARRAY: "byte_array_value",
    _Type.BOOL_ARRAY: "bool_array_value",
    _Type.INTEGER_ARRAY: "integer_array_value",
    _Type.DOUBLE_ARRAY: "double_array_value",
    _Type.STRING_ARRAY: "string_array_value",
}


def _in_range(value: Any, descriptor: Any) -> str | None:
    """None when the value satisfies the descriptor's range, else why not."""
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, bool):
            continue
        if descriptor.integer_range and isinstance(item, int):
            r = descriptor.integer_range[0]
            if not r.from_value <= item <= r.to_value:
                return f"{item} is outside [{r.from_value}, {r.to_value}]"
            if r.step and (item - r.from_value) % r.step and item != r.to_value:
                return f"{item} is not on the step {r.step} from {r.from_value}"
        if descriptor.floating_point_range and isinstance(item, float):
            r = descriptor.floating_point_range[0]
            if math.isnan(item) or not r.from_value - _TOLERANCE <= item <= r.to_value + _TOLERANCE:
                return f"{item} is outside [{r.from_value}, {r.to_value}]"
            if r.step:
                steps = (item - r.from_value) / r.step
                if abs(steps - round(steps)) > _TOLERANCE and abs(item - r.to_value) > _TOLERANCE:
                    return f"{item} is not on the step {r.step} from {r.from_value}"
    return None


class ParameterStore:
    """The declared parameters of one node with their descriptors, overrides and set callbacks."""

    def __init__(self, overrides: dict[str, Any], allow_undeclared: bool = False) -> None:
        self.overrides = overrides
        self.allow_undeclared = allow_undeclared
        self.values: dict[str, Parameter] = {}
        self.descriptors: dict[str, Any] = {}
        self.callbacks: list[OnSet] = []

    def declare(self, name: str, value: Any, descriptor: Any, ignore_override: bool) -> Parameter:
        if name in self.values:
            raise ParameterAlreadyDeclaredException(f"parameter {name!r} is already declared")
        descriptor = descriptor if descriptor is not None else ParameterDescriptor()
        descriptor.name = name
        if isinstance(value, _Type):
            declared_type, value = value, None
        else:
            declared_type = _Type.from_parameter_value(value)
        if not ignore_override and name in self.overrides:
            value = self.overrides[name]
            if declared_type != _Type.NOT_SET and not declared_type.check(value):
                raise InvalidParameterTypeException(
                    f"parameter {name!r} is {declared_type.name} but was given {value!r}"
                )
        param_type = declared_type if declared_type != _Type.NOT_SET else _Type.from_parameter_value(value)
        descriptor.type = int(param_type)
        if value is None and param_type != _Type.NOT_SET:
            self.values[name] = _uninitialized(name, param_type)
            self.descriptors[name] = descriptor
            return self.values[name]
        parameter = Parameter(name, param_type, value)
        reason = self._refusal([parameter], descriptor_for={name: descriptor})
        if reason:
            raise InvalidParameterValueException(reason)
        self.values[name] = parameter
        self.descriptors[name] = descriptor
        return parameter

    def get(self, name: str) -> Parameter:
        if name in self.values:
            parameter = self.values[name]
            if isinstance(parameter, _Uninitialized):
                raise ParameterUninitializedException(f"parameter {name!r} is declared but has no value")
            return parameter
        if self.allow_undeclared:
            return Parameter(name, _Type.NOT_SET, None)
        raise ParameterNotDeclaredException(f"parameter {name!r} is not declared")

    def set_atomically(self, parameters: Sequence[Parameter]) -> Any:
        """All of them or, with the first reason to refuse, none."""
        for parameter in parameters:
            if parameter.name not in self.values and not self.allow_undeclared:
                raise ParameterNotDeclaredException(f"parameter {parameter.name!r} is not declared")
        reason = self._refusal(list(parameters), descriptor_for=self.descriptors)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        for given in parameters:
            descriptor = self.descriptors.get(given.name)
            declared = _Type(descriptor.type) if descriptor is not None else _Type.NOT_SET
            typed = declared not in (_Type.NOT_SET, given.type_) and not descriptor.dynamic_typing
            self.values[given.name] = Parameter(given.name, declared, given.value) if typed else given
            if descriptor is None:  # allowed undeclared: any type later, as rclpy gives it
                self.descriptors[given.name] = ParameterDescriptor(name=given.name, dynamic_typing=True)
        return SetParametersResult(successful=True, reason="")

    def _refusal(self, parameters: list[Parameter], descriptor_for: dict[str, Any]) -> str:
        for parameter in parameters:
            descriptor = descriptor_for.get(parameter.name)
            if descriptor is None:
                continue
            current = self.values.get(parameter.name)
            if current is not None and descriptor.read_only:
                return f"parameter {parameter.name!r} is read-only"
            declared = _Type(descriptor.type)
            if (
                not descriptor.dynamic_typing
                and declared not in (_Type.NOT_SET, parameter.type_)
                and not declared.check(parameter.value)
            ):
                return f"wrong parameter type for {parameter.name!r}: expected {declared.name}"
            if why := _in_range(parameter.value, descriptor):
                return f"parameter {parameter.name!r}: {why}"
        for callback in self.callbacks:
            result = callback(parameters)
            if not result.successful:
                return result.reason or "refused by an on-set-parameters callback"
        return ""


class _Uninitialized(Parameter):
    pass


def _uninitialized(name: str, param_type: _Type) -> Parameter:
    parameter = _Uninitialized.__new__(_Uninitialized)
    parameter._name, parameter._type, parameter._value = name, param_type, None
    return parameter
