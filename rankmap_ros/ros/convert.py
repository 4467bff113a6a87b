"""Messages to plain data (for --json output), the same for rclpy's and our message classes."""

from __future__ import annotations

from typing import Any


def to_data(value: Any) -> Any:
    """Nested dicts, lists, numbers and strings; `byte` values become ints."""
    if hasattr(value, "get_fields_and_field_types"):
        return {name: to_data(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if isinstance(value, bytes) and len(value) == 1:
        return value[0]
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        return [to_data(v) for v in value]
    return value
