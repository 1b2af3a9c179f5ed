"""What bounded a saved cell. Runs saved before `preempted_pct` existed still saved vLLM's preemption count (server
cells): the reader (saved_run.clean_cell) gives them the figure with `derived_preemptions`, so a cell whose KV cache
ran full is called `kv-cache` in every report, `compare` and the gates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_vllmbench.common.numbers import is_finite_number
from pytest_vllmbench.measure.host_load import KV_BOUND_PCT, preempted_pct


def derived_preemptions(figures: Mapping[str, Any]) -> float | None:
    """Preemptions per 100 requests from a saved count, over the requests of the rounds it was read over (an
    --interleave round's metrics are that round's alone; else every timed round of the cell's session)."""
    metrics = figures.get("server_metrics")
    count = metrics.get("preemptions") if isinstance(metrics, Mapping) else None
    requests = figures.get("n_requests")
    if not is_finite_number(count) or count < 0 or not isinstance(requests, int) or isinstance(requests, bool):
        return None
    rounds = figures.get("rounds")
    sampled = 1 if figures.get("interleaved") or not isinstance(rounds, list) else max(len(rounds), 1)
    return preempted_pct(float(count), requests * sampled)


def preemptions_per_100(cell: Mapping[str, Any]) -> float | None:
    """The cell's `preempted_pct` when it is a number."""
    value = cell.get("preempted_pct")
    return float(value) if is_finite_number(value) else None


def saved_bound(cell: Mapping[str, Any]) -> str | None:
    """The saved `bound_by`, or `kv-cache` where the preemptions say so (see measure/host_load.bound_by)."""
    share = preemptions_per_100(cell)
    if share is not None and share >= KV_BOUND_PCT:
        return "kv-cache"
    saved = cell.get("bound_by")
    return saved if isinstance(saved, str) else None


def full_in_shared_gpu(cell: Mapping[str, Any]) -> bool:
    """Its KV cache ran full in its --interleave share of the GPU: its rates understate one engine alone."""
    return bool(cell.get("interleaved")) and saved_bound(cell) == "kv-cache"
