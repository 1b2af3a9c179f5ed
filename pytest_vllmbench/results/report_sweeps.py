"""The report's 'Load sweeps' section (one table per sweep, its knee) and the sweep curves it plots."""

from __future__ import annotations

from pathlib import Path

from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results import plots as plotting
from pytest_vllmbench.results.labels import MISSING, fmt, latency_pair, load_point, rate
from pytest_vllmbench.results.latest import Latest, latest_cells
from pytest_vllmbench.results.markdown_table import markdown_table
from pytest_vllmbench.results.report_tables import as_tabled
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import SavedRun
from pytest_vllmbench.results.sweeps import SLO_ATTAINMENT, knee, met_slo, slo_attainment, sweeps

SweepKey = tuple[str, str, str]  # (machine, sweep name, workload)
HEADERS = [
    "Load",
    "req/s",
    "out tok/s",
    "TTFT p50/p99 ms",
    "TPOT p50/p99 ms",
    "E2EL p50/p99 ms",
    "Server: KV cache peak %, running/waiting peak, preemptions",
    "Met SLOs",
    "Failed",
]


def sweep_groups(latest: Latest) -> dict[SweepKey, list[SavedCell]]:
    """The newest points of each saved sweep, per machine and workload, lightest load first."""
    by_place: dict[tuple[str, str], list[SavedCell]] = {}
    for (machine, _, workload), (_, cell) in sorted(latest.items()):
        by_place.setdefault((machine, workload), []).append(cell)
    return {
        (machine, name, workload): list(points)
        for (machine, workload), cells in by_place.items()
        for name, points in sweeps(cells).items()
    }


def _title(key: SweepKey, several_workloads: bool) -> str:
    machine, name, workload = key
    return f"{name}, {machine}" + (f" [{Path(workload).name}]" if several_workloads else "")


def _metrics_text(cell: SavedCell) -> str:
    found = cell.server_metrics
    if not found:
        return "not sampled" if "server_metrics" in cell else MISSING
    return (
        f"{fmt(found.get('kv_cache_usage_pct_peak'), 1)}, {fmt(found.get('requests_running_peak'), 0)}/"
        f"{fmt(found.get('requests_waiting_peak'), 0)}, {fmt(found.get('preemptions'), 0)}"
    )


def _slo_text(cell: SavedCell, best: SavedCell | None) -> str:
    attained = slo_attainment(cell)
    if attained is None:
        return MISSING
    return f"{attained:.0%}" + (" (knee)" if cell is best else " met" if met_slo(cell) else "")


def _table(points: list[SavedCell], best: SavedCell | None) -> str:
    rows = [
        [
            load_point(cell) or MISSING,
            rate(cell),
            fmt(cell.output_tokens_per_s, 1),
            latency_pair(cell, "ttft"),
            latency_pair(cell, "tpot"),
            latency_pair(cell, "e2el"),
            _metrics_text(cell),
            _slo_text(cell, best),
            fmt(cell.get("n_failed")),
        ]
        for cell in points
    ]
    return markdown_table(rows, HEADERS)


def sweeps_section(latest: Latest) -> str:
    groups = sweep_groups(latest)
    if not groups:
        return (
            "No load sweep saved yet (`--mode=server --concurrency=1,16,64` or `--request-rate=2,8`: one cell"
            " per load point, on one server start)."
        )
    parts = [
        f"One row per load point, lightest first. With `--slo`, a point met the SLOs when at least"
        f" {SLO_ATTAINMENT:.0%} of its requests met every one (goodput / throughput); the knee is the point"
        " with the highest throughput among those. With `--rounds`, req/s is the mean ± the 95 % CI half-width."
    ]
    several = len({key[2] for key in groups}) > 1
    for key, points in groups.items():
        best = knee(points)
        slo = points[0].slo_ms
        spec = ", ".join(f"{name} {value:g} ms" for name, value in (slo or {}).items())
        verdict = ""
        if slo:
            found = (
                f"knee at **{load_point(best) or MISSING}**, {fmt(central(best, 'requests_per_s'))} req/s."
                if best
                else "no load point met them."
            )
            verdict = f"\n\nSLOs {spec}: {found}"
        parts.append(f"### {_title(key, several)}{verdict}\n\n" + _table(points, best))
    return "\n\n".join(parts)


def sweep_plots(runs: list[SavedRun]) -> dict[str, plotting.SweepCurve]:
    groups = sweep_groups(latest_cells(runs))
    several = len({key[2] for key in groups}) > 1
    plotted: dict[str, plotting.SweepCurve] = {}
    for key, points in groups.items():
        best = knee(points) if points[0].slo_ms else None
        plotted[_title(key, several)] = (
            [(load_point(cell) or MISSING, as_tabled(cell)) for cell in points],
            None if best is None else load_point(best),
            key[0],
        )
    return plotted
