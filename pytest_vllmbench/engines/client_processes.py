"""A cell's requests sent from several client processes (`--client-processes N`), for a server faster than one
Python process can read: one event loop streams about 230 answers of 128 tokens a second on one core
(docs/measurements.md, Client ceiling: 4.3 ms of a core per answer in a full cell), and a server streaming token by
token costs it one read per token.

The processes start with the engine, before any timed round, and end with it. A batch is dealt round-robin:
process k sends requests k, k + N, k + 2N, ...; the concurrency is split evenly between them (only as many
processes send as divide it) and a request rate keeps one Poisson schedule for the whole batch. Records come back
as they finish and are handed on in request order, as from one process; a process that runs far ahead of the
slowest one waits (`window_size`), so what waits here for the slower ones stays bounded. The processes count as the
cell's client in what bounds it (measure/host_load.py).
"""

from __future__ import annotations

import os
import pickle
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import islice
from typing import IO, Any

from pytest_vllmbench.engines.arrivals import arrival_offsets
from pytest_vllmbench.engines.base import EngineStartError, SamplingOverrides
from pytest_vllmbench.engines.client_worker import Job
from pytest_vllmbench.engines.openai_client import LOOKAHEAD, MAX_IN_FLIGHT, ClientConfig, Schedule, stream_batch
from pytest_vllmbench.engines.record_stream import InOrder
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.measure.request_record import RequestRecord
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.batch_file import BatchFile

MODULE = "pytest_vllmbench.engines.client_worker"
READY_TIMEOUT_S = 120.0
STOP_WAIT_S = 5.0


class ClientProcessError(RuntimeError):
    """A client process could not start, or ended in the middle of a batch."""


class ClientsNotReady(ClientProcessError, EngineStartError):
    """The client processes could not start: the engine's start fails."""


class Sender:
    """How an engine's requests go out: from this process, or from its client processes."""

    def __init__(self, processes: int) -> None:
        self._pool = ClientPool(processes) if processes > 1 else None

    def send(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        config: ClientConfig,
        progress: CellProgress | None,
    ) -> Iterator[RequestRecord]:
        if self._pool is None:
            return stream_batch(requests, sampling, config, progress)
        return self._pool.stream(requests, sampling, config, progress)

    def wait_ready(self) -> None:
        """Returns once every client process can send (before a timed round: their start is not timed)."""
        if self._pool is not None:
            self._pool.wait_ready()

    def pids(self) -> frozenset[int]:
        return frozenset(self._pool.pids()) if self._pool is not None else frozenset()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def share(requests: Sequence[BatchRequest], k: int, count: int) -> Sequence[BatchRequest]:
    """Requests k, k + count, k + 2 count, ...: a view of a batch file, so no process holds the batch."""
    if isinstance(requests, BatchFile):
        return requests.pick(range(k, len(requests), count))
    return list(islice(requests, k, None, count))


def processes_used(count: int, total: int, concurrency: int | None) -> int:
    """How many of `count` processes send a batch: no more than its requests, and, under a concurrency, the most
    that split it evenly, so that every process runs its equal share of the batch at an equal share of the slots
    (--concurrency=3 over 2 processes would leave one of them twice as long at one slot)."""
    used = min(count, total, concurrency or total)
    while concurrency is not None and used > 1 and concurrency % used:
        used -= 1
    return used


def _read(k: int, pipe: IO[bytes], inbox: queue.SimpleQueue[tuple[int, tuple[str, Any]]]) -> None:
    try:
        while True:
            inbox.put((k, pickle.load(pipe)))
    except EOFError:
        inbox.put((k, ("gone", "its output ended")))
    except BaseException as exc:  # whatever ends the reading, the batch must hear of it, not wait forever
        inbox.put((k, ("gone", f"its output could not be read: {type(exc).__name__}")))


def window_size(in_flight: int, count: int) -> int:
    """How far past the request the slowest process is taking up the others may send: room for every request in
    flight and each process's look-ahead, twice over, so the window only holds back a process that has run far
    ahead of the others (whose records would otherwise wait here, in memory, for the slower ones')."""
    return 2 * (min(in_flight, MAX_IN_FLIGHT) + count * LOOKAHEAD)


def concurrency_share(concurrency: int | None, k: int, count: int) -> int | None:
    if concurrency is None:
        return None
    return concurrency // count + (1 if k < concurrency % count else 0)


