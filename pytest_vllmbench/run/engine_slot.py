"""Session state: the live engines. One at a time, started on first use and stopped before the next; under
--interleave, the engines of one model live together (their cells' rounds alternate) until another model's starts."""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllmbench.engines.base import Engine, EngineStartError
from pytest_vllmbench.engines.cell_plan import CellPlan

EngineKey = tuple[str, str]  # (model source, mode): Cell.engine_key


class EngineSlot:
    def __init__(self, start: Callable[[CellPlan], Engine], keep_model_engines: bool = False) -> None:
        self._start = start
        self._keep_model_engines = keep_model_engines
        self._engines: dict[EngineKey, Engine] = {}  # in the order they started
        self._failed: dict[EngineKey, str] = {}

    def get(self, plan: CellPlan) -> Engine:
        """The cell's engine; a start that failed once is not retried for the same engine."""
        key = plan.cell.engine_key
        if key in self._failed:
            raise EngineStartError(self._failed[key])
        if key in self._engines:
            return self._engines[key]
        self.close(keep_model=key[0] if self._keep_model_engines else None)
        try:
            engine = self._start(plan)
        except EngineStartError as exc:
            self._failed[key] = str(exc)
            raise
        self._engines[key] = engine
        return engine

    def close(self, keep_model: str | None = None) -> None:
        """Stop the live engines (but those of `keep_model`), last started first; every one is stopped even when
        one of them fails to, and the first failure is raised after."""
        stopping = [key for key in reversed(self._engines) if key[0] != keep_model]
        errors: list[BaseException] = []
        for key in stopping:
            engine = self._engines.pop(key)
            try:
                engine.close()
            except BaseException as exc:  # the others must still stop; an error is raised below
                errors.append(exc)
        if errors:  # Ctrl-C or SIGTERM before an engine's own error: the session must end
            raise next((exc for exc in errors if not isinstance(exc, Exception)), errors[0])

    def alive(self) -> int:
        """How many engines are up."""
        return len(self._engines)
