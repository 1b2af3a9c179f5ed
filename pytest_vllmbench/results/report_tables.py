"""The report's per-cell tables: current status, the test matrix, results by machine, memory budgets, vLLM bench
parity and every saved run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tabulate import tabulate

from pytest_vllmbench.measure.roofline import weights_gib
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results import plots as plotting
from pytest_vllmbench.results.labels import (
    MISSING,
    cell_label,
    dataset_label,
    engine_text,
    fmt,
    gpus_text,
    latency_pair,
    mode_text,
    model_label,
    money,
    quality_text,
    rate,
    short_label,
    split,
    status_text,
)
from pytest_vllmbench.results.latest import Latest, latest_cells
from pytest_vllmbench.results.storage import SavedRun

MACHINE_HEADERS = [
    "Model",
    "Size (B)",
    "Mode",
    "GPUs",
    "req/s",
    "out tok/s",
    "TTFT p50/p99 ms",
    "TPOT p50/p99 ms",
    "E2EL p50/p99 ms",
    "Load s",
    "Peak VRAM MiB",
    "Roofline %",
    "Projected h",
    "J/req",
    "Cost/1M out tok",
    "Quality",
    "Score",
    "Saved run",
]
FIT_HEADERS = [
    "Model",
    "Mode",
    "Machine",
    "Budget",
    "Fits?",
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
    "Throughput (req/s)",
    "Total time (h)",
    "Peak VRAM (MiB)",
]
RUNS_HEADERS = [
    "Run",
    "When (UTC)",
    "Machine",
    "Cell",
    "Dataset",
    "Requests",
    "Input tok",
    "Output tok",
    "Wall s",
    "Load s",
    "Engine",
]


def _github(rows: list[list[object]], headers: list[str]) -> str:
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def plain(value: object, digits: int = 2) -> str:
    """A figure as the per-cell tables have always shown whole numbers: without separators."""
    return fmt(value, digits, group_ints=False)


def fit_table(latest: Latest) -> str:
    """Model x memory budget -> fits (weights, room left) or does not fit, from the cells run with --gpu-memory."""
    rows: list[list[object]] = []
    for (machine, _, _), (_, cell) in sorted(latest.items()):
        budget = cell.gpu_memory_budget_gib
        if budget is None:
            continue
        n_gpus = max(len(cell.gpus or []), 1)
        weights = weights_gib(cell.params_b, cell.dtype)
        room = None if weights is None or not cell.ok else budget * n_gpus - weights
        rows.append(
            [
                model_label(cell),
                cell.mode,
                machine,
                f"{budget:g} GiB" + (f" x {n_gpus}" if n_gpus > 1 else ""),
                "fits" if cell.ok else cell.status,
                plain(weights, 1),
                plain(room, 1),
                rate(cell) if cell.ok else MISSING,
            ]
        )
    if not rows:
        return "No cell run under a memory budget yet (`--gpu-memory=16GiB`)."
    return _github(rows, FIT_HEADERS)


def matrix(latest: Latest) -> str:
    rows: list[list[object]] = [
        [
            model_label(cell) + (f" ({split(cell)})" if split(cell) else ""),
            mode_text(cell),
            machine,
            workload,
            status_text(cell),
            rate(cell),
            plain(cell.projected_hours),
            plain(cell.peak_vram_mib),
        ]
        for (machine, _, workload), (_, cell) in sorted(latest.items())
    ]
    return _github(rows, MATRIX_HEADERS)


def machine_tables(latest: Latest, scores: Mapping[int, float]) -> str:
    parts = []
    for machine in sorted({key[0] for key in latest}):
        rows: list[list[object]] = [
            [
                model_label(cell),
                plain(cell.params_b),
                mode_text(cell),
                gpus_text(cell),
                rate(cell),
                plain(cell.output_tokens_per_s, 1),
                latency_pair(cell, "ttft"),
                latency_pair(cell, "tpot"),
                latency_pair(cell, "e2el"),
                plain(cell.load_s, 1),
                plain(cell.peak_vram_mib),
                plain(cell.roofline_pct, 1),
                plain(cell.projected_hours, 1),
                plain(cell.joules_per_request, 1),
                money(cell, cell.cost_per_1m_output_tokens),
                quality_text(cell),
                plain(scores.get(id(cell)), 3),
                f"`{run.path}`",
            ]
            for (m, _, _), (run, cell) in sorted(latest.items())
            if m == machine
        ]
        parts.append(f"### {machine}\n\n" + _github(rows, MACHINE_HEADERS))
    return "\n\n".join(parts)


def runs_table(runs: list[SavedRun]) -> str:
    rows: list[list[object]] = [
        [
            f"`{run.path}`",
            run.datetime[:19],
            run.machine,
            cell_label(cell),
            dataset_label(cell.dataset),
            plain(cell.get("n_requests")),
            plain(cell.get("input_tokens")),
            plain(cell.get("output_tokens")),
            plain(cell.wall_s, 2),
            plain(cell.load_s, 2),
            engine_text(cell),
        ]
        for run in reversed(runs)
        for cell in run.cells
    ]
    return _github(rows, RUNS_HEADERS)


def parity_table(runs: list[SavedRun]) -> str:
    rows: list[list[object]] = [
        [
            f"`{run.path}`",
            run.machine,
            cell_label(cell),
            dataset_label(cell.dataset),
            plain(cell.requests_per_s),
            plain(cell.vllm_bench_requests_per_s),
            plain(cell.vllm_bench_ratio, 3),
        ]
        for run in runs
        for cell in run.cells
        if "vllm_bench_ratio" in cell
    ]
    if not rows:
        return "No parity run saved yet (`--dataset=random:512:256:1000 --vllm-bench-parity`)."
    headers = ["Run", "Machine", "Cell", "Workload", "Ours req/s", "vllm bench throughput req/s", "Ratio"]
    return _github(rows, headers)


def current_status(runs: list[SavedRun], latest: Latest) -> str:
    if not runs:
        return "No saved runs yet: run `make bench` (or `pytest benchmarks/ --benchmark-save=NAME`)."
    newest = runs[-1]
    ok = [cell for _, cell in latest.values() if cell.ok and cell.requests_per_s]
    lines = [
        f"- **Last run:** `{newest.path}` ({newest.datetime[:19]} UTC) on {newest.machine}: "
        f"{', '.join(cell.cell for cell in newest.cells)}",
        f"- **Saved runs:** {len(runs)} on {len({run.machine for run in runs})} machine(s)",
    ]
    if ok:
        best = max(ok, key=lambda cell: central(cell, "requests_per_s") or 0.0)
        lines.append(
            f"- **Highest throughput so far:** {best.cell} at {rate(best)} req/s; "
            f"{plain(best.project_to)} requests would take {plain(best.projected_hours, 1)} h"
        )
    return "\n".join(lines)


def plot_cells(runs: list[SavedRun]) -> dict[str, list[plotting.PlotCell]]:
    """The newest cell of each machine that ran, labelled as in the tables (workload named when several)."""
    machines: dict[str, list[plotting.PlotCell]] = {}
    latest = latest_cells(runs)
    for (machine, _, workload), (_, cell) in sorted(latest.items()):
        if not cell.ok:
            continue
        several = len({key[2] for key in latest if key[0] == machine}) > 1
        short = Path(str((cell.dataset or {}).get("path") or workload)).stem
        label = short_label(cell) + (f" [{short}]" if several else "")
        machines.setdefault(machine, []).append((label, cell))
    return machines