class ClientPool:
    def __init__(self, count: int) -> None:
        self.count = count
        self._inbox: queue.SimpleQueue[tuple[int, tuple[str, Any]]] = queue.SimpleQueue()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._ready = False
        self._closed = False
        self._busy = False  # a batch is being sent
        self._batch = 0  # the batches begun
        self._start()

    def _start(self) -> None:
        """A fresh set of processes, reporting into a fresh inbox (nothing of an earlier set can reach a batch)."""
        inbox: queue.SimpleQueue[tuple[int, tuple[str, Any]]] = queue.SimpleQueue()
        self._inbox, self._processes, self._ready = inbox, [], False
        try:
            for k in range(self.count):
                process = subprocess.Popen(
                    [sys.executable, "-m", MODULE, str(os.getpid())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    start_new_session=True,  # a Ctrl-C is this process's to act on; it stops them
                )
                self._processes.append(process)
                assert process.stdout is not None
                threading.Thread(target=_read, args=(k, process.stdout, inbox), daemon=True).start()
        except BaseException:
            self.close(at_once=True)
            raise

    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def wait_ready(self) -> None:
        if self._ready:
            return
        waiting = set(range(self.count))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while waiting:
            try:
                k, (kind, _) = self._inbox.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise ClientsNotReady(f"client process(es) not ready after {READY_TIMEOUT_S:.0f} s") from None
            if kind != "ready":
                raise ClientsNotReady(f"client process {self._processes[k].pid} ended before it was ready")
            waiting.discard(k)
        self._ready = True

    def stream(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        config: ClientConfig,
        progress: CellProgress | None,
    ) -> Iterator[RequestRecord]:
        """A generator: nothing is sent before its first record is asked for, and a batch left unfinished (the
        caller failed, an interrupt, a process died) stops every process, so no later batch can get its records."""
        if self._closed:
            raise ClientProcessError("the client processes were stopped")
        if self._busy:  # an earlier batch's caller failed and kept its generator: its processes start afresh
            self._restart()
        self._busy = True
        self._batch += 1
        mine = self._batch
        finished = False
        try:
            self.wait_ready()
            total = len(requests)
            cap = (
                config.concurrency
                if config.concurrency is not None
                else (MAX_IN_FLIGHT if total > MAX_IN_FLIGHT else None)
            )
            used = processes_used(self.count, total, config.concurrency)
            schedule = None
            if config.request_rate:
                due = arrival_offsets(total, config.request_rate, random.Random(config.seed))
                schedule = Schedule(due, time.perf_counter())
            window = window_size(cap or total, used)
            processes, inbox = self._processes[:used], self._inbox  # this batch's, whatever happens to the pool
            for k, process in enumerate(processes):
                part = replace(
                    config, concurrency=concurrency_share(cap, k, used), request_rate=None, on_sent=None, processes=1
                )
                own = Schedule(schedule.due[k::used], schedule.start) if schedule is not None else None
                trace = config.on_sent is not None
                _send(process, ("job", Job(share(requests, k, used), sampling, part, own, trace, (k, used), window)))
            yield from _records(processes, inbox, total, config, progress, window)
            finished = True
        finally:
            if self._batch == mine:  # not a later batch's processes
                if not finished and not self._closed:  # cut short: nothing may go on sending
                    self._restart()  # the next batch gets new processes
                self._busy = False

    def _restart(self) -> None:
        self._stop(at_once=True)
        self._start()  # they load while the caller handles what cut the batch short

    def close(self, at_once: bool = False) -> None:
        self._closed = True
        self._stop(at_once)

    def _stop(self, at_once: bool = False) -> None:
        """End every process: end of file ends an idle one; SIGKILL (by pid) one still sending after STOP_WAIT_S,
        or `at_once`."""
        for process in self._processes:
            if process.stdin is not None and not process.stdin.closed:
                try:
                    process.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + STOP_WAIT_S
        for process in self._processes:
            try:
                process.wait(0.0 if at_once or not self._ready else max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                pass
            if process.poll() is None:
                process.kill()
                process.wait(STOP_WAIT_S)


def _send(process: subprocess.Popen[bytes], message: tuple[str, Any]) -> None:
    assert process.stdin is not None
    try:
        pickle.dump(message, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        process.stdin.flush()
    except OSError:
        raise ClientProcessError(f"client process {process.pid} is gone") from None


def _records(
    processes: list[subprocess.Popen[bytes]],
    inbox: queue.SimpleQueue[tuple[int, tuple[str, Any]]],
    total: int,
    config: ClientConfig,
    progress: CellProgress | None,
    window: int,
) -> Iterator[RequestRecord]:
    """The batch's records in request order. Each process's window ends `window` past the request the slowest
    process still sending is taking up (each says which with its records)."""
    used = len(processes)
    ready: list[RequestRecord] = []
    order = InOrder(ready.append)
    taking = list(range(used))  # the batch position each process is taking up
    running = set(range(used))
    sent_end = window
    while running:
        k, (kind, payload) = inbox.get()
        if kind == "batch":
            records, sent, next_index = payload
            if config.on_sent is not None:
                for custom_id, at in sent:
                    config.on_sent(custom_id, at)
            for position, record in records:
                if progress is not None:
                    progress.finished(record.ok, record.output_tokens)
                order.put(k + position * used, record)
            yield from ready
            ready.clear()
            taking[k] = k + next_index * used
            end = min(taking[j] for j in running) + window
            if end - sent_end >= max(window // 4, 1):
                sent_end = end
                for j in running:
                    _send(processes[j], ("window", end))
        elif kind == "end":
            running.discard(k)
        elif kind == "raised":
            raise payload
        else:
            raise ClientProcessError(f"client process {processes[k].pid} ended in the middle of a batch ({payload})")
    if order.next != total:
        raise ClientProcessError(f"the client processes handed back {order.next} of {total} records")
