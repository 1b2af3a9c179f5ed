"""Repeated rounds of one cell: every round's key figures, and their mean, stddev and 95 % confidence interval."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

KEY_FIGURES = (
    "requests_per_s",
    "steady_requests_per_s",
    "output_tokens_per_s",
    "goodput_requests_per_s",
    "ttft_ms_p50",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "e2el_ms_p50",
    "e2el_ms_p99",
)
CONFIDENCE = 0.95


def round_figures(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The key figures of one round's summary (None where it measured nothing)."""
    return {key: _finite(summary.get(key)) for key in KEY_FIGURES if key in summary}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def interval(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample stddev and the Student-t 95 % interval of the mean; stddev and interval need 2 values."""
    import numpy as np  # numpy and scipy here: importing them at the top costs every pytest session

    n = len(values)
    mean = float(np.mean(values)) if n else None
    if n < 2:
        return {"n": n, "mean": mean, "stddev": None, "ci95_low": None, "ci95_high": None, "ci95_half": None}
    from scipy import stats

    stddev = float(np.std(values, ddof=1))
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)) * stddev / math.sqrt(n)
    assert mean is not None
    return {
        "n": n,
        "mean": round(mean, 4),
        "stddev": round(stddev, 4),
        "ci95_low": round(mean - half, 4),
        "ci95_high": round(mean + half, 4),
        "ci95_half": round(half, 4),
    }


def round_statistics(rounds: Sequence[Mapping[str, float | None]]) -> dict[str, dict[str, float | int | None]]:
    """Per key figure, over the rounds that measured it."""
    keys = [key for key in KEY_FIGURES if any(r.get(key) is not None for r in rounds)]
    return {key: interval([value for r in rounds if (value := r.get(key)) is not None]) for key in keys}


def rounds_info(rounds: Sequence[Mapping[str, float | None]]) -> dict[str, Any]:
    """What a cell saves beside its figures when it ran more than one timed round."""
    if len(rounds) < 2:
        return {}
    return {"rounds": [dict(r) for r in rounds], "round_stats": round_statistics(rounds)}


def stat(cell: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """A saved cell's statistics for `metric`, when it ran rounds enough for an interval."""
    found = (cell.get("round_stats") or {}).get(metric)
    return found if found and found.get("ci95_half") is not None else None


def overlap(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two statistics' 95 % intervals (`interval`'s figures) overlap."""
    return bool(first["ci95_low"] <= second["ci95_high"] and second["ci95_low"] <= first["ci95_high"])


def plus_minus(cell: Mapping[str, Any], metric: str, digits: int = 2) -> str | None:
    """'1.71 ± 0.05' (mean ± the 95 % half-width), or None without an interval."""
    found = stat(cell, metric)
    return None if found is None else mean_plus_minus(found, digits)


def mean_plus_minus(stats: Mapping[str, Any], digits: int = 2) -> str:
    """'1.71 ± 0.05' from `interval`'s figures, or the mean alone where there was no interval (one value)."""
    if stats.get("ci95_half") is None:
        return f"{stats['mean']:,.{digits}f}"
    return f"{stats['mean']:,.{digits}f} ± {stats['ci95_half']:,.{digits}f}"


def central(cell: Mapping[str, Any], metric: str) -> float | None:
    """The rounds' mean when the cell ran several, else its one figure."""
    found = (cell.get("round_stats") or {}).get(metric)
    if found and found.get("mean") is not None:
        return float(found["mean"])
    return _finite(cell.get(metric))
