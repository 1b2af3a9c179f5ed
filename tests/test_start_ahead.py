"""--start-ahead: the server of the next cell starts beside the offline engine's load, and no path out of a session
(a failed start, -x, Ctrl-C) leaves it running. The server is the real ServerEngine around a FAKE vLLM server
(tests/fake_vllm_server.py); the offline engine is a FAKE in-process one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest
from bench_project import REPO, bench_project
from procs import session_members

from pytest_vllmbench.common.errors import UsageError
from pytest_vllmbench.config.registry import load_registry
from pytest_vllmbench.config.settings import merge_sources, resolve
from pytest_vllmbench.engines.base import EngineStartError, EngineStartTimeout
from pytest_vllmbench.results.labels import load_text, overlap_note
from pytest_vllmbench.results.saved_run import SavedCell
from pytest_vllmbench.run.engine_slot import EngineSlot
from pytest_vllmbench.run.session import BenchSession
from tests.test_fake_pipeline import ARGS
from tests.test_supervisor import FAKE_SERVER

# OFFLINE_START: how the fake offline engine's start ends (ok, fails, interrupted); AHEAD_LOG: the fake server's
# pids as they start, and at pytest_unconfigure (after the session's teardown) the ones still alive.
CONFTEST = f"""
import json, os, signal, sys, time
from pathlib import Path

from pytest_vllmbench.engines import server
from pytest_vllmbench.engines.base import EngineStartError
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.engines.supervisor import session_members
from pytest_vllmbench.run import session
from tests.test_fake_pipeline import FAKE_ENGINE_CONFTEST

exec(FAKE_ENGINE_CONFTEST)
signal.signal(signal.SIGINT, signal.default_int_handler)
LOG = Path(os.environ["AHEAD_LOG"])
PIDS = []


def event(text):
    with LOG.open("a") as log:
        log.write(text + "\\n")


def fake_server(plan, in_background):
    def command(model, served_name, port, engine_args):
        return [sys.executable, {str(FAKE_SERVER)!r}, "--port", str(port), "--served-model-name", served_name]

    alias = plan.cell.model.alias
    engine = server.ServerEngine(
        "fake", alias, {{}}, ClientConfig("", alias), command=command, stop_grace_s=1.0, in_background=in_background
    )
    PIDS.append(engine.process.pid)
    event(f"server {{engine.process.pid}} {{'ahead' if in_background else 'in turn'}}")
    return engine


def start_engine(plan):
    if plan.cell.mode == "server":
        return fake_server(plan, in_background=False)
    event("offline start")
    how = os.environ["OFFLINE_START"]
    if how == "fails":
        raise EngineStartError("SIMULATED offline start failure")
    if how == "interrupted":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    return FakeEngine(plan.cell.mode)


session.start_engine = start_engine
session.start_engine_ahead = lambda plan: server.PendingServer(fake_server(plan, in_background=True))


def pytest_unconfigure(config):
    event("alive at unconfigure " + json.dumps([pid for pid in PIDS if session_members(pid)]))
