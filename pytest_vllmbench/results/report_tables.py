"""The report's per-cell tables: current status, the test matrix, results by machine, memory budgets, vLLM bench
parity and every saved run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_vllmbench.measure.roofline import weights_gib
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results import plots
from pytest_vllmbench.results.answer import budget_verdict, peak_gib
from pytest_vllmbench.results.labels import (
    MISSING,
    cell_label,
    dataset_label,
    engine_text,
    fmt,
    gpus_text,
    latency_pair,
    legend,
    load_text,
    mode_text,
    model_label,
    money,
    overlap_note,
    quality_text,
    rate,
    short_label,
    short_workload,
    status_text,
    workload,
    workload_legend,
)
from pytest_vllmbench.results.latest import Latest, latest_cells, numbered, superseded_by
from pytest_vllmbench.results.markdown_table import markdown_table
from pytest_vllmbench.results.pooled_rounds import pooled_latest
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import SavedRun

SPEED_HEADERS = [
    "Model",
    "Mode",
    "GPUs",
    "req/s",
    "out tok/s",
    "TTFT p50/p99 ms",
    "TPOT p50/p99 ms",
    "E2EL p50/p99 ms",
    "Load s",
    "Run",
]
SPEND_HEADERS = [
    "Model",
    "Mode",
    "Size (B)",
    "Peak VRAM MiB",
    "Roofline %",
    "Projected h",
    "J/req",
    "Cost/1M out tok",
    "Quality",
    "Score",
]
FIT_HEADERS = [
    "Model",
    "Mode",
    "Machine",
    "Budget",
    "Verdict",
    "Measured peak GiB",
    "Weights GiB (est.)",
    "Left for KV cache GiB (at most)",
    "req/s",
]
MATRIX_HEADERS = [
    "Model",
    "Mode",
    "Machine",
    "Workload",
    "Status",
    "req/s",
    "Job h",
    "Peak VRAM MiB",
]
HISTORY_HEADERS = [
    "Run",
    "When (UTC)",
    "Machine",
    "Cell",
    "Workload",
    "Status",
    "Requests",
    "Wall s",
    "Load s",
    "Engine",
    "Now",
]


def fit_table(latest: Latest) -> str:
    """Model x memory budget -> the budget verdict beside the measured peak, from the cells run with --gpu-memory."""
    rows: list[list[object]] = []
    cells = []
    for (machine, _, _), (_, cell) in sorted(latest.items()):
        budget = cell.gpu_memory_budget_gib
        if budget is None:
            continue
        cells.append(cell)
        n_gpus = max(len(cell.gpus or []), 1)
        weights = weights_gib(cell.params_b, cell.dtype)
        room = None if weights is None or not cell.ok else budget * n_gpus - weights
        rows.append(
            [
                model_label(cell),
                cell.mode,
                machine,
                f"{budget:g} GiB" + (f" x {n_gpus}" if n_gpus > 1 else ""),
                budget_verdict(cell),
                fmt(peak_gib(cell), 1),
                fmt(weights, 1),
                fmt(room, 1),
                rate(cell) if cell.ok else MISSING,
            ]
        )
    if not rows:
        return "No cell run under a memory budget yet (`--gpu-memory=16GiB`)."
    return _with_legend(markdown_table(rows, FIT_HEADERS), cells)


def _with_legend(table: str, cells: Sequence[SavedCell], workloads: Sequence[str] = ()) -> str:
    notes = [note for note in (legend(cells), workload_legend(workloads), overlap_note(cells)) if note]
    return "\n\n".join([table, *notes])


def matrix(latest: Latest) -> str:
    rows: list[list[object]] = [
        [
            model_label(cell),
            mode_text(cell),
            machine,
            short_workload(place),
            status_text(cell).split(":", 1)[0],
            rate(cell),
            fmt(cell.projected_hours, 1),
            fmt(cell.peak_vram_mib),
        ]
        for (machine, _, place), (_, cell) in sorted(latest.items())
    ]
    cells = [cell for _, cell in latest.values()]
    return _with_legend(markdown_table(rows, MATRIX_HEADERS), cells, [key[2] for key in latest])


def machine_tables(latest: Latest, scores: Mapping[int, float]) -> str:
    """Per machine, two tables of the same rows: speed and latency, then memory, energy, cost, quality and score."""
    parts = []
    for machine in sorted({key[0] for key in latest}):
        here = [(place, run, cell) for (m, _, place), (run, cell) in sorted(latest.items()) if m == machine]
        several = len({place for place, _, _ in here}) > 1
        rows = [_machine_row(cell, place if several else None) for place, _, cell in here]
        speed: list[list[object]] = [
            [
                *row,
                gpus_text(cell),
                rate(cell),
                fmt(central(cell, "output_tokens_per_s"), 1),
                latency_pair(cell, "ttft"),
                latency_pair(cell, "tpot"),
                latency_pair(cell, "e2el"),
                load_text(cell, 1),
                ", ".join(cell.get("pooled_from") or [run.number]),
            ]
            for row, (_, run, cell) in zip(rows, here, strict=True)
        ]
        spend: list[list[object]] = [
            [
                *row,
                fmt(cell.params_b),
                fmt(cell.peak_vram_mib),
                fmt(cell.roofline_pct, 1),
                fmt(cell.projected_hours, 1),
                fmt(cell.joules_per_request, 1),
                money(cell, cell.cost_per_1m_output_tokens),
                quality_text(cell),
                fmt(scores.get(id(cell)), 3),
            ]
            for row, (_, _, cell) in zip(rows, here, strict=True)
        ]
        tables = markdown_table(speed, SPEED_HEADERS) + "\n\n" + markdown_table(spend, SPEND_HEADERS)
        legends = _with_legend("", [cell for _, _, cell in here], [place for place, _, _ in here if several])
        parts.append(f"### {machine}\n\n{tables}{legends}")
    return "\n\n".join(parts)


def _machine_row(cell: SavedCell, place: str | None) -> list[object]:
    return [model_label(cell), mode_text(cell) + (f" [{short_workload(place)}]" if place else "")]


def history_table(runs: list[SavedRun], latest: Latest) -> str:
    """Every saved cell, newest run first, each marked current or superseded by a newer run of the same cell."""
    rows: list[list[object]] = []
    shown = []
    for run in reversed(runs):
        for cell in numbered(run):
            shown.append(cell)
            newer = superseded_by(run, cell, latest)
            rows.append(
                [
                    f"`{run.path}`",
                    run.datetime[:19],
                    run.machine,
                    cell_label(cell),
                    short_workload(workload(cell)),
                    status_text(cell),
                    fmt(cell.get("n_requests")),
                    fmt(cell.wall_s, 2),
                    load_text(cell, 2),
                    engine_text(cell),
                    "current" if newer is None else f"superseded by {newer.number}",
                ]
            )
    return _with_legend(markdown_table(rows, HISTORY_HEADERS), shown, [workload(cell) for cell in shown])


def parity_table(runs: list[SavedRun]) -> str:
    rows: list[list[object]] = [
        [
            f"`{run.path}`",
            run.machine,
            cell_label(cell),
            dataset_label(cell.dataset),
            fmt(cell.requests_per_s),
            fmt(cell.vllm_bench_requests_per_s),
            fmt(cell.vllm_bench_ratio, 3),
        ]
        for run in runs
        for cell in run.cells
        if "vllm_bench_ratio" in cell
    ]
    if not rows:
        return "No parity run saved yet (`--dataset=random:512:256:1000 --vllm-bench-parity`)."
    headers = ["Run", "Machine", "Cell", "Workload", "Ours req/s", "vllm bench throughput req/s", "Ratio"]
    return markdown_table(rows, headers)


def current_status(runs: list[SavedRun], latest: Latest) -> str:
    if not runs:
        return "No saved runs yet: run `make bench` (or `pytest benchmarks/ --benchmark-save=NAME`)."
    newest = runs[-1]
    ok = [(machine, cell) for (machine, _, _), (_, cell) in latest.items() if cell.ok and cell.requests_per_s]
    lines = [
        f"- **Last run:** `{newest.path}` ({newest.datetime[:19]} UTC) on {newest.machine}: "
        f"{', '.join(cell.cell for cell in newest.cells)}",
        f"- **Saved runs:** {len(runs)} on {len({run.machine for run in runs})} machine(s)",
    ]
    if ok:
        machine, best = max(ok, key=lambda pair: central(pair[1], "requests_per_s") or 0.0)
        lines.append(
            f"- **Highest throughput so far:** {cell_label(best)} on {machine} at {rate(best)} req/s; "
            f"{fmt(best.project_to)} requests would take {fmt(best.projected_hours, 1)} h"
        )
    return "\n".join(lines)


def plot_cells(runs: list[SavedRun]) -> dict[str, list[plots.PlotCell]]:
    """The newest cell of each machine that ran, labelled as in the tables (workload named when several), with the
    tables' req/s and out tok/s (the rounds' means, pooled as the tables pool them); its latency CDF is its own run's."""
    machines: dict[str, list[plots.PlotCell]] = {}
    latest = latest_cells(runs)
    pooled = pooled_latest(runs, latest)
    for key, (_, cell) in sorted(latest.items()):
        if not cell.ok:
            continue
        machine, _, place = key
        several = len({other[2] for other in latest if other[0] == machine}) > 1
        short = Path(str((cell.dataset or {}).get("path") or place)).stem
        label = short_label(cell) + (f" [{short}]" if several else "")
        machines.setdefault(machine, []).append((label, as_tabled(cell, pooled[key][1])))
    return machines


def as_tabled(cell: SavedCell, shown: SavedCell | None = None) -> SavedCell:
    """The cell with the figures a plot draws set to what the tables show of it (`shown`, else the cell itself): the
    rounds' means and their statistics. Its rounds and latency percentiles stay its own run's."""
    shown = shown or cell
    names = ("requests_per_s", "output_tokens_per_s")
    figures: dict[str, object] = {name: central(shown, name) for name in names if name in cell}
    if shown.get("round_stats"):
        figures["round_stats"] = shown["round_stats"]
    return cell.with_figures(figures)
