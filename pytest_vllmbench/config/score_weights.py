"""The score's weights (throughput 40 %, total time 30 %, quality 20 %, flexibility 10 %) and each mode's flexibility."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_vllmbench.common.errors import UsageError

DEFAULT_WEIGHTS = {"throughput": 0.40, "total_time": 0.30, "quality": 0.20, "flexibility": 0.10}
# The seed credits server mode with OpenAI compatibility, progress monitoring and cancellation;
# offline mode has none of the three. An endpoint is a server too.
# run-batch reads and writes the OpenAI Batch format (compatibility) but shows no per-request progress and
# cannot cancel part of a batch: 1/3. Ray Data shows progress and can stop a job, but takes rows, not the
# OpenAI format: 2/3 (its scale-out is measured by throughput, not credited here).
DEFAULT_FLEXIBILITY = {"offline": 0.0, "server": 1.0, "endpoint": 1.0, "run-batch": 0.33, "ray": 0.67}


def check_weights(weights: Mapping[str, Any]) -> dict[str, float]:
    unknown = set(weights) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise UsageError(f"unknown score weight(s) {sorted(unknown)}; known: {', '.join(DEFAULT_WEIGHTS)}")
    merged = {**DEFAULT_WEIGHTS, **weights}
    if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in merged.values()):
        raise UsageError(f"score weights must be non-negative numbers, got {merged}")
    if sum(merged.values()) <= 0:
        raise UsageError("score weights must not all be zero")
    return {key: float(value) for key, value in merged.items()}