"""


@pytest.fixture
def ahead_session(pytester, monkeypatch):
    bench_project(pytester, CONFTEST)
    monkeypatch.setenv("FAKE_E2EL_S", "0.01")
    monkeypatch.setenv("AHEAD_LOG", str(pytester.path / "ahead.log"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[str]]:
    result = pytester.runpytest_subprocess(*ARGS, "--start-ahead", *args)
    log = pytester.path / "ahead.log"
    return result, log.read_text().splitlines() if log.exists() else []


def server_pids(log: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in log if line.startswith("server ")]


def test_the_server_starts_beside_the_offline_load_and_serves_its_cell(ahead_session, monkeypatch):
    monkeypatch.setenv("OFFLINE_START", "ok")
    result, log = run(ahead_session, "--benchmark-save=ahead", "--report=none")  # the report's mark: below
    output = result.stdout.str()
    assert result.ret == 0, output[-3000:]
    [pid] = server_pids(log)
    assert log[:2] == [f"server {pid} ahead", "offline start"], log  # spawned first, used in its turn: one start
    assert log[-1] == "alive at unconfigure []"
    [path] = (ahead_session.path / ".benchmarks").glob("*/*_ahead.json")
    cells = {entry["extra_info"]["cell"]: entry["extra_info"] for entry in json.loads(path.read_text())["benchmarks"]}
    assert {name: cell.get("load_overlapped") for name, cell in cells.items()} == {
        "gemma-270m-offline": True,
        "gemma-270m-server": True,
    }
    assert cells["gemma-270m-server"]["n_failed"] == 0 and cells["gemma-270m-server"]["load_s"] > 0
    assert "(overlapped)" in output and "Load s (overlapped): the engine started beside" in output


@pytest.mark.parametrize(
    ("offline_start", "args", "exit_code"),
    [
        ("fails", ("-x",), pytest.ExitCode.TESTS_FAILED),  # the session ends before the server's cell
        ("interrupted", (), pytest.ExitCode.INTERRUPTED),  # Ctrl-C while the offline engine loads
    ],
)
def test_no_server_started_ahead_outlives_the_session(ahead_session, monkeypatch, offline_start, args, exit_code):
    monkeypatch.setenv("OFFLINE_START", offline_start)
    result, log = run(ahead_session, *args)
    assert result.ret == exit_code, result.stdout.str()[-3000:]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert log[-1] == "alive at unconfigure []", log  # stopped by the session's teardown, not only at exit
    [pid] = server_pids(log)  # one server was started ahead: there was something to stop
    assert log[0] == f"server {pid} ahead", log
    assert session_members(pid) == []


class Pending:
    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    def wait(self) -> object:
        self.log.append(f"wait {self.name}")
        if self.fails:
            raise EngineStartError("SIMULATED")
        return Engine(self.log, self.name)

    def cancel(self) -> None:
        self.log.append(f"cancel {self.name}")


class Engine:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def plan(mode: str) -> object:
    class Cell:
        engine_key = ("model", mode)

    class Plan:
        cell = Cell()

    return Plan()


def test_the_slot_hands_an_engine_over_only_once_the_one_started_ahead_serves():
    log: list[str] = []

    def start(p):
        log.append(f"start {p.cell.engine_key[1]}")
        return Engine(log, p.cell.engine_key[1])

    slot = EngineSlot(start, start_ahead=lambda p: Pending(log, p.cell.engine_key[1]))
    offline = slot.get(plan("offline"), ahead=plan("server"))
    assert log == ["start offline", "wait server"] and offline.name == "offline"
    assert slot.overlapped == {("model", "offline"), ("model", "server")}
    server = slot.get(plan("server"))
    assert server.name == "server" and log[-1] == "close offline" and slot.alive() == 1
    assert slot.overlapped == {("model", "server")}  # closed, the offline engine would load alone if started again


def test_the_current_engines_next_cell_keeps_the_engine_started_ahead_for_its_own_cells():
    """A sweep's second cell of the offline engine must not stop the server that was started ahead for later."""
    log: list[str] = []
    slot = EngineSlot(lambda p: Engine(log, p.cell.engine_key[1]), start_ahead=lambda p: Pending(log, "server"))
    slot.get(plan("offline"), ahead=plan("server"))
    slot.get(plan("offline"))
    assert "close server" not in log and slot.alive() == 2
    assert slot.get(plan("server")).name == "server" and log[-1] == "close offline"
    assert slot.overlapped == {("model", "server")}  # the offline engine is gone; the server's load was overlapped
    slot.close()
    assert log[-1] == "close server" and slot.overlapped == set()


def test_an_engine_that_failed_to_start_ahead_starts_again_in_its_turn_unmarked():
    log: list[str] = []
    slot = EngineSlot(
        lambda p: Engine(log, p.cell.engine_key[1]), start_ahead=lambda p: Pending(log, "server", fails=True)
    )
    slot.get(plan("offline"), ahead=plan("server"))
    assert slot.overlapped == {("model", "offline")}
    assert slot.get(plan("server")).name == "server"
    assert slot.overlapped == set()


def test_an_engine_that_ran_out_of_its_start_timeout_ahead_is_not_started_again():
    """A second start would cost the whole --server-timeout again: its cell fails saying why and what to do."""
    started: list[str] = []

    class TimesOut(Pending):
        def wait(self) -> object:
            raise EngineStartTimeout("vLLM server not healthy after 600 s")

    def start(p):
        started.append(p.cell.engine_key[1])
        return Engine([], p.cell.engine_key[1])

    slot = EngineSlot(start, start_ahead=lambda p: TimesOut([], "server"))
    slot.get(plan("offline"), ahead=plan("server"))
    with pytest.raises(EngineStartError, match=r"(?s)not healthy after 600 s.*started ahead.*--server-timeout"):
        slot.get(plan("server"))
    assert started == ["offline"]


def test_closing_the_slot_cancels_a_start_still_under_way():
    log: list[str] = []

    def start_fails(p):
        raise EngineStartError("SIMULATED")

    slot = EngineSlot(start_fails, start_ahead=lambda p: Pending(log, "server"))
    with pytest.raises(EngineStartError):
        slot.get(plan("offline"), ahead=plan("server"))
    slot.close()
    assert log == ["cancel server"]


