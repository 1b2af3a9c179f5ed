"""Offline vs server for one model, machine and workload, called only when the rounds' 95 % intervals separate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_vllmbench.measure.rounds import central
from pytest_vllmbench.results.answer import intervals_overlap
from pytest_vllmbench.results.bottleneck import full_in_shared_gpu, preemptions_per_100, saved_bound
from pytest_vllmbench.results.job_hours import job_hours_separate, job_note
from pytest_vllmbench.results.labels import api_servers, base_variant, fmt, rate, server_setting, side_label, variant
from pytest_vllmbench.results.pooled_rounds import compared, on_two_boots
from pytest_vllmbench.results.saved_run import SavedCell, is_ok

Cell = Mapping[str, Any]
Group = tuple[str, str, str]  # (machine, model, workload)


NOT_SETTLED = {
    "two boots": "not yet a verdict: the two ran on two boots (repeat both on one boot, both ways round)",
    "one order": "not yet a verdict: one order only (repeat them the other way round on one boot)",
    "order unknown": "not yet a verdict: their order is not known (repeat them one at a time, both ways round)",
}


def compare_modes(first: Cell, second: Cell, metric: str = "requests_per_s", *, settled: bool = True) -> str | None:
    """'offline faster', 'server (4 API servers) faster' or 'no difference shown (intervals overlap)'; None without
    rounds. Where the intervals separate but the runs did not go both ways round (not `settled`): 'offline ahead',
    a lead in that order, not a verdict."""
    overlap = intervals_overlap(first, second, metric)  # the report's one tie rule
    if overlap is None:
        return None
    if overlap:
        return "no difference shown (intervals overlap)"
    faster = first if (central(first, metric) or 0.0) > (central(second, metric) or 0.0) else second
    return f"{side_label(faster)} {'faster' if settled else 'ahead'}"


def mode_verdicts(latest: Sequence[tuple[str, str, Cell]]) -> str:
    """`latest`: (machine, workload label, cell) of the newest cells. Offline is compared with each server cell of
    the model (plain, at each `--api-server-count`, and run with its own engine args or client processes), and the
    plain server with each of the others."""
    lines = [
        verdict_line(first, second, f"{model} on {machine} ({workload})")
        for (machine, model, workload), first, second in verdict_pairs(latest)
    ]
    return "\n".join(lines) if lines else "No model has both an offline and a server cell on one machine and workload."


def verdict_pairs(latest: Sequence[tuple[str, str, Cell]]) -> list[tuple[Group, Cell, Cell]]:
    """The pairs `mode_verdicts` judges, each with its (machine, model, workload), as the tables show the two."""
    groups: dict[Group, dict[str, Cell]] = defaultdict(dict)
    for machine, workload, cell in latest:
        if cell.get("mode") not in ("offline", "server") or cell.get("sweep") or not is_ok(cell):
            continue
        typed = SavedCell.of(cell)
        if typed.copy > 1:  # a run's later copy of a cell: its tables show it, the verdicts take the first
            continue
        if not server_setting(cell):
            groups[(machine, _model(cell, variant(typed)), workload)][side_label(cell)] = cell
            continue
        # a server run with its own engine args or client processes: compared with the model's plain cells, as
        # 'server (stream_interval=8)', and with an offline cell run with the same, as 'server' under their variant
        groups[(machine, _model(cell, base_variant(typed)), workload)][side_label(cell)] = cell
        unset = _without_setting(typed)
        groups[(machine, _model(cell, variant(typed)), workload)][side_label(unset)] = unset
    return [(group, first, second) for group, sides in groups.items() for first, second in _pairs(sides)]


def _model(cell: Cell, variant_text: str) -> str:
    budget = cell.get("gpu_memory_budget_gib")
    model = str(cell.get("model", "-")) + (f" ({variant_text})" if variant_text else "")
    return model + ("" if budget is None else f" ({budget:g} GiB budget)")


def _without_setting(cell: SavedCell) -> SavedCell:
    """The cell as its variant's group names it: 'server', its engine args and client processes in the group's name;
    so is its newest run's own copy, which a verdict takes where the pair was not pooled."""
    unset: dict[str, Any] = {"engine_args_set": None, "client_processes": None}
    newest, paired = cell.get("newest"), cell.get("paired") or {}
    changes = dict(unset)
    if isinstance(newest, Mapping):
        changes["newest"] = SavedCell.of(newest).with_figures(unset)
    if paired:
        changes["paired"] = {partner: SavedCell.of(found).with_figures(unset) for partner, found in paired.items()}
    return cell.with_figures(changes)


