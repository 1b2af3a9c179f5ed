"""One client process of a cell's requests (`--client-processes N`, started by client_processes.py).

`python -m pytest_vllmbench.engines.client_worker STARTER_PID`: says it is ready, then takes jobs from its stdin, each a share
of a batch, and sends back on its stdout each turn of its event loop's finished records (with their places in its
share) and, for traces, when each request went. While a job runs, its starter moves on how far into the batch it
may send (`Window`). Messages are pickles both ways: the pipes are its starter's alone. It ends at end of file on its
stdin, or within a second of its starter's death (checked by its parent's pid).
"""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import IO, Any

from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.openai_client import ClientConfig, Schedule, fast_loop_factory, send_all
from pytest_vllmbench.measure.request_record import RequestRecord
from pytest_vllmbench.workload.batch import BatchRequest

STARTER_CHECK_S = 1.0


@dataclass(frozen=True)
class Job:
    requests: Sequence[BatchRequest]  # this process's share
    sampling: SamplingOverrides
    config: ClientConfig  # its concurrency is this process's part; no rate (the schedule has it), no callback
    schedule: Schedule | None
    trace: bool  # send back when each request went
    place: tuple[int, int]  # (k, count): request i of the share is the batch's k + i * count
    window_end: int  # the batch's requests before this may be sent; the starter moves it on


class Window:
    """How far into the batch this process may send: the starter keeps the end a window past the request the
    slowest process is taking up, so a process that runs ahead of the others waits instead of piling records up
    there, and a slow request holds back no more than it would in one process."""

    def __init__(self, end: int, place: tuple[int, int]) -> None:
        self.end: float = end
        self.k, self.count = place
        self.next = 0  # the share's request being taken up (all before it are): reported with every record
        self.moved = asyncio.Event()

    def move(self, end: float) -> None:
        if end > self.end:
            self.end = end
            self.moved.set()

    def open(self) -> None:
        self.move(math.inf)

    async def wait(self, index: int) -> None:
        """Until request `index` of the share is inside the window (send_all asks for one request at a time)."""
        self.next = index
        while self.k + index * self.count >= self.end:
            self.moved.clear()
            await self.moved.wait()


class Inbox:
    """Reads the starter's messages in a thread of its own: jobs to a queue, window ends to the running job's
    loop. None in the queue: the starter is gone."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._end = 0  # the newest window end of the newest job
        self._window: tuple[Window, asyncio.AbstractEventLoop] | None = None
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[bytes]) -> None:
        try:
            while True:
                kind, payload = pickle.load(pipe)
                with self._lock:  # held while the window is handed the end: the job cannot end in between
                    if kind == "job":
                        self._end = payload.window_end
                        self.jobs.put(payload)
                        continue
                    self._end = max(self._end, payload)
                    if self._window is not None:
                        window, loop = self._window
                        try:
                            loop.call_soon_threadsafe(window.move, payload)
                        except RuntimeError:  # the job's loop has just closed: the end is for no one
                            pass
        except (EOFError, OSError):  # the starter is gone
            self.jobs.put(None)
        except BaseException:  # a bug: said, then this process ends, and its starter hears so
            traceback.print_exc()
            self.jobs.put(None)

    def window(self, job: Job, loop: asyncio.AbstractEventLoop) -> Window:
        """The running job's window, from the newest end the starter sent for it (it may have sent one already)."""
        with self._lock:
            window = Window(self._end, job.place)
            self._window = (window, loop)
        return window

    def job_over(self) -> None:
        with self._lock:
            self._window = None

    def next_job(self, starter: int) -> Job | None:
        """The next job, or None once the starter is gone: end of file, or no longer this process's parent (a
        process it forked may hold the pipe's write end, and keep end of file from coming)."""
        while os.getppid() == starter:
            try:
                return self.jobs.get(timeout=STARTER_CHECK_S)
            except queue.Empty:
                continue
        return None


class Outbox:
    """What finished in one turn of the loop goes to the starter together, at the turn's end, with the request
    the process is taking up."""

    def __init__(self, out: IO[bytes], loop: asyncio.AbstractEventLoop, window: Window) -> None:
        self.out, self.loop, self.window = out, loop, window
        self.records: list[tuple[int, RequestRecord]] = []
        self.sent: list[tuple[str, float]] = []

    def _soon(self) -> None:
        if not self.records and not self.sent:
            self.loop.call_soon(self.flush)

    def put(self, position: int, record: RequestRecord) -> None:
        self._soon()
        self.records.append((position, record))

    def on_sent(self, custom_id: str, at: float) -> None:
        self._soon()
        self.sent.append((custom_id, at))

    def flush(self) -> None:
        if self.records or self.sent:
            write(self.out, ("batch", (self.records, self.sent, self.window.next)))
            self.records, self.sent = [], []


def write(out: IO[bytes], message: tuple[str, Any]) -> None:
    out.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()


async def run_job(job: Job, out: IO[bytes], starter: int, window: Window) -> None:
    outbox = Outbox(out, asyncio.get_running_loop(), window)
    config = replace(job.config, on_sent=outbox.on_sent) if job.trace else job.config
    watch = asyncio.create_task(_starter_watch(starter))
    try:
        await send_all(job.requests, job.sampling, config, None, outbox.put, job.schedule, window)
    finally:
        watch.cancel()
        outbox.flush()


async def _starter_watch(starter: int) -> None:
    """A starter that dies mid-job is not seen by the reads of its pipe (a process it forked may hold it open,
    and a request may wait on a dead server for its whole timeout): this ends the process within a second."""
    while os.getppid() == starter:
        await asyncio.sleep(STARTER_CHECK_S)
    os._exit(1)


def main(starter: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its starter decides when it ends
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing else may write into the pipe: a stray print goes to stderr
    sys.stdout = sys.stderr
    import aiohttp  # noqa: F401  (imported before "ready": not inside a timed round)
    import httpx  # noqa: F401
    import httpx_aiohttp  # noqa: F401

    inbox = Inbox(sys.stdin.buffer)
    write(out, ("ready", os.getpid()))
    while (job := inbox.next_job(starter)) is not None:
        try:
            with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
                window = inbox.window(job, runner.get_loop())
                try:
                    runner.run(run_job(job, out, starter, window))
                finally:
                    inbox.job_over()  # before the loop closes: no window end may reach a closed loop
        except BrokenPipeError:  # its starter is gone
            return
        except Exception as exc:  # handed to the starter, which raises it in the cell
            write(out, ("raised", _picklable(exc)))
            continue
        write(out, ("end", None))


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


if __name__ == "__main__":
    main(int(sys.argv[1]))
