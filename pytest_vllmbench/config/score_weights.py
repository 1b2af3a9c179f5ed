"""The score's weights (throughput 40 %, total time 30 %, quality 20 %, flexibility 10 %) and each mode's flexibility
(its ModeSpec's, config/modes.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_vllmbench.common.cut import cut
from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.modes import FLEXIBILITY

DEFAULT_WEIGHTS = {"throughput": 0.40, "total_time": 0.30, "quality": 0.20, "flexibility": 0.10}
DEFAULT_FLEXIBILITY = FLEXIBILITY  # every registered mode's, read when asked: a mode cannot lack one


def check_weights(weights: Mapping[str, Any]) -> dict[str, float]:
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise UsageError(f"unknown score weight(s) {sorted(unknown)}; known: {', '.join(DEFAULT_WEIGHTS)}")
    merged = {**DEFAULT_WEIGHTS, **weights}
    for key, value in merged.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= _as_float(value) < math.inf:
            raise UsageError(f"score weight {key!r} must be a finite non-negative number, got {cut(repr(value))}")
    total = sum(merged.values())
    if total == 0:
        raise UsageError("score weights must not all be zero")
    if total == math.inf:
        raise UsageError(f"score weights add up past a float's range: {merged}")
    return {key: float(value) for key, value in merged.items()}


def _as_float(number: float) -> float:
    """A TOML integer may have hundreds of digits, past a float's range: that is infinite here, not an error."""
    try:
        return float(number)
    except OverflowError:
        return math.inf
