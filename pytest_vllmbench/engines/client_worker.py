"""One client process of a cell's requests (`--client-processes N`, started by client_processes.py).

`python -m pytest_vllmbench.engines.client_worker STARTER_PID`: says it is ready, then takes jobs from its stdin, each a share
of a batch, and sends back on its stdout each turn of its event loop's finished records (with their places in its
share) and, for traces, when each request went. Messages are pickles both ways: the pipes are its starter's alone.
It ends at end of file on its stdin, or within a second of its starter's death (checked by its parent's pid).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import select
import signal
import sys
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


class Outbox:
    """What finished in one turn of the loop goes to the starter together, at the turn's end."""

    def __init__(self, out: IO[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.out, self.loop = out, loop
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
            write(self.out, ("batch", (self.records, self.sent)))
            self.records, self.sent = [], []


def write(out: IO[bytes], message: tuple[str, Any]) -> None:
    out.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
    out.flush()


async def run_job(job: Job, out: IO[bytes], starter: int) -> None:
    outbox = Outbox(out, asyncio.get_running_loop())
    config = replace(job.config, on_sent=outbox.on_sent) if job.trace else job.config
    watch = asyncio.create_task(_starter_watch(starter))
    try:
        await send_all(job.requests, job.sampling, config, None, outbox.put, job.schedule)
    finally:
        watch.cancel()
        outbox.flush()


async def _starter_watch(starter: int) -> None:
    """A starter that died without closing the pipes (it cannot have: the kernel closes them) still leaves a
    request waiting on a dead server for its whole timeout; this ends the process within a second instead."""
    while os.getppid() == starter:
        await asyncio.sleep(STARTER_CHECK_S)
    os._exit(1)


def next_job(inbox: IO[bytes], starter: int) -> Job | None:
    """The next job, or None once the starter is gone: end of file, or no longer this process's parent (a process
    it forked may hold the pipe's write end, and keep end of file from coming)."""
    while os.getppid() == starter:
        readable, _, _ = select.select([inbox], [], [], STARTER_CHECK_S)
        if readable:
            try:
                job: Job = pickle.load(inbox)
            except EOFError:
                return None
            return job
    return None


def main(starter: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # its starter decides when it ends
    inbox = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # nothing else may write into the pipe: a stray print goes to stderr
    sys.stdout = sys.stderr
    import aiohttp  # noqa: F401  (imported before "ready": not inside a timed round)
    import httpx  # noqa: F401
    import httpx_aiohttp  # noqa: F401

    write(out, ("ready", os.getpid()))
    while (job := next_job(inbox, starter)) is not None:
        try:
            with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
                runner.run(run_job(job, out, starter))
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
