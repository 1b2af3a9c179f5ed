"""--client-processes: one batch dealt to several client processes, against a real HTTP server in this process
(tests/openai_stub.py). Records come back whole, in request order, each its own request's; the load and the
schedule are kept; a process that dies or a batch cut short leaves nothing running."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from itertools import pairwise
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai_stub import StubServer

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines import client_processes
from pytest_vllmbench.engines.arrivals import arrival_offsets
from pytest_vllmbench.engines.base import SamplingOverrides
from pytest_vllmbench.engines.client_processes import (
    ClientProcessError,
    Sender,
    concurrency_share,
    processes_used,
    share,
)
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.measure.host_load import role_of
from pytest_vllmbench.results.labels import variant
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.workload.batch import BatchRequest
from pytest_vllmbench.workload.batch_file import open_batch

ROOT = Path(__file__).resolve().parents[1]


def chat(n: int) -> list[BatchRequest]:
    """Request i asks for i % 3 + 1 choices, so its answer's token count says which request it answers."""
    return [
        BatchRequest(f"r{i}", "/v1/chat/completions", {"model": "m", "messages": [], "n": i % 3 + 1}, i + 1)
        for i in range(n)
    ]


def tagged(n: int) -> list[BatchRequest]:
    """Requests whose body names their index (`metadata.i`), for a server that answers some of them slowly."""
    return [
        BatchRequest(f"r{i}", "/v1/chat/completions", {"model": "m", "messages": [], "metadata": {"i": i}}, i + 1)
        for i in range(n)
    ]


class Finished:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, int]] = []

    def finished(self, ok: bool, output_tokens: int) -> None:
        self.calls.append((ok, output_tokens))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_records_come_back_in_request_order_each_answering_its_own_request_from_every_process():
    with StubServer(["m"], words=3, peer_pids=True) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=6, processes=3)
        sender, progress = Sender(3), Finished()
        try:
            sender.wait_ready()
            workers = sender.pids()
            assert len(workers) == 3 and all(role_of(psutil.Process(pid), frozenset()) == "client" for pid in workers)
            records = list(sender.send(chat(40), SamplingOverrides(), config, progress))  # type: ignore[arg-type]
        finally:
            sender.close()
        posts = [seen for seen in stub.seen if seen["path"] == "/v1/chat/completions"]
    assert [r.custom_id for r in records] == [f"r{i}" for i in range(40)]
    assert [r.output_tokens for r in records] == [3 * (i % 3 + 1) for i in range(40)]
    assert len(progress.calls) == 40 and all(ok for ok, _ in progress.calls)
    assert len(posts) == 40
    # every request came from a client process, and each of them sent some
    assert {seen["peer_pid"] for seen in posts} == workers
    assert all(gone(pid) for pid in workers)


def test_a_rate_limited_batch_keeps_one_poisson_schedule_across_the_processes():
    rate, n = 10.0, 24  # 2.4 s: two schedules of their own would drift apart by ~1 s over it
    sent: dict[str, float] = {}
    with StubServer(["m"]) as stub:
        config = ClientConfig(
            f"http://127.0.0.1:{stub.port}/v1", "m", request_rate=rate, seed=3, processes=2, on_sent=sent.__setitem__
        )
        sender = Sender(2)
        try:
            sender.wait_ready()
            records = list(sender.send(chat(n), SamplingOverrides(), config, None))
        finally:
            sender.close()
    assert all(r.ok for r in records) and sorted(sent) == sorted(f"r{i}" for i in range(n))
    due = arrival_offsets(n, rate, random.Random(3))
    offsets = [sent[f"r{i}"] - due[i] for i in range(n)]  # each send's start of the schedule, as it saw it
    assert max(offsets) - min(offsets) < 0.3, offsets  # one schedule: the processes agree on its start


def test_a_batch_cut_short_stops_every_client_process():
    with StubServer(["m"], usage_delay_s=0.2) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=2, processes=2)
        sender = Sender(2)
        sender.wait_ready()
        workers = sender.pids()
        records = sender.send(chat(50), SamplingOverrides(), config, None)
        next(iter(records))
        records.close()  # type: ignore[attr-defined]  (the cell failed: the generator is closed)
        assert all(gone(pid) for pid in workers)
        again = list(sender.send(chat(4), SamplingOverrides(), config, None))  # from new processes
        assert [r.custom_id for r in again] == ["r0", "r1", "r2", "r3"] and sender.pids().isdisjoint(workers)
        sender.close()
        with pytest.raises(ClientProcessError, match="were stopped"):
            list(sender.send(chat(2), SamplingOverrides(), config, None))


