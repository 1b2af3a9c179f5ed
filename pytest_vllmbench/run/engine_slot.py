"""Session state: the live engines. One at a time, started on first use and stopped before the next; under
--interleave, the engines of one model live together (their cells' rounds alternate) until another model's starts.
Under --start-ahead, the next engine of the session starts beside the one loading now, and the slot hands the
current one over only once that one serves too (idle: a timed cell never runs beside an engine that loads)."""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllmbench.engines.base import Engine, EngineStartError, EngineStartTimeout, PendingEngine
from pytest_vllmbench.engines.cell_plan import CellPlan

EngineKey = tuple[str, str]  # (model source, mode): Cell.engine_key


class EngineSlot:
    def __init__(
        self,
        start: Callable[[CellPlan], Engine],
        keep_model_engines: bool = False,
        start_ahead: Callable[[CellPlan], PendingEngine | None] | None = None,
    ) -> None:
        self._start = start
        self._start_ahead = start_ahead
        self._keep_model_engines = keep_model_engines
        self._engines: dict[EngineKey, Engine] = {}  # in the order they started
        self._ahead: dict[EngineKey, PendingEngine] = {}  # started ahead, not yet serving
        self._handed: set[EngineKey] = set()  # started ahead and serving, their cells yet to come: kept
        self._failed: dict[EngineKey, str] = {}
        self.overlapped: set[EngineKey] = set()  # engines whose start ran beside another's (load_s longer)

    def get(self, plan: CellPlan, ahead: CellPlan | None = None) -> Engine:
        """The cell's engine; a start that failed once is not retried for the same engine. `ahead`: the session's
        next engine, started beside this one when this one has to start (and its mode can start ahead)."""
        key = plan.cell.engine_key
        if key in self._failed:
            raise EngineStartError(self._failed[key])
        self._handed.discard(key)
        self.close(keep_model=key[0] if self._keep_model_engines else None, keep={key} | self._handed)
        if key in self._ahead:
            self._serving_ahead(key)
        if key in self._engines:
            return self._engines[key]
        if ahead is not None and self._start_ahead is not None and ahead.cell.engine_key not in self._failed:
            self._begin_ahead(ahead, beside=key)
        try:
            engine = self._start(plan)
        except EngineStartError as exc:
            self._failed[key] = str(exc)
            raise
        self._engines[key] = engine
        for other in list(self._ahead):  # handed over only once the other serves: it idles while this cell runs
            self._serving_ahead(other)
        return engine

    def _begin_ahead(self, plan: CellPlan, beside: EngineKey) -> None:
        assert self._start_ahead is not None
        key = plan.cell.engine_key
        if key in self._engines or key in self._ahead:
            return
        try:
            pending = self._start_ahead(plan)
        except Exception:  # its cell starts it in its turn, and says then what is wrong
            return
        if pending is not None:
            self._ahead[key] = pending
            self.overlapped |= {key, beside}

    def _serving_ahead(self, key: EngineKey) -> None:
        """Wait until the engine started ahead serves; one that failed to start is started again in its turn (alone,
        it may have the memory it lacked), but not one that ran out of its start timeout: that would cost it twice."""
        try:
            engine = self._ahead[key].wait()
        except EngineStartError as exc:
            del self._ahead[key]  # its processes are stopped
            if isinstance(exc, EngineStartTimeout):
                self._failed[key] = (
                    f"{exc}\n(it was started ahead, beside another engine: not started again; without --start-ahead "
                    "it loads alone, or give it a longer --server-timeout)"
                )
            else:
                self.overlapped.discard(key)  # its cell starts it again, alone
            return
        del self._ahead[key]  # only now: a Ctrl-C while waiting leaves it here for close() to cancel
        self._engines[key] = engine
        self._handed.add(key)

    def close(self, keep_model: str | None = None, keep: set[EngineKey] | None = None) -> None:
        """Stop the live engines and those starting ahead (but those in `keep` and of `keep_model`), last started
        first; every one is stopped even when one of them fails to, and the first failure is raised after. An
        engine started again later loads alone: it is no longer marked overlapped."""
        kept = keep or set()
        errors: list[BaseException] = []
        for key in [key for key in reversed(self._ahead) if key not in kept and key[0] != keep_model]:
            self.overlapped.discard(key)
            try:
                self._ahead.pop(key).cancel()
            except BaseException as exc:  # the others must still stop; an error is raised below
                errors.append(exc)
        for key in [key for key in reversed(self._engines) if key not in kept and key[0] != keep_model]:
            self.overlapped.discard(key)
            self._handed.discard(key)
            engine = self._engines.pop(key)
            try:
                engine.close()
            except BaseException as exc:  # the others must still stop; an error is raised below
                errors.append(exc)
        if errors:  # Ctrl-C or SIGTERM before an engine's own error: the session must end
            raise next((exc for exc in errors if not isinstance(exc, Exception)), errors[0])

    def beside(self, key: EngineKey) -> frozenset[int]:
        """The processes of the live engines other than `key`'s: idle while its cell runs (--interleave,
        --start-ahead), they are not that cell's host load."""
        return frozenset(
            pid for other, engine in self._engines.items() if other != key for pid in engine.process_pids()
        )

    def alive(self) -> int:
        """How many engines are up (those still starting ahead not counted)."""
        return len(self._engines)
