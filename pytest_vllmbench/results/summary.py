"""The end-of-session summary: one table of the cells' figures, the gate verdicts, where things were saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_vllmbench.measure.engine_settings import differing
from pytest_vllmbench.measure.host_load import FIGURE
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.bottleneck import full_in_shared_gpu, preemptions_per_100, saved_bound
from pytest_vllmbench.results.gate import Check, missing_data, regressions
from pytest_vllmbench.results.gate import summary as gate_summary
from pytest_vllmbench.results.job_hours import on_round_means
from pytest_vllmbench.results.labels import (
    MISSING,
    finite,
    fmt,
    latency_pair,
    load_text,
    mode_text,
    overlap_note,
    quality_text,
    rate,
)
from pytest_vllmbench.results.saved_run import SavedCell, is_ok

__all__ = [
    "MISSING",
    "bound_text",
    "cells_table",
    "gate_lines",
    "latency_pair",
    "settings_lines",
    "shared_memory_lines",
    "summary_block",
]


def _cost(cell: SavedCell) -> str:
    value, currency = cell.projected_cost, cell.cost_currency
    return fmt(value) if value is None or not currency else f"{fmt(value)} {currency}"


def cells_table(cells: Sequence[Mapping[str, Any]]) -> str:
    """One row per cell; the cost column only when some cell knows its cost."""
    from tabulate import tabulate

    typed = [on_round_means(SavedCell.of(cell)) for cell in cells]  # a run saves its last round's figures
    with_cost = any(cell.projected_cost is not None for cell in typed)
    headers = ["Model", "Mode", "req/s", "out tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "Load s", "Projected h"]
    headers += ["Projected cost"] if with_cost else []
    headers += ["Quality", "Score", "Bound by"]
    rows = []
    for cell in typed:
        row = [
            cell.model or MISSING,
            mode_text(cell),
            rate(cell),
            fmt(central(cell, "output_tokens_per_s"), 1),
            latency_pair(cell, "ttft"),
            latency_pair(cell, "tpot"),
            load_text(cell, 1),
            fmt(cell.projected_hours, 1),
        ]
        row += [_cost(cell)] if with_cost else []
        row += [quality_text(cell), fmt(cell.score, 3), bound_text(cell)]
        rows.append(row)
    table = tabulate(rows, headers, tablefmt="simple", disable_numparse=True)
    return "\n".join(part for part in (table, overlap_note(typed)) if part)


BOUND_SHARE = {"gpu": "gpu_util_mean_pct", **FIGURE}


def bound_text(cell: Mapping[str, Any]) -> str:
    """What limited the cell, with the share that says so: 'gpu 97%', 'api-server 99%' (of one core)."""
    found = saved_bound(cell)
    if found is None:
        return MISSING
    if found == "kv-cache":
        return f"kv-cache {preemptions_per_100(cell) or 0:.0f} preemptions/100 req"
    share = cell.get(BOUND_SHARE.get(found, ""))
    return f"{found} {share:.0f}%" if finite(share) else found


def settings_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Where the engines' effective settings differ between the cells, one line each."""
    lines = []
    for key in differing(list(cells)):
        values = ", ".join(
            f"{cell.get('cell', MISSING)}={cell['engine_settings'].get(key)}"
            for cell in cells
            if isinstance(cell.get("engine_settings"), Mapping)
        )
        lines.append(f"engine setting {key} differs: {values}")
    return lines


def shared_memory_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Under --interleave, each cell whose KV cache ran full in its share of the GPU: a lone engine would have more
    cache, so its rates here understate one (the modes still share alike)."""
    lines = []
    for cell in cells:
        share = (cell.get("engine_args") or {}).get("gpu_memory_utilization")
        if full_in_shared_gpu(cell) and finite(share):
            lines.append(
                f"{cell.get('cell', MISSING)}: KV cache full with {share:g} of the GPU beside the other --interleave"
                f" engines ({preemptions_per_100(cell) or 0:.1f} preemptions per 100 requests): a lone engine has"
                " more cache, so these rates understate one; run its modes without --interleave (one engine at a"
                " time) for the job's rate"
            )
    return lines


def gate_lines(baseline: str | None, checks: Sequence[Check] | None) -> list[str]:
    """One line for the gates: not run, no baseline, or how many checks regressed (and which)."""
    if checks is None:
        return []
    if baseline is None:
        return ["gates: no baseline run for this machine; nothing was compared"]
    failed = regressions(checks) + missing_data(checks)
    if not failed:
        return [f"gates: passed, {len(checks)} check(s) against {baseline}"]
    names = ", ".join(
        f"{c.cell} {c.metric} " + (f"{c.change_pct:+.1f}%" if c.change_pct is not None else c.verdict) for c in failed
    )
    return [f"gates: FAILED, {gate_summary(checks)} of {len(checks)} check(s) against {baseline}: {names}"]


def summary_block(
    cells: Sequence[Mapping[str, Any]],
    gates: Sequence[str] = (),
    saved_run: Path | str | None = None,
    report: Path | str | None = None,
) -> str:
    """The whole block, or '' when no cell ran (nothing to summarize). Cells that could not run (a `status`
    other than ok: does not fit, skipped, failed) are listed under the table."""
    ran = [cell for cell in cells if is_ok(cell)]
    if not ran:
        return ""
    lines = [cells_table(ran), ""]
    lines += settings_lines(ran)
    lines += shared_memory_lines(ran)
    lines += [f"not run: {cell.get('cell', MISSING)}: {cell['status']}" for cell in cells if not is_ok(cell)]
    lines += gates
    if saved_run is not None:
        lines.append(f"run saved in {saved_run}")
    if report is not None:
        lines.append(f"report regenerated: {report}")
    return "\n".join(lines).rstrip("\n")
