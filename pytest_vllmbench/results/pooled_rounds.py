"""Offline and server rounds pooled over runs repeated in alternating order on one boot of one machine.

Runs of a model's two modes (or of its server at two API server counts) repeated on one lent machine, one engine at
a time, in alternating order (offline, server, offline, ...) are one comparison: their rounds together give the
intervals the "Offline vs server" verdicts and the Answer use. Nothing is pooled unless the runs are on one boot,
each mode's runs share its conditions, and the runs went both ways round (an offline run before a server run and one
after): repeats in one order would keep the order's drift on one side. Runs of two boots (two leases) are never
pooled together.

Which boot a comparison takes: the boot of both modes' newest runs where they share one (the Answer ranks these).
Where they are on two known boots, the verdicts take the newest boot that ran both under the newest runs' conditions
(pooled there where those runs went both ways round): a verdict across boots has the leases' drift in it, which can
exceed any gap between modes. Only where no boot ran both, or a newest run has no boot saved (it may be of the other
side's lease), are the two newest runs compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_vllmbench.measure.rounds import round_statistics
from pytest_vllmbench.results.job_hours import on_round_means
from pytest_vllmbench.results.labels import api_servers, server_setting
from pytest_vllmbench.results.latest import CellKey, Latest, cell_key, numbered, place_in, plain_key, sibling_key
from pytest_vllmbench.results.saved_run import SavedCell, is_ok
from pytest_vllmbench.results.storage import SavedRun

Cell = Mapping[str, Any]
Placed = tuple[str, str, SavedCell]  # (machine, workload label, cell), as the verdicts take them
Found = list[tuple[SavedRun, SavedCell]]


def conditions(cell: SavedCell) -> str:
    """What two runs of a cell must share for their rounds to be one sample: the workload and its request count,
    the load point, the engine and its args, sampling, warm-up and prefix-cache policy."""
    return json.dumps(
        [
            cell.dataset,
            cell.n_requests,
            cell.load,
            cell.engine,
            cell.engine_args,
            cell.sampling,
            cell.warmup_rounds,
            cell.prefix_cache,
        ],
        sort_keys=True,
        default=str,
    )


def same_boot(runs: Sequence[SavedRun], run: SavedRun, cell: SavedCell) -> Found:
    """This cell's results with rounds from every run on the boot that ran `run`, under its conditions, oldest
    first; none when the boot is unknown, the cell ran no rounds, or its engine shared the GPU (--interleave, whose
    rounds alternate already)."""
    if run.boot is None or not cell.rounds or cell.interleaved:
        return []
    return by_boot(runs, cell_key(run, cell), conditions(cell)).get(run.boot, [])


def by_boot(runs: Sequence[SavedRun], key: CellKey, alike: str) -> dict[str, Found]:
    """The results with rounds of the cell `key` under the conditions `alike`, by the boot that ran them, each boot's
    oldest first; runs with no boot saved are left out."""
    found: dict[str, Found] = {}
    for run in runs:
        boot = run.boot
        if boot is None:
            continue
        for saved in numbered(run):
            if cell_key(run, saved) == key and conditions(saved) == alike and is_ok(saved) and saved.rounds:
                found.setdefault(boot, []).append((run, saved))
    return found


def both_ways_round(first: Found, second: Found) -> bool:
    """Whether a run of `first` came before a run of `second` and another after one."""
    first_times, second_times = _saved_order(first), _saved_order(second)
    return min(first_times) < max(second_times) and min(second_times) < max(first_times)


def _saved_order(found: Found) -> list[tuple[str, str]]:
    return [(run.datetime, run.name) for run, _ in found]  # runs saved within one second: by name (number)


def pooled(run: SavedRun, cell: SavedCell, found: Found) -> SavedCell:
    """The cell with every run's rounds, their statistics, the runs' mean loading time (what the job hours project
    with) and projected energy, and its newest run's own figures (`newest`) for a comparison it was not pooled for."""
    rounds = [figures for _, saved in found for figures in saved.rounds or []]
    loads = [saved.load_s for _, saved in found if saved.load_s is not None]
    energy = [saved.projected_kwh for _, saved in found if saved.projected_kwh is not None]
    return cell.with_figures(
        {
            "rounds": rounds,
            "round_stats": round_statistics(rounds),
            "load_s": sum(loads) / len(loads) if loads else cell.load_s,
            "projected_kwh": round(sum(energy) / len(energy), 4) if energy else cell.projected_kwh,
            "pooled_from": [run.number for run, _ in found],
            "newest": saved_at(run, cell),
        }
    )


