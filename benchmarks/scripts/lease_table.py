"""One Markdown row per saved cell of the given runs, in the order given, for a lease's table in measurements.md:
`python benchmarks/scripts/lease_table.py 0057 0058 0059 [--storage .benchmarks]`.

The figures are the saved runs' own (one run each, not pooled: the report pools): each round's req/s, the rounds'
mean ± 95 % half-width, the steady rate likewise, TTFT p50 (the rounds' mean), the GPU's busy share and each process's
share of a core, preempted requests per 100, load time, energy per request, and the job's projected hours at the
rounds' means, as the Ranking projects them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_vllmbench.measure.rounds import central, plus_minus
from pytest_vllmbench.results.job_hours import on_round_means
from pytest_vllmbench.results.labels import cell_label, fmt
from pytest_vllmbench.results.markdown_table import markdown_table
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import SavedRun, load_runs

HEADERS = [
    "Order", "Run", "Cell", "Rounds req/s", "req/s (95 %)", "Steady req/s (95 %)", "TTFT p50", "GPU busy %",
    "API server %", "Engine core %", "Client %", "Preempted %", "Load s", "J per request", "Job h",
]  # fmt: skip


def row(order: int, run: SavedRun, cell: SavedCell) -> list[object]:
    ttft = central(cell, "ttft_ms_p50")
    job = on_round_means(cell)
    return [
        order,
        f"`{run.number}`",
        cell_label(cell),
        ", ".join(fmt(figures.get("requests_per_s"), 1) for figures in cell.rounds or []) or "-",
        plus_minus(cell, "requests_per_s", 1) or fmt(cell.requests_per_s, 1),
        plus_minus(cell, "steady_requests_per_s", 1) or fmt(cell.get("steady_requests_per_s"), 1),
        "-" if ttft is None else f"{ttft / 1000:.1f} s",
        fmt(cell.get("gpu_util_mean_pct"), 0),
        fmt(cell.get("cpu_api_server_pct"), 0),
        fmt(cell.get("cpu_engine_core_pct"), 0),
        fmt(cell.get("cpu_client_pct"), 0),
        fmt(cell.get("preempted_pct"), 1),
        fmt(cell.load_s, 0),
        fmt(cell.joules_per_request, 1),
        fmt(job.projected_hours, 2),
    ]


def table(runs: list[SavedRun], numbers: list[str]) -> str:
    by_number = {run.number: run for run in runs}
    missing = [number for number in numbers if number not in by_number]
    if missing:
        raise SystemExit(f"lease_table: no saved run numbered {', '.join(missing)}")
    cells = [(by_number[number], cell) for number in numbers for cell in by_number[number].cells]
    return markdown_table([row(order, run, cell) for order, (run, cell) in enumerate(cells, start=1)], HEADERS)


def run_number(text: str) -> str:
    """'57' or '0057' -> '0057'; argparse turns the ValueError of anything else into a usage error."""
    return f"{int(text):04d}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=run_number, help="run numbers, e.g. 0057 (the order of the table)")
    parser.add_argument("--storage", type=Path, default=Path(".benchmarks"))
    args = parser.parse_args(argv)
    print(table(load_runs(args.storage), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
