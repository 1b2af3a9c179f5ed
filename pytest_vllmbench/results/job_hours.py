"""What a gap between offline and server costs the whole job: each mode's projected hours, round by round.

A whole-run rate on a few thousand requests counts the ramp to the first completions once per round; a job of
170,000 pays it once. So each timed round (pooled rounds too) is projected to the job as a cell projects itself
(`measure.metrics.projected_hours`: loading, one ramp-up and tail, the rest at the steady rate), and the two modes'
projections are compared by their 95 % intervals, like the rates. The same projections give a cell with rounds the
job hours the Answer and the Ranking score it on (`on_round_means`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_vllmbench.measure.metrics import projected_hours
from pytest_vllmbench.measure.rounds import central, interval, mean_plus_minus, overlap
from pytest_vllmbench.results.labels import finite, fmt
from pytest_vllmbench.results.saved_run import SavedCell

Cell = Mapping[str, Any]
JobIntervals = tuple[int, Mapping[str, Any], Mapping[str, Any]]  # the job's size, then each side's projected hours


def job_note(
    offline: Cell, server: Cell, names: tuple[str, str] = ("offline", "server"), *, settled: bool = True
) -> str:
    """'; 170,000 requests: offline 0.55 ± 0.01 h, server 0.57 ± 0.03 h, no difference shown', where both cells
    project the same job; '' where they do not or a rate is missing. `names` label the two cells in that order.
    Where the intervals separate: 'offline sooner', or where the runs did not go both ways round (not `settled`)
    'offline ahead'."""
    projected = job_intervals(offline, server)
    if projected is None:
        return ""
    size, first, second = projected
    hours_text = f"{names[0]} {mean_plus_minus(first)} h, {names[1]} {mean_plus_minus(second)} h"
    outcome = job_outcome(first, second, names, settled=settled)
    return f"; {fmt(size)} requests: {hours_text}{f', {outcome}' if outcome else ''}"


def job_hours_separate(offline: Cell, server: Cell) -> bool:
    """Whether the two cells' projected job hours have 95 % intervals that do not overlap."""
    projected = job_intervals(offline, server)
    if projected is None:
        return False
    _, first, second = projected
    return first.get("ci95_half") is not None and second.get("ci95_half") is not None and not overlap(first, second)


def job_intervals(offline: Cell, server: Cell) -> JobIntervals | None:
    """(job size, offline's projected hours, server's) as 95 % intervals over their rounds; None where the two do
    not project one job or a rate is missing."""
    size = offline.get("project_to")
    if not isinstance(size, int) or isinstance(size, bool) or size != server.get("project_to"):
        return None
    # one formula for both modes: with the steady rate only where every round of both measured one
    with_steady = _steady_known(offline) and _steady_known(server)
    hours = [_round_hours(cell, size, with_steady) for cell in (offline, server)]
    if not hours[0] or not hours[1]:
        return None
    return size, interval(hours[0]), interval(hours[1])


def on_round_means(cell: SavedCell) -> SavedCell:
    """A cell with rounds as the Answer and the Ranking score it: at its rounds' mean rate and the mean of their
    projected job hours (each projected as the cell projects itself), its cost at those hours; a run saves its last
    round's. Other cells as they are."""
    size, rate = cell.project_to, central(cell, "requests_per_s")
    if size is None or len(cell.rounds or []) < 2 or rate is None:
        return cell
    hours = _round_hours(cell, size, _steady_known(cell))
    if not hours:
        return cell
    mean_hours = sum(hours) / len(hours)
    saved_hours, cost = cell.projected_hours, cell.projected_cost
    scaled = round(cost * mean_hours / saved_hours, 2) if cost is not None and saved_hours else cost
    return cell.with_figures(
        {"requests_per_s": rate, "projected_hours": round(mean_hours, 3), "projected_cost": scaled}
    )


def _rounds(cell: Cell) -> list[Mapping[str, Any]]:
    rounds = cell.get("rounds") or []
    return list(rounds) if len(rounds) >= 2 else [cell]  # one timed round: the cell's own figures


def _done(cell: Cell) -> int:
    requests, failed = cell.get("n_requests"), cell.get("n_failed") or 0
    return requests - failed if isinstance(requests, int) and isinstance(failed, int) else 0


def _steady_known(cell: Cell) -> bool:
    steady = [r.get("steady_requests_per_s") for r in _rounds(cell)]
    return _done(cell) > 0 and all(isinstance(value, (int, float)) and finite(value) and value > 0 for value in steady)


def _round_hours(cell: Cell, size: int, with_steady: bool) -> list[float]:
    load_s = cell.get("load_s") if finite(cell.get("load_s")) else None
    hours = []
    for figures in _rounds(cell):
        rate = float(figures["requests_per_s"]) if finite(figures.get("requests_per_s")) else 0.0
        steady = figures.get("steady_requests_per_s") if with_steady else None
        projected = projected_hours(rate, size, load_s, steady, _done(cell))
        if projected is None:  # no rate
            return []
        hours.append(projected)
    return hours


def job_outcome(first: Mapping[str, Any], second: Mapping[str, Any], names: tuple[str, str], *, settled: bool) -> str:
    """Two projected-hours intervals judged: 'offline sooner', 'no difference shown', or 'offline ahead' where the
    runs did not go both ways round (not `settled`); '' where either has no rounds."""
    if first.get("ci95_half") is None or second.get("ci95_half") is None:
        return ""
    if overlap(first, second):
        return "no difference shown"
    return f"{names[0] if first['mean'] < second['mean'] else names[1]} {'sooner' if settled else 'ahead'}"
