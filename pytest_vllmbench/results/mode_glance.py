"""Offline vs server at a glance: one row per offline cell and server side measured with rounds, judged on the job.

The verdict lines under it (results.mode_verdicts) give each pair's rates, steady rates and notes; this table
gives the answer a reader came for: which mode finishes the job sooner, on what runs, and what held each mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pytest_vllmbench.measure.rounds import mean_plus_minus
from pytest_vllmbench.results.job_hours import JobIntervals, job_intervals, job_outcome
from pytest_vllmbench.results.labels import fmt, rate, side_label
from pytest_vllmbench.results.markdown_table import markdown_table
from pytest_vllmbench.results.mode_verdicts import alternated, compare_modes, unsettled_reason, verdict_pairs
from pytest_vllmbench.results.pooled_rounds import compared
from pytest_vllmbench.results.summary import bound_text

Cell = Mapping[str, Any]

JOB = "Job h, offline / server"
HEADERS = [
    "Machine",
    "Model",
    "Requests",
    "Offline req/s",
    "Server",
    "Server req/s",
    JOB,
    "On the job",
    "Bound by, offline / server",
    "Runs, offline / server",
]
WHY_NOT_SETTLED = {"two boots": "two boots", "one order": "one order only", "order unknown": "order not known"}


class Pair(NamedTuple):
    machine: str
    model: str
    workload: str
    offline: Cell
    server: Cell
    job: JobIntervals | None  # both sides projected to one job, once per row


def glance_table(latest: Sequence[tuple[str, str, Cell]]) -> str | None:
    """The table and a line on the pairs it leaves out; None where no offline cell has a server side with rounds."""
    pairs, without_rounds = [], 0
    for (machine, model, workload), shown_offline, shown_server in verdict_pairs(latest):
        if shown_offline.get("mode") != "offline":
            continue
        offline, server = compared(shown_offline, shown_server)
        if compare_modes(offline, server) is None:
            without_rounds += 1
            continue
        pairs.append(Pair(machine, model, workload, offline, server, job_intervals(offline, server)))
    if not pairs:
        return None
    sizes = {pair.job[0] for pair in pairs if pair.job}
    one_size = sizes.pop() if len(sizes) == 1 else None
    with_workload = len({pair.workload for pair in pairs}) > 1
    rows = []
    # machine, model, workload; a model's server sides in the verdicts' order (the sort is stable)
    for pair in sorted(pairs, key=lambda pair: (pair.machine, pair.model, pair.workload)):
        row = _row(pair, one_size)
        rows.append(row[:2] + [pair.workload] + row[2:] if with_workload else row)
    headers = [*HEADERS]
    if one_size is not None:
        headers[HEADERS.index(JOB)] = f"Job h ({fmt(one_size)} requests), offline / server"
    if with_workload:
        headers.insert(2, "Workload")
    left_out = (
        f"\n\n{without_rounds} more offline/server pair{'s' if without_rounds != 1 else ''} lack rounds on one side"
        " or both: the lines below give them, uncalled."
        if without_rounds
        else ""
    )
    return markdown_table(rows, headers) + left_out


def _row(pair: Pair, one_size: int | None) -> list[str]:
    offline, server = pair.offline, pair.server
    server_side = side_label(server)
    return [
        pair.machine,
        pair.model,
        _requests(offline, server),
        rate(offline),
        server_side,
        rate(server),
        _job_hours(pair.job, one_size),
        _on_the_job(pair, server_side),
        f"{bound_text(offline)} / {bound_text(server)}",
        f"{_runs(offline)} / {_runs(server)}",
    ]


def _requests(offline: Cell, server: Cell) -> str:
    """The requests each side's rounds sent: one figure where they match (cells pair by dataset, not by count)."""
    counts = [fmt(cell.get("n_requests")) for cell in (offline, server)]
    return counts[0] if counts[0] == counts[1] else " / ".join(counts)


def _job_hours(job: JobIntervals | None, one_size: int | None) -> str:
    """Both projections; the job's size too unless every row projects the same one (the header names it)."""
    if job is None:
        return "-"
    size, first, second = job
    hours = f"{mean_plus_minus(first)} / {mean_plus_minus(second)}"
    return hours if size == one_size else f"{hours} ({fmt(size)} requests)"


def _on_the_job(pair: Pair, server_side: str) -> str:
    """'offline sooner', 'no difference shown', or 'server ahead (one order only)' where the runs did not go both
    ways round, as the verdict line below says it; '-' where the two do not project one job."""
    if pair.job is None:
        return "-"
    _, first, second = pair.job
    settled = alternated(pair.offline, pair.server)
    outcome = job_outcome(first, second, ("offline", server_side), settled=settled)
    if not outcome:
        return "-"
    if settled or outcome.startswith("no "):
        return outcome
    return f"{outcome} ({WHY_NOT_SETTLED[unsettled_reason(pair.offline, pair.server)]})"


def _runs(cell: Cell) -> str:
    pooled = cell.get("pooled_from")
    if pooled:
        return ", ".join(str(run) for run in pooled)
    number = (cell.get("saved_at") or {}).get("number")
    return str(number) if number else "-"
