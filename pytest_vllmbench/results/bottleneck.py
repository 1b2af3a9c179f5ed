"""What bounded a saved cell, read again from its figures: runs saved before `preempted_pct` existed still saved
vLLM's preemption count (server cells), so a cell whose KV cache ran full is called `kv-cache` in every report, and
the reader (saved_run.clean_cell) gives such a cell its `preempted_pct` for compare and the gates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_vllmbench.common.numbers import is_finite_number
from pytest_vllmbench.measure.host_load import KV_BOUND_PCT, preempted_pct


def preemptions_per_100(cell: Mapping[str, Any]) -> float | None:
    """Preemptions per 100 requests: as saved, or from the saved count over the requests of the rounds it was read
    over (an --interleave round's metrics are that round's alone; else every timed round of the cell's session)."""
    saved = cell.get("preempted_pct")
    if is_finite_number(saved):
        return float(saved)
    metrics = cell.get("server_metrics")
    count = metrics.get("preemptions") if isinstance(metrics, Mapping) else None
    requests = cell.get("n_requests")
    if not is_finite_number(count) or count < 0 or not isinstance(requests, int) or isinstance(requests, bool):
        return None
    rounds = cell.get("rounds")
    sampled = 1 if cell.get("interleaved") or not isinstance(rounds, list) else max(len(rounds), 1)
    return preempted_pct(float(count), requests * sampled)


def saved_bound(cell: Mapping[str, Any]) -> str | None:
    """The saved `bound_by`, or `kv-cache` where the preemptions say so (see measure/host_load.bound_by)."""
    share = preemptions_per_100(cell)
    if share is not None and share >= KV_BOUND_PCT:
        return "kv-cache"
    saved = cell.get("bound_by")
    return saved if isinstance(saved, str) else None
