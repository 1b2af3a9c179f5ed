"""A cell's rounds pooled over its runs on one boot of one machine.

Runs of one cell repeated on one lent machine, in alternating order (offline, server, offline, ...), are one
comparison: their rounds together give the interval the "Offline vs server" verdicts use. Runs from different
boots (other leases) are never pooled: machines and minutes differ more than rounds do.
"""

from __future__ import annotations

from pytest_vllmbench.measure.rounds import round_statistics
from pytest_vllmbench.results.latest import cell_key
from pytest_vllmbench.results.saved_run import SavedCell, is_ok
from pytest_vllmbench.results.storage import SavedRun


def run_number(run: SavedRun) -> str:
    return run.name.split("_", 1)[0]


def conditions(cell: SavedCell) -> tuple[object, ...]:
    """What a run of a cell must share with another for their rounds to be one sample: the workload with its
    request count, the engine and its args, sampling, warm-up, the prefix-cache policy, and whether the GPU was
    shared (--interleave)."""
    return (
        repr(cell.dataset),
        cell.n_requests,
        repr(cell.engine),
        repr(cell.engine_args),
        repr(cell.sampling),
        cell.warmup_rounds,
        cell.prefix_cache,
        bool(cell.interleaved),
    )


def same_boot(runs: list[SavedRun], run: SavedRun, cell: SavedCell) -> list[tuple[SavedRun, SavedCell]]:
    """This cell's results with rounds from every run on the boot that ran `run`, under the same conditions,
    oldest first."""
    if run.boot is None or not cell.rounds:
        return []
    key, alike = cell_key(run, cell), conditions(cell)
    return [
        (other, saved)
        for other in runs
        if other.boot == run.boot
        for saved in other.cells
        if cell_key(other, saved) == key and conditions(saved) == alike and is_ok(saved) and saved.rounds
    ]


def pooled_cell(runs: list[SavedRun], run: SavedRun, cell: SavedCell) -> SavedCell:
    """`cell` with its round statistics over every same-boot run of it and 'pooled_from', those runs' numbers
    (only its own when it is the one run); `cell` itself when its boot is unknown or it ran no rounds."""
    found = same_boot(runs, run, cell)
    if not found:
        return cell
    pooled_from = {"pooled_from": [run_number(other) for other, _ in found]}
    if len(found) == 1:
        return cell.with_figures(pooled_from)
    rounds = [figures for _, saved in found for figures in saved.rounds or []]
    return cell.with_figures({"round_stats": round_statistics(rounds), **pooled_from})
