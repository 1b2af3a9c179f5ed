"""The report's 'Engine settings and bottleneck' section: what bound each cell and the settings that differ.

Renders the fields newer runs save (bound_by with its CPU shares, engine_settings, steady_requests_per_s,
warmup_rounds, prefix_cache); older runs have none of them and are left out, unless their preemption count says
the KV cache bounded them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_vllmbench.measure.engine_settings import differing
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.bottleneck import preemptions_per_100, saved_bound
from pytest_vllmbench.results.labels import fmt
from pytest_vllmbench.results.markdown_table import markdown_table

Cell = Mapping[str, Any]
FIELDS = ("bound_by", "engine_settings", "steady_requests_per_s", "warmup_rounds", "prefix_cache")
CPU_SHARES = (
    ("GPU busy", "gpu_util_mean_pct"),
    ("client", "cpu_client_pct"),
    ("API server", "cpu_api_server_pct"),
    ("engine core", "cpu_engine_core_pct"),
)


def _bound(cell: Cell) -> str:
    shares = [f"{name} {fmt(cell.get(key), 0)} %" for name, key in CPU_SHARES if cell.get(key) is not None]
    share = preemptions_per_100(cell)
    if share is not None and share > 0:
        shares.insert(0, f"{fmt(share, 1)} preemptions per 100 requests")
    found = saved_bound(cell)
    return "-" if found is None else f"{found} ({', '.join(shares)})" if shares else found


def engine_section(groups: Sequence[tuple[str, Sequence[Cell]]], label: Callable[[Any], str]) -> str | None:
    """One table per group (title, cells) holding cells with any of the newer fields; None when no cell has any."""
    parts = []
    for title, cells in groups:
        shown = [cell for cell in cells if saved_bound(cell) or any(cell.get(name) is not None for name in FIELDS)]
        if not shown:
            continue
        differ = differing(shown)
        rows = [
            [
                label(cell),
                _bound(cell),
                fmt(central(cell, "steady_requests_per_s")),
                fmt(cell.get("warmup_rounds")),
                cell.get("prefix_cache") or "-",
                *(fmt((cell.get("engine_settings") or {}).get(key)) for key in differ),
            ]
            for cell in shown
        ]
        headers = ["Cell", "Bound by (CPU %)", "Steady req/s", "Warm-up rounds", "Prefix cache", *differ]
        parts.append(f"### {title}\n\n" + markdown_table(rows, headers))
    if not parts:
        return None
    return (
        "## Engine settings and bottleneck\n\nWhat limited each cell (vLLM's KV cache when it preempted requests; else"
        " the GPU, the benchmark client, vLLM's API server or its engine core, from their CPU shares) and, per group,"
        " only the engine settings that differ between its cells.\n\n" + "\n\n".join(parts)
    )
