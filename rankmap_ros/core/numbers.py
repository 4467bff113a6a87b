"""What counts as a number in a user's file or request: the one test every loader applies."""

from __future__ import annotations

import math
from typing import TypeGuard


def finite_number(value: object) -> TypeGuard[int | float]:
    """A finite int or float; not a bool (True would count as 1), nor an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
