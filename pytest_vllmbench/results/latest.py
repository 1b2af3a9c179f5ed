"""Which saved cells the report's tables show: the newest of each cell per machine and workload."""

from __future__ import annotations

from pytest_vllmbench.results.labels import api_servers, budget_key, variant, workload
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.results.storage import SavedRun

CellKey = tuple[str, str, str]  # (machine, cell with its variant and memory budget, workload label)
Latest = dict[CellKey, tuple[SavedRun, SavedCell]]


def cell_key(run: SavedRun, cell: SavedCell) -> CellKey:
    """What makes two saved cells the same cell: machine, id with GPU split, the user's engine args and memory budget,
    workload."""
    return (run.machine, f"{cell.cell} {variant(cell)}{budget_key(cell)}", workload(cell))


def sibling_key(key: CellKey, cell: SavedCell, sibling_id: str) -> CellKey | None:
    """The key the model's cell `sibling_id` ('m-offline', 'm-server', 'm-server-api4') has beside this model-mode
    cell (same GPU split, budget, machine and workload); None for a cell with more in its id than its mode and API
    server count (a sweep point, a Ray replica count)."""
    count = api_servers(cell)
    own = f"{cell.model}-{cell.mode}" + ("" if count is None else f"-api{count}")
    machine, cell_id, workload = key
    if cell.cell != own or not cell_id.startswith(f"{own} "):
        return None
    return (machine, sibling_id + cell_id.removeprefix(own), workload)


def latest_cells(runs: list[SavedRun]) -> Latest:
    """The newest saved result of each (machine, cell and its GPU split, workload)."""
    latest: Latest = {}
    for run in runs:  # oldest first, so newer overwrite
        for cell in run.cells:
            latest[cell_key(run, cell)] = (run, cell)
    return latest


def superseded_by(run: SavedRun, cell: SavedCell, latest: Latest) -> SavedRun | None:
    """The newer run holding this cell's current result, or None when this result is the current one."""
    newer, current = latest.get(cell_key(run, cell), (run, cell))
    return None if current is cell else newer
