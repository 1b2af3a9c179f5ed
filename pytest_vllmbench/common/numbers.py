"""What counts as a figure's number wherever one is read from outside (a hook's answer, a saved run)."""

from __future__ import annotations

import math
from typing import TypeGuard


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """An int or float, not a bool, neither NaN nor infinite (an int past a float's range is not finite here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
