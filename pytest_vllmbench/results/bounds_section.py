"""The report's "What bounds each cell" section: GPU busy beside the CPU share of each process, the engines'
effective settings where two modes of one model differ, and offline vs server called only when the rounds'
95 % intervals separate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

from pytest_vllmbench.measure.engine_settings import differing
from pytest_vllmbench.measure.rounds import plus_minus, stat
from pytest_vllmbench.results.summary import bound_text

MISSING = "-"
Cell = Mapping[str, Any]
Group = tuple[str, str, str]  # (machine, model, workload)


def _pct(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) and not isinstance(value, bool) else MISSING


def _rate(cell: Cell, metric: str) -> str:
    text = plus_minus(cell, metric)
    if text is not None:
        return text
    value = cell.get(metric)
    return f"{value:,.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else MISSING


def compare_modes(first: Cell, second: Cell, metric: str = "requests_per_s") -> str | None:
    """'offline faster', 'server faster' or 'no difference shown (intervals overlap)'; None without rounds."""
    a, b = stat(first, metric), stat(second, metric)
    if a is None or b is None:
        return None
    if a["ci95_low"] > b["ci95_high"]:
        return f"{first.get('mode')} faster"
    if b["ci95_low"] > a["ci95_high"]:
        return f"{second.get('mode')} faster"
    return "no difference shown (intervals overlap)"


def bounds_section(latest: Sequence[tuple[str, str, Cell]]) -> str:
    """`latest`: (machine, workload label, cell) of the newest cells; only cells that saved `bound_by` count."""
    rows: list[list[str]] = []
    groups: dict[Group, list[Cell]] = defaultdict(list)
    for machine, workload, cell in latest:
        if not isinstance(cell.get("bound_by"), str):
            continue
        groups[(machine, str(cell.get("model", MISSING)), workload)].append(cell)
        rows.append(
            [
                machine,
                str(cell.get("cell", MISSING)),
                _rate(cell, "requests_per_s"),
                _rate(cell, "steady_requests_per_s"),
                _pct(cell.get("gpu_util_mean_pct")),
                _pct(cell.get("cpu_client_pct")),
                _pct(cell.get("cpu_api_server_pct")),
                _pct(cell.get("cpu_engine_core_pct")),
                bound_text(cell),
            ]
        )
    if not rows:
        return "No saved cell says yet what bounds it (cells saved before bound_by was measured)."
    headers = ["Machine", "Cell", "req/s", "Steady req/s", "GPU busy %", "Client %", "API server %"]
    headers += ["Engine core %", "Bound by"]
    lines = [tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
    for (machine, model, workload), cells in groups.items():
        lines += _group_lines(machine, model, workload, cells)
    return "\n".join(lines).rstrip("\n")


def _group_lines(machine: str, model: str, workload: str, cells: list[Cell]) -> list[str]:
    lines = []
    by_mode = {cell.get("mode"): cell for cell in cells}
    if "offline" in by_mode and "server" in by_mode:
        verdict = compare_modes(by_mode["offline"], by_mode["server"])
        if verdict is not None:
            lines.append(
                f"- {model} on {machine} ({workload}): offline {_rate(by_mode['offline'], 'requests_per_s')} vs "
                f"server {_rate(by_mode['server'], 'requests_per_s')} req/s (95 % intervals of the rounds): {verdict}."
            )
    for key in differing(cells):
        values = ", ".join(f"{cell.get('mode')} {cell['engine_settings'].get(key)}" for cell in cells)
        lines.append(f"- {model} on {machine}: the engines ran with different `{key}` ({values}).")
    return lines