def compared(first: Cell, second: Cell, *, shared_boot: bool = True) -> tuple[Cell, Cell]:
    """Two cells as a comparison of the two takes them: with `shared_boot`, from the newest boot that ran both where
    their newest runs are on two boots (`paired`); else pooled where each was pooled with the other (their runs went
    both ways round together), else each as its newest run saved it (what the Answer ranks: `shared_boot=False`)."""
    own = (first.get("paired") or {}).get(second.get("compared_as"))
    theirs = (second.get("paired") or {}).get(first.get("compared_as"))
    if shared_boot and own is not None and theirs is not None:
        return own, theirs
    mutual = second.get("pooled_as") in (first.get("pooled_with") or ()) and first.get("pooled_as") in (
        second.get("pooled_with") or ()
    )
    return (first, second) if mutual else (first.get("newest", first), second.get("newest", second))


def boot_of(cell: Cell) -> str | None:
    """The boot that ran the cell as `pooled_latest` shows it (a pooled cell: its newest run's); None where unsaved."""
    newest = cell.get("newest") or {}
    boot = (cell.get("saved_at") or newest.get("saved_at") or {}).get("boot")
    return boot if isinstance(boot, str) else None


def on_two_boots(first: Cell, second: Cell) -> bool:
    """Whether the two cells are known to have run on two boots (two leases, or one machine restarted)."""
    boots = {boot_of(first), boot_of(second)}
    return None not in boots and len(boots) == 2


def saved_at(run: SavedRun, cell: SavedCell) -> SavedCell:
    """The cell with where it was saved, to tell which of two cells ran first: its run's save time and file, its
    place in the run (pytest-benchmark saves a session's cells in the order they were measured) and the run's boot."""
    place = place_in(run, cell)
    return cell.with_figures(
        {
            "saved_at": {
                "time": run.datetime,
                "run": str(run.path),
                "number": run.number,
                "place": place,
                "boot": run.boot,
            }
        }
    )


def pooled_latest(runs: Sequence[SavedRun], latest: Latest) -> Latest:
    """`latest` with each cell pooled over its newest run's boot's runs where they went both ways round with those of
    a cell it is compared with on that boot (offline with each server cell of the model, the plain server with each
    API server count and each server run with its own engine args or client processes;
    `pooled_with` names those cells by `pooled_as`, the cell id with its variant and budget), the others with where
    they were saved (`saved_at`), and every cell with rounds at their means (`job_hours.on_round_means`). A pair whose
    newest runs are on different boots is taken from the newest boot that ran both: each cell's `paired` holds it as
    that comparison takes it, by the partner's `compared_as`."""
    replaced: dict[CellKey, SavedCell] = {}
    paired: dict[CellKey, dict[str, SavedCell]] = {}
    for key, (_, cell) in latest.items():
        if cell.mode != "server" or cell.copy > 1:  # a run's later copies: the verdicts take the first
            continue
        partners = [sibling_key(key, cell, f"{cell.model}-offline")]
        if api_servers(cell) is not None:
            partners.append(sibling_key(key, cell, f"{cell.model}-server"))
        if server_setting(cell):
            partners += [plain_key(key, cell, f"{cell.model}-offline"), plain_key(key, cell, cell.cell)]
            if api_servers(cell) is not None:  # the plain server is compared with every server side
                partners.append(plain_key(key, cell, f"{cell.model}-server"))
        for partner_key in partners:
            if partner_key is None or partner_key not in latest:
                continue
            boots = {latest[partner_key][0].boot, latest[key][0].boot}
            if len(boots) == 1:
                _pool(runs, latest, (partner_key, key), replaced)
            elif None not in boots:  # a run with no boot saved may be of either lease: its pair stays as it is
                _pair_on_shared_boot(runs, latest, (partner_key, key), paired)
    return {
        key: (run, _with_pairs(key, replaced.get(key) or saved_at(run, cell), paired))
        for key, (run, cell) in latest.items()
    }


