"""`vllmbench compare RUN_A RUN_B`: every gateable figure of every cell side by side, with the change and the noise.

Pure: takes two saved runs, returns rows; the CLI prints them as a table, markdown or JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.measure.cell_record import FIGURES
from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.answer import intervals_overlap
from pytest_vllmbench.results.gate import START_AHEAD_NOTE, by_cell, start_ahead_differs
from pytest_vllmbench.results.labels import fmt
from pytest_vllmbench.results.storage import SavedRun

GATEABLE = tuple(name for name, figure in FIGURES.items() if figure.better is not None)
FORMATS = ("table", "markdown", "json")


@dataclass(frozen=True)
class Row:
    cell: str
    figure: str
    better: str  # higher | lower
    a: float | None
    b: float | None
    change_pct: float | None  # (b - a) / |a|, None without both or with a == 0
    overlap: bool | None  # whether the 95 % intervals overlap; None unless both cells ran rounds
    verdict: str  # better | worse | same | within the noise | - (not comparable)


def resolve(runs: Sequence[SavedRun], spec: str) -> SavedRun:
    """'latest' (the newest run), 'latest~N' (N runs before it), a run number (3 or 0003), a name (bench,
    0001_bench) or MACHINE_ID/FILE path."""
    back = re.fullmatch(r"latest(?:~(\d+))?", spec)
    if back:
        steps = int(back[1] or 0)
        if steps >= len(runs):
            raise UsageError(f"{spec!r}: only {len(runs)} saved run(s)")
        return runs[-1 - steps]
    found = []
    for run in runs:
        number, _, name = run.name.partition("_")
        if spec in (run.name, name, number, number.lstrip("0"), str(run.path), run.path.as_posix()):
            found.append(run)
    if not found:
        raise UsageError(f"no saved run {spec!r} (give latest, a number, a name or MACHINE_ID/NNNN_name.json)")
    if len(found) > 1:
        paths = ", ".join(str(run.path) for run in found)
        raise UsageError(f"{spec!r} names several runs ({paths}): give the path, MACHINE_ID/NNNN_name.json")
    return found[0]


def unlike_cells(run_a: SavedRun, run_b: SavedRun) -> list[str]:
    """The cells in both runs that ran beside a --start-ahead engine in one of them only."""
    cells_a, cells_b = by_cell(run_a.cells), by_cell(run_b.cells)
    return [key for key in sorted(set(cells_a) & set(cells_b)) if start_ahead_differs(cells_a[key], cells_b[key])]


def _change(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a == 0:
        return None
    return (b - a) / abs(a) * 100.0


def _verdict(change: float | None, overlap: bool | None, better: str) -> str:
    if change is None or not math.isfinite(change):
        return "-"
    if overlap:
        return "within the noise"
    if abs(change) < 0.05:
        return "same"
    return "better" if (change > 0) == (better == "higher") else "worse"


def compare(run_a: SavedRun, run_b: SavedRun) -> tuple[list[Row], list[str], list[str]]:
    """Rows for every cell in both runs (figures either side has), then the cells only in A and only in B."""
    cells_a, cells_b = by_cell(run_a.cells), by_cell(run_b.cells)
    rows = []
    for key in sorted(set(cells_a) & set(cells_b)):
        first, second = cells_a[key], cells_b[key]
        for name in GATEABLE:
            a, b = central(first, name), central(second, name)
            if a is None and b is None:
                continue
            better = str(FIGURES[name].better)
            change, overlap = _change(a, b), intervals_overlap(first, second, name)
            rows.append(Row(key, name, better, a, b, change, overlap, _verdict(change, overlap, better)))
    only_a = sorted(set(cells_a) - set(cells_b))
    only_b = sorted(set(cells_b) - set(cells_a))
    return rows, only_a, only_b


def _number(name: str, value: float | None) -> str:
    counted = value is not None and value.is_integer() and FIGURES[name].unit in ("", "MiB")
    return fmt(int(value)) if counted and value is not None else fmt(value)


def _pct(change: float | None) -> str:
    return "-" if change is None else f"{change:+,.1f} %"


def _overlap_text(overlap: bool | None) -> str:
    return "-" if overlap is None else "yes" if overlap else "no"


def render(run_a: SavedRun, run_b: SavedRun, output: str = "table") -> str:
    from tabulate import tabulate

    rows, only_a, only_b = compare(run_a, run_b)
    if output == "json":
        return json.dumps(
            {
                "a": str(run_a.path),
                "b": str(run_b.path),
                "rows": [asdict(row) for row in rows],
                "only_in_a": only_a,
                "only_in_b": only_b,
                "start_ahead_in_one_run_only": unlike_cells(run_a, run_b),
            },
            indent=2,
        )
    table = tabulate(
        [
            [
                row.cell,
                row.figure,
                row.better,
                fmt(row.a),
                fmt(row.b),
                _pct(row.change_pct),
                _overlap_text(row.overlap),
                row.verdict,
            ]
            for row in rows
        ],
        ["Cell", "Figure", "Better", "A", "B", "Change", "CIs overlap", "Verdict"],
        tablefmt="github" if output == "markdown" else "simple",
        disable_numparse=True,
    )
    lines = [
        f"A: {run_a.path} ({run_a.machine}, {run_a.datetime[:19]})",
        f"B: {run_b.path} ({run_b.machine}, {run_b.datetime[:19]})",
        "",
    ]
    lines.append(table if rows else "No cell is in both runs.")
    if only_a:
        lines += ["", "Only in A: " + ", ".join(only_a)]
    if only_b:
        lines += ["", "Only in B: " + ", ".join(only_b)]
    if run_a.machine != run_b.machine:
        lines += ["", "Note: the runs come from different machines."]
    if unlike := unlike_cells(run_a, run_b):
        lines += ["", f"Note: {', '.join(unlike)} {START_AHEAD_NOTE}."]
    return "\n".join(lines)