def test_a_batch_whose_caller_failed_and_kept_it_cannot_hand_its_records_to_the_next():
    """The caller failed after its first record and a traceback keeps the generator alive (never closed)."""
    with StubServer(["m"], usage_delay_s=0.05) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=2, processes=2)
        sender = Sender(2)
        try:
            old_batch = [
                BatchRequest(f"old{i}", "/v1/chat/completions", {"model": "m", "messages": []}, i + 1)
                for i in range(30)
            ]
            kept = sender.send(old_batch, SamplingOverrides(), config, None)
            next(iter(kept))
            new = list(sender.send(chat(6), SamplingOverrides(), config, None))
            assert [r.custom_id for r in new] == [f"r{i}" for i in range(6)]
            del kept  # its end now must not touch the processes of the batch after it
            assert [r.custom_id for r in sender.send(chat(2), SamplingOverrides(), config, None)] == ["r0", "r1"]
        finally:
            sender.close()


@pytest.mark.parametrize(
    ("count", "total", "concurrency", "used"), [(2, 120, 3, 1), (3, 100, 64, 2), (4, 100, None, 4), (4, 2, None, 2)]
)
def test_only_as_many_processes_send_as_split_the_concurrency_evenly(count, total, concurrency, used):
    assert processes_used(count, total, concurrency) == used


