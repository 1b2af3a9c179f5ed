"""The weighted score of the seed's decision: throughput 40 %, total time 30 %, quality 20 %, flexibility 10 %."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_vllmbench.errors import UsageError

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


def cell_quality(cell: Mapping[str, Any]) -> float | None:
    """Accuracy against gold labels when there are any, else the valid-output rate."""
    accuracy = cell.get("quality_accuracy")
    return accuracy if accuracy is not None else cell.get("quality_valid_rate")


def score_cells(
    cells: Sequence[Mapping[str, Any]],
    weights: Mapping[str, float] | None = None,
    flexibility: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One {score, components, weights} per cell, each component in [0, 1] relative to the best cell of the set.

    Quality is left out (its weight shared by the others) when no cell of the set has a quality figure.
    """
    weights = check_weights(weights or {})
    flexibility = {**DEFAULT_FLEXIBILITY, **(flexibility or {})}
    best_rate = max((c.get("requests_per_s") or 0.0 for c in cells), default=0.0)
    hours = [c["projected_hours"] for c in cells if c.get("projected_hours")]
    best_hours = min(hours, default=None)
    any_quality = any(cell_quality(c) is not None for c in cells)
    used = {k: w for k, w in weights.items() if k != "quality" or any_quality}
    total = sum(used.values()) or 1.0
    scored = []
    for cell in cells:
        rate, cell_hours = cell.get("requests_per_s") or 0.0, cell.get("projected_hours")
        components = {
            "throughput": rate / best_rate if best_rate > 0 else 0.0,
            "total_time": best_hours / cell_hours if best_hours and cell_hours else 0.0,
            "quality": (cell_quality(cell) or 0.0) if any_quality else None,
            "flexibility": float(flexibility.get(cell.get("mode", ""), 0.0)),
        }
        score = sum(used[k] * components[k] for k in used) / total
        scored.append({
            "score": round(score, 4),
            "components": {k: None if v is None else round(v, 4) for k, v in components.items()},
            "weights": {k: round(w / total, 4) for k, w in used.items()},
        })
    return scored
