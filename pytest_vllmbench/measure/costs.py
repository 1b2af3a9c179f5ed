"""What a cell costs: energy from the GPUs' own counters, money from an hourly price per GPU.

Energy is the timed batch only (the counters are read around the last timed round); loading is left out.
Money is GPU time: projected_hours (load included) x the hourly price x the cell's GPUs. Every figure is
None when its input is unknown (no GPU, no energy counter, no price), never 0.
"""

from __future__ import annotations

from typing import Any

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6
ENERGY_KEYS = ("energy_wh", "joules_per_request", "joules_per_1k_output_tokens", "projected_kwh")


def energy_figures(energy_j: float | None, n_done: int, output_tokens: int, project_to: int) -> dict[str, Any]:
    """energy_wh of the timed batch, joules per request and per 1K output tokens, projected_kwh of the job."""
    if energy_j is None or energy_j < 0:  # no counter; a negative delta means the counter was reset
        return dict.fromkeys(ENERGY_KEYS)
    per_request = energy_j / n_done if n_done > 0 else None
    return {
        "energy_wh": round(energy_j / J_PER_WH, 4),
        "joules_per_request": _round(per_request, 3),
        "joules_per_1k_output_tokens": round(energy_j / output_tokens * 1000, 3) if output_tokens > 0 else None,
        "projected_kwh": _round(None if per_request is None else per_request * project_to / J_PER_KWH, 4),
    }


def cost_figures(
    hourly_cost: float | None,
    currency: str | None,
    n_gpus: int,
    output_tokens_per_s: float | None,
    projected_hours: float | None,
) -> dict[str, Any]:
    """cost_per_1m_output_tokens (at the measured rate) and projected_cost of the job, in the price's currency."""
    per_hour = hourly_cost * n_gpus if hourly_cost is not None and n_gpus > 0 else None
    per_1m = per_hour / (output_tokens_per_s * 3600.0) * 1e6 if per_hour is not None and output_tokens_per_s else None
    return {
        "gpu_hourly_cost": hourly_cost,
        "cost_currency": currency,
        "cost_per_1m_output_tokens": _round(per_1m, 4),
        "projected_cost": _round(
            per_hour * projected_hours if per_hour is not None and projected_hours is not None else None, 2
        ),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
