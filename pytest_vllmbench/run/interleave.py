"""--interleave: the order in which the timed rounds of one model's cells alternate, so that drift over minutes and
the advantage of whoever runs first fall on every cell alike.

Round 1 runs the cells in matrix order, round 2 in reverse, round 3 in order again (A B, B A, A B): each cell is
first as often as it is last, give or take one round. Models follow each other, so one model's engines are
alive together and stopped before the next model's start."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_vllmbench.config.matrix import Cell


@dataclass(frozen=True)
class CellRound:
    cell: Cell
    round: int  # 1-based: the cell's round number

    @property
    def id(self) -> str:
        """The test id; the saved run folds a cell's rounds back into one entry named by the cell's id."""
        return f"{self.cell.id}{ROUND_SUFFIX}{self.round}"


ROUND_SUFFIX = "-round"


def is_round_of(test_id: str, cell_id: str) -> bool:
    """Whether `test_id` is one of the cell's round tests (CellRound.id)."""
    prefix = cell_id + ROUND_SUFFIX
    return test_id.startswith(prefix) and test_id[len(prefix) :].isdigit()


def interleaved_rounds(cells: Sequence[Cell], rounds: int) -> list[CellRound]:
    """Every cell `rounds` times, one model's cells alternating round by round, models in matrix order."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.model.alias, []).append(cell)
    order = []
    for group in groups.values():
        for number in range(1, rounds + 1):
            turn = group if number % 2 else list(reversed(group))
            order += [CellRound(cell, number) for cell in turn]
    return order


def group_ids(cells: Sequence[Cell], cell: Cell) -> list[str] | None:
    """The ids of the cells that alternate with `cell` (its model's), in their first round's order, itself included;
    None when it has no other cell to alternate with."""
    group = [other.id for other in cells if other.model.alias == cell.model.alias]
    return group if len(group) > 1 else None