def test_a_client_process_that_dies_mid_batch_fails_the_batch_and_stops_the_others():
    with StubServer(["m"], usage_delay_s=0.2) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=2, processes=2)
        sender = Sender(2)
        sender.wait_ready()
        workers = sorted(sender.pids())
        records = iter(sender.send(chat(50), SamplingOverrides(), config, None))
        next(records)
        os.kill(workers[0], signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(ClientProcessError, match=f"client process {workers[0]} ended in the middle of a batch"):
            list(records)
        assert time.monotonic() - started < 10
        assert all(gone(pid) for pid in workers)
        sender.close()


def test_one_process_sends_from_this_process_as_before():
    sender = Sender(1)
    assert sender.pids() == frozenset()
    with StubServer(["m"]) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m")
        records = list(sender.send(chat(5), SamplingOverrides(), config, None))
    assert [r.output_tokens for r in records] == [3, 6, 9, 3, 6]
    sender.close()


@given(st.integers(1, 10_000), st.integers(1, 64))
def test_the_concurrency_is_split_whole_between_the_processes(concurrency, count):
    parts = [concurrency_share(concurrency, k, count) for k in range(count)]
    assert sum(parts) == concurrency  # type: ignore[arg-type]
    assert max(parts) - min(parts) <= 1  # type: ignore[operator]
    assert concurrency_share(None, 0, count) is None


@given(st.lists(st.integers(), max_size=60), st.integers(1, 8))
def test_the_shares_dealt_round_robin_make_up_the_batch(items, count):
    requests = [BatchRequest(str(i), "/v1/chat/completions", {"v": v}, i + 1) for i, v in enumerate(items)]
    shares = [list(share(requests, k, count)) for k in range(count)]
    rebuilt = [shares[p % count][p // count] for p in range(len(requests))]
    assert rebuilt == requests


def test_a_batch_file_is_shared_as_views_of_the_file():
    batch = open_batch(ROOT / "data" / "batch_5k.jsonl", limit=10)
    parts = [share(batch, k, 3) for k in range(3)]
    assert all(type(part).__name__ == "BatchFile" for part in parts)  # no process holds the batch in memory
    assert [r.custom_id for r in parts[1]] == [batch[i].custom_id for i in (1, 4, 7)]


def test_a_cell_at_more_client_processes_is_kept_apart_in_the_report():
    one = SavedCell.of({"cell": "m-server", "model": "m", "mode": "server"})
    two = SavedCell.of({"cell": "m-server", "model": "m", "mode": "server", "client_processes": 2})
    assert (variant(one), variant(two)) == ("", "client processes 2")


@pytest.mark.parametrize(("value", "message"), [(0, ">= 1"), (65, "at most 64"), ("two", "expects a number")])
def test_client_processes_out_of_range_is_a_usage_error(value, message):
    with pytest.raises(UsageError, match=f"--client-processes .*{message}"):
        resolve(merge_sources({"client_processes": value}, {}, {}), ROOT)


def test_an_endpoint_cell_at_two_client_processes_sends_from_them_and_saves_how_many(pytester):
    pytester.makepyfile(test_batch="def test_batch(vllmbench_cell, benchmark):\n    vllmbench_cell.run(benchmark)\n")
    with StubServer(["served-model"], peer_pids=True) as stub:
        result = pytester.runpytest(
            "--mode=endpoint",
            f"--endpoint=http://127.0.0.1:{stub.port}",
            "--model=served-model",
            "--limit=6",
            f"--dataset={ROOT / 'data' / 'batch_5k.jsonl'}",
            "--client-processes=2",
            "--benchmark-save=two",
            "--report=report.md",
        )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    [path] = (pytester.path / ".benchmarks").rglob("*.json")
    [cell] = [bench["extra_info"] for bench in json.loads(path.read_text())["benchmarks"]]
    assert cell["client_processes"] == 2 and cell["n_requests"] == 6 and cell["n_failed"] == 0
    senders = {seen["peer_pid"] for seen in stub.seen if seen["body"] is not None}
    assert len(senders) == 2 and os.getpid() not in senders  # the batch went out from the two processes
    assert "served-model-endpoint (client processes 2)" in (pytester.path / "report.md").read_text()


STARTER = """
import os, sys, time
from pytest_vllmbench.engines.client_processes import Sender
sender = Sender(2)
sender.wait_ready()
forked = os.fork()
if forked == 0:  # as multiprocessing's fork: the pipes to the client processes come along
    time.sleep(300)
    os._exit(0)
print(forked, *sorted(sender.pids()), flush=True)
time.sleep(300)
"""


def test_client_processes_end_when_their_starter_is_killed_even_while_a_fork_holds_their_pipes():
    import subprocess
    import sys

    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert starter.stdout is not None
    forked, *workers = map(int, starter.stdout.readline().split())
    try:
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 10
        while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in workers if not gone(pid)]
    finally:
        for pid in [forked, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert left == []


def test_a_server_started_ahead_that_fails_leaves_no_client_process(tmp_path):
    import sys

    from pytest_vllmbench.engines.base import EngineStartError
    from pytest_vllmbench.engines.server import ServerEngine

    def exits(model: str, served: str, port: int, args: dict) -> list[str]:  # a server that dies as it starts
        return [sys.executable, "-c", "raise SystemExit(3)"]

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    engine = ServerEngine(
        "m", "m", {}, ClientConfig("", "m", processes=2), log_dir=tmp_path, command=exits, in_background=True
    )
    with pytest.raises(EngineStartError, match="exited with code 3"):
        engine.wait_started()
    left = [child for child in psutil.Process().children(recursive=True) if child.pid not in before]
    assert [child for child in left if child.status() != psutil.STATUS_ZOMBIE] == []


def test_a_process_that_runs_ahead_of_the_slowest_waits_so_records_do_not_pile_up(monkeypatch):
    """Process 1's answers each take 2 ms, process 0's none: with a window of 4, process 0 may not take up more
    than 4 positions past the one process 1 is taking up, so the records waiting here for process 1's stay few
    (without the window, process 0 ran through its whole half and ~1,000 records waited)."""
    monkeypatch.setattr(client_processes, "window_size", lambda in_flight, count: 4)
    waiting: list[int] = []

    class Counted(client_processes.InOrder):
        def put(self, position, record):
            super().put(position, record)
            waiting.append(len(self._waiting))

    monkeypatch.setattr(client_processes, "InOrder", Counted)
    batch = tagged(3000)
    with StubServer(["m"], delay=lambda body: 0.002 * (body["metadata"]["i"] % 2)) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=2, processes=2)
        sender = Sender(2)
        try:
            records = list(sender.send(batch, SamplingOverrides(), config, None))
        finally:
            sender.close()
    assert [r.custom_id for r in records] == [f"r{i}" for i in range(3000)]
    # process 1 takes up to its 257 slots at once (one in flight, 256 looked ahead): that, the window and a
    # flush's worth of records are what may wait
    assert max(waiting) < 700, max(waiting)


def test_one_slow_request_does_not_stop_the_other_processes_sending():
    """r10 takes 3 s; the others none. Its process's other slot and the other process go on sending."""
    sent: dict[str, float] = {}
    with StubServer(["m"], delay=lambda body: 3.0 if body["metadata"]["i"] == 10 else 0.0) as stub:
        config = ClientConfig(
            f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=4, processes=2, on_sent=sent.__setitem__
        )
        sender = Sender(2)
        batch = tagged(3000)
        try:
            records = list(sender.send(batch, SamplingOverrides(), config, None))
        finally:
            sender.close()
    assert all(r.ok for r in records)
    times = sorted(sent.values())
    assert max(b - a for a, b in pairwise(times)) < 1.5  # no pause while r10 is answered


def test_a_request_that_fails_while_others_wait_at_the_gate_ends_the_batch_instead_of_hanging():
    """A gate that holds every request after the first two until it is opened; the first request's task fails
    (its progress callback raises): the batch must end with that error, not wait at the gate for ever."""
    import asyncio

    from pytest_vllmbench.engines.openai_client import send_all

    class HoldingGate:
        def __init__(self) -> None:
            self.opened = asyncio.Event()

        async def wait(self, index: int) -> None:
            if index >= 2:
                await self.opened.wait()

        def open(self) -> None:
            self.opened.set()

    class Broken:
        def finished(self, ok: bool, output_tokens: int) -> None:
            raise RuntimeError("the progress bar broke")

    with StubServer(["m"]) as stub:
        config = ClientConfig(f"http://127.0.0.1:{stub.port}/v1", "m", concurrency=1)

        async def go() -> None:
            gate = HoldingGate()
            await asyncio.wait_for(
                send_all(chat(10), SamplingOverrides(), config, Broken(), lambda p, r: None, None, gate), 10
            )

        with pytest.raises(RuntimeError, match="the progress bar broke"):
            asyncio.run(go())
