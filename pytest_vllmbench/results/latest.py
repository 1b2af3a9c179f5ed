"""Which saved cells the report's tables show: the newest of each cell per machine and workload."""

from __future__ import annotations

from pytest_vllmbench.results.labels import api_servers, base_variant, budget_key, variant, workload
from pytest_vllmbench.results.saved_run import COPY_KEY, SavedCell
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


def plain_key(key: CellKey, cell: SavedCell, plain_id: str) -> CellKey:
    """The key the model's cell `plain_id` ('m-offline', or the server's own id 'm-server', 'm-server-api4') has beside
    this server cell run with its own engine args or client processes (labels.server_setting): the same GPU split,
    budget, machine and workload, without them."""
    machine, _, workload = key
    return (machine, f"{plain_id} {base_variant(cell)}{budget_key(cell)}", workload)


def numbered(run: SavedRun) -> list[SavedCell]:
    """The run's cells, each later measured copy of one cell (two tests of one cell) marked as which copy it is
    (`copy 2` in every label), so that no copy hides another."""
    copies: dict[CellKey, int] = {}
    cells = []
    for cell in run.cells:
        key = cell_key(run, cell)
        copies[key] = count = copies.get(key, 0) + int(cell.ok)
        cells.append(cell if count <= 1 or not cell.ok else cell.with_figures({COPY_KEY: count}))
    return cells


def place_in(run: SavedRun, cell: SavedCell) -> int:
    """Where this cell (one of `run.cells` or of `numbered(run)`) was saved in its run: a cell saved twice, this copy."""
    key = cell_key(run, cell)
    return next(
        place
        for place, (saved, copy) in enumerate(zip(run.cells, numbered(run), strict=True))
        if cell is saved or (cell.copy > 1 and cell_key(run, copy) == key)
    )


def _first_copy(run: SavedRun, cell: SavedCell) -> CellKey:
    return cell_key(run, cell if cell.copy == 1 else cell.with_figures({COPY_KEY: None}))


def latest_cells(runs: list[SavedRun]) -> Latest:
    """The newest saved result of each (machine, cell and its GPU split, workload): every measured copy of it in the
    newest run that holds it, where a measured copy wins over an unrun or failed entry of that run."""
    latest: Latest = {}
    for run in runs:  # oldest first, so newer replace
        here: Latest = {}
        for cell in numbered(run):
            key = cell_key(run, cell)
            if cell.ok or key not in here:
                here[key] = (run, cell)
        replaced = {_first_copy(run, cell) for _, cell in here.values()}
        for key, (older, cell) in list(latest.items()):
            if key not in here and _first_copy(older, cell) in replaced:
                del latest[key]  # an older run's later copy of a cell this run holds
        latest.update(here)
    return latest


def superseded_by(run: SavedRun, cell: SavedCell, latest: Latest) -> SavedRun | None:
    """The run holding the current result of this cell (one of `numbered(run)`): a newer run, or this one where a
    measured copy of it won over this unrun entry; None when this is the current result."""
    holder = latest.get(cell_key(run, cell)) or latest.get(_first_copy(run, cell))
    if holder is None or (holder[0] is run and (cell.ok or holder[1] is cell)):
        return None
    return holder[0]  # a newer run, or this run's measured copy where this entry did not run