def _with_pairs(key: CellKey, cell: SavedCell, paired: Mapping[CellKey, Mapping[str, SavedCell]]) -> SavedCell:
    """The cell at its rounds' means, with `paired` (its pairs taken from an older boot, by partner id) and
    `compared_as` (its own id) where it has such pairs."""
    shown = on_round_means(cell)
    if key not in paired:
        return shown
    pairs = {partner: on_round_means(found) for partner, found in paired[key].items()}
    return shown.with_figures({"paired": pairs, "compared_as": key[1]})


def _pair_on_shared_boot(
    runs: Sequence[SavedRun], latest: Latest, keys: tuple[CellKey, CellKey], into: dict[CellKey, dict[str, SavedCell]]
) -> None:
    """Both cells of `keys`, whose newest runs are on two boots, as their comparison takes them from the newest boot
    that ran both under their newest runs' conditions: pooled there where their runs went both ways round, else each
    as its newest run on that boot saved it; each marked `shared_boot_run` (that run's number) and
    `newer_elsewhere` (whether its own newest run is on another boot)."""
    found = newest_shared_boot(runs, latest, keys)
    if found is None:
        return
    newest_there = [side[-1] for side in found]
    together = not any(cell.interleaved for _, cell in newest_there) and both_ways_round(*found)
    for key, (own_run, own), own_found, partner_key in zip(keys, newest_there, found, reversed(keys), strict=True):
        shown = pooled(own_run, own, own_found) if together else saved_at(own_run, own)
        marks = {"shared_boot_run": own_run.number, "newer_elsewhere": latest[key][0].boot != own_run.boot}
        into.setdefault(key, {})[partner_key[1]] = shown.with_figures(marks)


def newest_shared_boot(
    runs: Sequence[SavedRun], latest: Latest, keys: tuple[CellKey, CellKey]
) -> tuple[Found, Found] | None:
    """Each cell's results with rounds on the newest boot that ran both, under the conditions of the cell's newest
    run (`latest`), oldest first; None where no boot did."""
    first, second = (by_boot(runs, key, conditions(latest[key][1])) for key in keys)
    shared = set(first) & set(second)
    if not shared:
        return None
    newest = max(shared, key=lambda boot: max(_saved_order(first[boot] + second[boot])))
    return first[newest], second[newest]


def placed(pooled: Latest) -> list[Placed]:
    """The cells of `pooled_latest` as the verdicts take them."""
    return [(key[0], key[2], cell) for key, (_, cell) in pooled.items()]


def _pool(
    runs: Sequence[SavedRun], latest: Latest, keys: tuple[CellKey, CellKey], into: dict[CellKey, SavedCell]
) -> None:
    """Both cells of `keys`, whose newest runs share a boot, pooled into `into`, each naming the other in
    `pooled_with`, when their runs there went both ways round."""
    (run, cell), (other_run, other) = latest[keys[0]], latest[keys[1]]
    found, other_found = same_boot(runs, run, cell), same_boot(runs, other_run, other)
    if not found or not other_found or not both_ways_round(found, other_found):
        return
    for key, own_run, own, own_found, partner_key in (
        (keys[0], run, cell, found, keys[1]),
        (keys[1], other_run, other, other_found, keys[0]),
    ):
        done = into.get(key) or pooled(own_run, own, own_found).with_figures({"pooled_as": key[1]})
        into[key] = done.with_figures({"pooled_with": [*(done.get("pooled_with") or []), partner_key[1]]})