def _pairs(sides: Mapping[str, Cell]) -> list[tuple[Cell, Cell]]:
    """Offline with each server side, the plain server with each other one, and a server at an API server count with
    the same count run with its own engine args or client processes."""
    servers = sorted(
        (cell for cell in sides.values() if cell.get("mode") == "server"), key=lambda c: api_servers(c) or 0
    )
    pairs = [(sides["offline"], server) for server in servers] if "offline" in sides else []
    plain = sides.get("server")
    pairs += [(plain, server) for server in servers if plain is not None and server is not plain]
    return pairs + [
        (same_count, server)
        for server in servers
        if server_setting(server) and api_servers(server) is not None
        for same_count in servers
        if api_servers(same_count) == api_servers(server) and not server_setting(same_count)
    ]


def verdict_line(first: Cell, second: Cell, where: str) -> str:
    """A mode is called faster (or sooner on the job) only where the two went both ways round: pooled over runs
    repeated in alternating order, or rounds interleaved. Otherwise a separation is a lead in that one order (or
    across two boots), 'ahead', and the line ends saying what would make it a verdict."""
    shown = (first, second)
    first, second = compared(first, second)
    settled = alternated(first, second)
    verdict = compare_modes(first, second, settled=settled)
    if verdict is None:
        verdict = "not called: no rounds on both sides"
    steady = compare_modes(first, second, "steady_requests_per_s", settled=settled)
    steady_text = "" if steady is None else f"; steady rate: {steady}"
    names = (side_label(first), side_label(second))
    return (
        f"- {where}: {names[0]} {rate(first)} vs {names[1]} {rate(second)} req/s"
        f"{order_note(first, second, shown)}: {verdict}{steady_text}{job_note(first, second, names, settled=settled)}"
        f"{kv_note(first, second)}{'' if settled else unsettled_note(first, second)}."
    )


def unsettled_note(first: Cell, second: Cell) -> str:
    """'; not yet a verdict: ...' where a pair not run both ways round separates in its rate, steady rate or job
    hours; else ''."""
    metrics = ("requests_per_s", "steady_requests_per_s")
    separated = any(intervals_overlap(first, second, metric) is False for metric in metrics)
    if not separated and not job_hours_separate(first, second):
        return ""
    return f"; {NOT_SETTLED[unsettled_reason(first, second)]}"


def unsettled_reason(first: Cell, second: Cell) -> str:
    """Why a pair that did not go both ways round is no verdict: a key of NOT_SETTLED."""
    if on_two_boots(first, second):
        return "two boots"
    return "one order" if ran_first(first, second) else "order unknown"


def alternated(first: Cell, second: Cell) -> bool:
    """Whether the pair's rounds went both ways round: interleaved, or pooled over runs in alternating order."""
    return _interleaved(first, second) or bool(first.get("pooled_from") and second.get("pooled_from"))


def _interleaved(first: Cell, second: Cell) -> bool:
    return str(second.get("cell")) in (first.get("interleaved") or ()) and str(first.get("cell")) in (
        second.get("interleaved") or ()
    )


