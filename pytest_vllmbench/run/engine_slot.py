"""Session state: at most one live engine, started on first use and stopped before the next."""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllmbench.engines.base import Engine, EngineStartError
from pytest_vllmbench.engines.cell_plan import CellPlan


class EngineSlot:
    def __init__(self, start: Callable[[CellPlan], Engine]) -> None:
        self._start = start
        self._key: tuple[str, str] | None = None
        self._engine: Engine | None = None
        self._failed: dict[tuple[str, str], str] = {}

    def get(self, plan: CellPlan) -> Engine:
        """The cell's engine; a start that failed once is not retried for the same engine."""
        cell = plan.cell
        if cell.engine_key in self._failed:
            raise EngineStartError(self._failed[cell.engine_key])
        if self._key != cell.engine_key:
            self.close()
            try:
                self._engine = self._start(plan)
            except EngineStartError as exc:
                self._failed[cell.engine_key] = str(exc)
                raise
            self._key = cell.engine_key
        assert self._engine is not None
        return self._engine

    def close(self) -> None:
        engine, self._engine, self._key = self._engine, None, None
        if engine is not None:
            engine.close()