def test_start_ahead_refuses_interleave_and_xdist_whose_engines_it_cannot_order(ahead_session, monkeypatch):
    raw = {"model": ["gemma-270m"], "rounds": "2", "interleave": True, "start_ahead": True}
    with pytest.raises(UsageError, match="--start-ahead starts the next engine beside the live ones"):
        resolve(merge_sources(raw, {}, {}), REPO)
    parity = {"model": ["gemma-270m"], "start_ahead": True, "vllm_bench_parity": True}
    with pytest.raises(UsageError, match="--vllm-bench-parity stops every engine to run vLLM's own benchmark alone"):
        resolve(merge_sources(parity, {}, {}), REPO)
    monkeypatch.setenv("OFFLINE_START", "ok")
    result, log = run(ahead_session, "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--start-ahead starts the next engine of one process's session" in result.stderr.str()
    assert server_pids(log) == []


def test_an_offline_engine_owns_the_children_it_started_not_those_of_a_server_started_before_it():
    """The offline engine stops what it started; a server started ahead starts its engine core (a grandchild of
    this process) while the offline engine loads, and that one is the server's."""
    from pytest_vllmbench.engines.offline import started_since

    spawn_child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    earlier = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(0.5); {spawn_child}"])
    before = {earlier.pid}
    later = subprocess.Popen([sys.executable, "-c", spawn_child])
    # a server (re)spawned meanwhile by a start-ahead thread: a child of this process, in a session of its own
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = {proc.pid: proc.ppid() for proc in started_since(before)}
            if len(found) == 2 and len(psutil.Process(earlier.pid).children()) == 1:
                break
            time.sleep(0.1)
        assert set(found.values()) == {os.getpid(), later.pid}  # the later child and its child, nothing of earlier's
        assert server.pid not in found
    finally:
        for proc in (earlier, later, server):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()


def test_the_engine_started_ahead_is_the_next_one_the_session_runs_if_its_mode_can_and_on_the_cpu():
    def session(*modes: str, **options: object) -> BenchSession:
        raw = {"model": ["gemma-270m"], "mode": list(modes), "start_ahead": True, **options}
        return BenchSession(resolve(merge_sources(raw, {}, {}), REPO), load_registry(), REPO)

    both = session("offline", "server")
    offline, server = (both.plan(cell) for cell in both.cells)
    assert both.ahead_of(offline).cell.id == "gemma-270m-server" and both.ahead_of(server) is None
    assert both.ahead_of(replace(offline, on_gpu=True)) is None  # two engines would share the GPU's memory
    both.run_order = ["gemma-270m-offline"]  # -k offline: the server's cell is not run, its engine not started
    assert both.ahead_of(offline) is None
    reversed_modes = session("server", "offline")
    assert [reversed_modes.ahead_of(reversed_modes.plan(cell)) for cell in reversed_modes.cells] == [None, None]
    # on the CPU each engine's share is of RAM: two that together would reserve more than 0.9 of it start in turn
    greedy = session("offline", "server", engine_arg=["gpu_memory_utilization=0.6"])
    assert greedy.ahead_of(greedy.plan(greedy.cells[0])) is None
    modest = session("offline", "server", engine_arg=["gpu_memory_utilization=0.4"])
    assert modest.ahead_of(modest.plan(modest.cells[0])).cell.id == "gemma-270m-server"


def test_an_overlapped_load_is_marked_and_explained_where_load_times_are_shown():
    alone, beside = SavedCell.of({"load_s": 70.5}), SavedCell.of({"load_s": 130.25, "load_overlapped": True})
    assert (load_text(alone, 1), load_text(beside, 1)) == ("70.5", "130.2 (overlapped)")
    assert overlap_note([alone]) == "" and "beside another one's load" in overlap_note([alone, beside])
    assert load_text(SavedCell.of({"load_s": None, "load_overlapped": True}), 1) == "-"


def test_a_background_start_that_dies_of_any_error_hands_over_no_server(tmp_path, monkeypatch):
    """An error in the start-ahead thread other than the start's own (an OSError, say) would be lost with the
    thread: it is kept, the spawned server is stopped, and the wait says so instead of handing over a dead server."""
    from pytest_vllmbench.engines import server
    from pytest_vllmbench.engines.openai_client import ClientConfig
    from tests.test_supervisor import fake_command

    def broken(self, port, timeout_s):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(server.ServerEngine, "_wait_healthy", broken)
    engine = server.ServerEngine(
        "fake",
        "m",
        {},
        ClientConfig("", "m"),
        log_dir=tmp_path,
        command=fake_command(),
        stop_grace_s=1.0,
        in_background=True,
    )
    with pytest.raises(EngineStartError, match=r"the vLLM server's start failed: OSError: .*Too many open files"):
        engine.wait_started()
    assert not engine.process.alive() and session_members(engine.process.pid) == []
