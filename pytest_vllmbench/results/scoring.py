"""The weighted score of the seed's decision: throughput 40 %, total time 30 %, quality 20 %, flexibility 10 %."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_vllmbench.common.cut import shown
from pytest_vllmbench.common.numbers import is_finite_number
from pytest_vllmbench.config.score_weights import DEFAULT_FLEXIBILITY, check_weights


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
        rate: float = cell.get("requests_per_s") or 0.0
        cell_hours: float | None = cell.get("projected_hours")
        components: dict[str, float | None] = {
            "throughput": rate / best_rate if best_rate > 0 else 0.0,
            "total_time": best_hours / cell_hours if best_hours and cell_hours else 0.0,
            "quality": (cell_quality(cell) or 0.0) if any_quality else None,
            "flexibility": float(flexibility.get(cell.get("mode", ""), 0.0)),
        }
        score = sum(used[k] * (components[k] or 0.0) for k in used) / total
        scored.append(
            {
                "score": round(score, 4),
                "components": {k: None if v is None else round(v, 4) for k, v in components.items()},
                "weights": {k: round(w / total, 4) for k, w in used.items()},
            }
        )
    return scored


def scores_problem(scored: object, n_cells: int) -> str | None:
    """Why a project's scorer's answer cannot be used (None: it can): one {score, components} per cell, the score
    a finite number, the components numbers or None."""
    if not isinstance(scored, list | tuple) or len(scored) != n_cells:
        return f"it returned {type(scored).__name__}, not a list of {n_cells} score(s), one per cell"
    for entry in scored:
        if not isinstance(entry, Mapping) or not is_finite_number(entry.get("score")):
            return f"an entry is not a dict with a finite number as its score: {shown(entry)}"
        components = entry.get("components")
        if not isinstance(components, Mapping) or not all(
            v is None or is_finite_number(v) for v in components.values()
        ):
            return f"an entry's components are not a dict of numbers: {shown(components)}"
        if not isinstance(entry.get("weights", {}), Mapping):
            return f"an entry's weights are not a dict: {shown(entry.get('weights'))}"
    return None
