"""Records handed on in request order as they finish, from an event loop in a thread of its own: the caller
stores each one as it comes, so a batch of any size holds only its requests in flight. The records finished in one
turn of the loop are handed over together: one wake-up of the caller's thread (which takes the GIL from the loop)
per turn, not per request."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from pytest_vllmbench.measure.metrics import RequestRecord

Emit = Callable[[RequestRecord], None]


class InOrder:
    """Takes (position, record) in any order and emits records in position order. A request slower than those
    after it holds their records here until it ends (at most the request timeout)."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.next = 0
        self._waiting: dict[int, RequestRecord] = {}

    def put(self, position: int, record: RequestRecord) -> None:
        self._waiting[position] = record
        while self.next in self._waiting:
            self.emit(self._waiting.pop(self.next))
            self.next += 1

    def finish(self, count: int, missing: Callable[[int], RequestRecord]) -> None:
        """Emit the rest up to `count` positions, `missing(position)` standing in for each one never put."""
        while self.next < count:
            found = self._waiting.pop(self.next) if self.next in self._waiting else missing(self.next)
            self.emit(found)
            self.next += 1


_END = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def records_from_thread(
    work: Callable[[Emit], Coroutine[Any, Any, object]], loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> Iterator[RequestRecord]:
    """Run `work(emit)` on an event loop in a thread and yield what it emits. Closing the iterator early (the
    caller failed) cancels the work, so no request is left running."""
    handed: queue.SimpleQueue[object] = queue.SimpleQueue()
    started: dict[str, Any] = {}
    ready: list[RequestRecord] = []

    def hand_over() -> None:
        if ready:
            handed.put(ready.copy())
            ready.clear()

    def emit(record: RequestRecord) -> None:  # on the loop's thread
        if not ready:  # the records finished in this turn of the loop go over together, at its end
            started["loop"].call_soon(hand_over)
        ready.append(record)

    def run() -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                started["loop"] = runner.get_loop()
                runner.run(_tracked(work(emit), started))
        except BaseException as exc:  # handed to the caller's thread, which raises it after the records before it
            hand_over()
            handed.put(_Raised(exc))
        finally:
            hand_over()
            handed.put(_END)

    thread = threading.Thread(target=run, name="vllmbench-client", daemon=True)
    thread.start()
    finished = False
    try:
        while (item := handed.get()) is not _END:
            if isinstance(item, _Raised):
                raise item.error
            yield from item  # type: ignore[misc]
        finished = True
    finally:
        if not finished and (task := started.get("task")) is not None:
            try:
                started["loop"].call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has closed already: the work is over
                pass
        thread.join()


async def _tracked(work: Coroutine[Any, Any, object], started: dict[str, Any]) -> object:
    started["task"] = asyncio.current_task()
    return await work