def order_note(first: Cell, second: Cell, shown: tuple[Cell, Cell] | None = None) -> str:
    """' (rounds interleaved)' when the two cells' rounds alternated (--interleave); which runs' rounds were pooled
    where results.pooled_rounds pooled the pair; else, where a verdict is called on one run of each mode, which mode
    ran first (that order's drift is in the verdict); else ''. With `shown` (the two as the tables show them): a side
    the tables pool but this pair takes as its newest run alone says so, as its figure differs from theirs."""
    notes = ["rounds interleaved"] if _interleaved(first, second) else []
    if first.get("pooled_from") and second.get("pooled_from"):
        runs = "; ".join(f"{side_label(cell)} {', '.join(cell['pooled_from'])}" for cell in (first, second))
        notes.append(f"rounds pooled over runs both ways round on one boot of the machine: {runs}")
    if not notes and compare_modes(first, second) is not None:
        notes.append(one_run_note(first, second))
    if first.get("shared_boot_run") and second.get("shared_boot_run"):
        notes.append(shared_boot_note(first, second))
    alone = [alone_note(cell, table) for cell, table in zip((first, second), shown or (), strict=False)]
    notes += [note for note in alone if note]
    return f" ({'; '.join(notes)})" if notes else ""


def alone_note(compared_as: Cell, shown: Cell) -> str:
    """'offline as its run 0051 alone, where the tables pool 0049, 0051', or '' where the pair takes the cell as the
    tables show it (or from another boot: the shared-boot note says so)."""
    runs = shown.get("pooled_from")
    if not runs or len(runs) < 2 or compared_as is not shown.get("newest"):
        return ""
    run = (compared_as.get("saved_at") or {}).get("number")
    return f"{side_label(shown)} as its run {run or 'newest'} alone, where the tables pool {', '.join(runs)}"


def shared_boot_note(first: Cell, second: Cell) -> str:
    """Where a pair was taken from the newest boot that ran both (results.pooled_rounds), not from the newest runs:
    which side's newer run is elsewhere."""
    runs = "" if first.get("pooled_from") else f"runs {first['shared_boot_run']} and {second['shared_boot_run']}, "
    newer = [side_label(cell) for cell in (first, second) if cell.get("newer_elsewhere")]
    elsewhere = (
        f"a newer run of {newer[0]} is on another boot"
        if len(newer) == 1
        else f"newer runs of {' and '.join(newer)} are on other boots"
    )
    return f"{runs}the newest boot that ran both: {elsewhere}"


def one_run_note(first: Cell, second: Cell) -> str:
    """How a verdict on one run of each mode was taken: on two boots (two leases: their drift is in the verdict, and
    it can exceed any order's), else in which order; from `saved_at` (results.pooled_rounds)."""
    if on_two_boots(first, second):
        return "one run each, on two boots of the machine"
    mode = ran_first(first, second)
    return "one run each, " + ("order not saved" if mode is None else f"one order: {mode} first")


def ran_first(first: Cell, second: Cell) -> str | None:
    """The mode of the cell that ran first, by `saved_at` (results.pooled_rounds): in one run by their places in it,
    else by their runs' save times (then files, as the runs are read oldest first); None when either was not saved
    with it, a run has no save time, or pytest-xdist workers ran the two side by side (their places in the merged
    run are no order)."""
    one, other = first.get("saved_at"), second.get("saved_at")
    if not one or not other or one == other:
        return None
    if one["run"] == other["run"] and first.get("xdist_worker") != second.get("xdist_worker"):
        return None
    if one["run"] != other["run"] and not (one["time"] and other["time"]):
        return None
    order = ("time", "run", "place")
    return side_label(first if [one[k] for k in order] < [other[k] for k in order] else second)


def kv_note(*cells: Cell) -> str:
    """'; KV cache full: server 23.9 preemptions per 100 requests (0.45 of the GPU each, --interleave)' for the cells
    the KV cache bounded: their rates say as much about the memory each engine had as about the mode."""
    full = [cell for cell in cells if saved_bound(cell) == "kv-cache"]
    if not full:
        return ""
    parts = [f"{side_label(cell)} {fmt(preemptions_per_100(cell), 1)} preemptions per 100 requests" for cell in full]
    shares = {
        (cell.get("engine_args") or {}).get("gpu_memory_utilization") for cell in full if full_in_shared_gpu(cell)
    }
    where = f" ({fmt(shares.pop())} of the GPU each, --interleave)" if len(shares) == 1 and None not in shares else ""
    unread = [side_label(cell) for cell in cells if preemptions_per_100(cell) is None]
    unknown = f"; {' and '.join(unread)} preemptions not saved" if unread else ""
    return f"; KV cache full: {' and '.join(parts)}{where}{unknown}"
