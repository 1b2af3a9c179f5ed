"""The server supervisor against a FAKE vLLM server (tests/fake_vllm_server.py): stopping returns only when
every process of the server's session is gone, and says which ones survived when some do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from procs import kill_all, session_members

from pytest_vllmbench.engines import server, supervisor
from pytest_vllmbench.engines.base import EngineStartError
from pytest_vllmbench.engines.openai_client import ClientConfig
from pytest_vllmbench.engines.supervisor import EngineStopError

FAKE_SERVER = Path(__file__).with_name("fake_vllm_server.py")


def fake_command(*flags: str):
    def command(model: str, served_name: str, port: int, engine_args: dict) -> list[str]:
        return [sys.executable, str(FAKE_SERVER), "--port", str(port), "--served-model-name", served_name, *flags]
    return command


def wait_for_file(path: Path, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while not (path.is_file() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return int(path.read_text())


def start(tmp_path: Path, *flags: str, **kwargs) -> server.ServerEngine:
    return server.ServerEngine("fake-model", "fake", {}, ClientConfig("", "fake"), log_dir=tmp_path,
                               command=fake_command(*flags), stop_grace_s=1.0, **kwargs)


@pytest.mark.parametrize("flags", [
    (),
    ("--worker-ignores-sigterm",),
    ("--worker-leaves-group", "--worker-ignores-sigterm"),  # out of reach of a signal to the process group
])
def test_close_returns_only_when_every_process_of_the_server_is_gone(tmp_path, flags):
    ready = tmp_path / "worker.pid"
    engine = start(tmp_path, *flags, "--ready-file", str(ready))
    worker = wait_for_file(ready)
    pid = engine.process.pid
    assert {pid, worker} <= set(session_members(pid))  # spawn also starts a resource tracker
    engine.close()
    left = session_members(pid)
    kill_all([(p, "") for p in left])
    assert left == []


def test_a_process_that_survives_sigkill_is_named_in_the_error(tmp_path, monkeypatch):
    """The kernel's SIGKILL cannot be refused, so its failure to land is simulated: the supervisor's kill skips
    the worker, which must then be reported by pid, not silently left behind."""
    ready = tmp_path / "worker.pid"
    engine = start(tmp_path, "--worker-leaves-group", "--worker-ignores-sigterm", "--ready-file", str(ready))
    worker = wait_for_file(ready)
    real_kill = supervisor.kill
    monkeypatch.setattr(supervisor, "kill", lambda pids, sig=signal.SIGKILL: real_kill([p for p in pids if p != worker]))
    try:
        with pytest.raises(EngineStopError, match=rf"1 process\(es\) of pid {engine.process.pid}'s session still "
                                                  rf"alive 1 s after SIGKILL: {worker} \("):
            engine.process.stop(grace_s=0.5, kill_wait_s=1.0)
    finally:
        os.kill(worker, signal.SIGKILL)
    assert supervisor.wait_until_gone(lambda: session_members(engine.process.pid), 10.0) == []


def test_start_on_a_taken_port_moves_on_and_keeps_the_refused_start_log(tmp_path, monkeypatch):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    ports = iter([taken])
    real_free_port = server.free_port
    monkeypatch.setattr(server, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        engine = start(tmp_path)
    finally:
        holder.close()
    try:
        assert f":{taken}/" not in engine.base_url and engine.fault() is None
        logs = sorted(tmp_path.glob("*.log"))
        assert len(logs) == 2 and any("Address already in use" in log.read_text() for log in logs)
    finally:
        engine.close()
    assert session_members(engine.process.pid) == []


def test_a_server_never_healthy_is_a_timeout_with_the_log_tail_and_leaves_nothing(tmp_path, monkeypatch):
    started = []

    class Recording(server.SessionProcess):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self.pid)

    monkeypatch.setattr(server, "SessionProcess", Recording)
    with pytest.raises(EngineStartError) as info:
        start(tmp_path, "--never-healthy", start_timeout_s=2)
    message = str(info.value)
    assert "not healthy after 2 s" in message and str(tmp_path) in message and "fake vLLM server on port" in message
    assert [session_members(pid) for pid in started] == [[]]


def test_a_dead_server_is_a_fault_naming_its_exit(tmp_path):
    engine = start(tmp_path)
    try:
        os.killpg(engine.process.pid, signal.SIGKILL)
        assert supervisor.wait_until_gone(engine.process.members, 10.0) == []
        assert "died with code -9" in (engine.fault() or "")
    finally:
        engine.close()


IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


def test_an_engines_workers_are_waited_for_then_killed(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    supervisor.stop_children([psutil.Process(child.pid)], grace_s=0.2, kill_wait_s=10.0)
    assert not psutil.pid_exists(child.pid)  # killed and reaped, well before its 120 s sleep ended


def test_a_worker_that_outlives_sigkill_is_named(monkeypatch):
    """SIMULATED failure of SIGKILL to land (the supervisor's kill skips the child), to test the report."""
    child = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    monkeypatch.setattr(supervisor, "kill", lambda pids, sig=signal.SIGKILL: list(pids))
    try:
        with pytest.raises(EngineStopError, match=rf"1 engine worker process\(es\) still alive 0 s after SIGKILL: "
                                                  rf"{child.pid} \("):
            supervisor.stop_children([psutil.Process(child.pid)], grace_s=0.2, kill_wait_s=0.3)
    finally:
        child.kill()
        child.wait()


def test_the_parity_benchmark_leaves_nothing_behind_when_it_runs_too_long(monkeypatch, tmp_path):
    """A FAKE `vllm bench throughput` that starts a worker and never finishes: the parity run stops its whole
    session at the timeout (before, only the direct child was killed and its worker kept the GPU)."""
    from pytest_vllmbench.run import parity

    ready = tmp_path / "worker.pid"
    monkeypatch.setattr(parity, "bench_throughput_command", lambda *args: [
        sys.executable, str(FAKE_SERVER), "--port", "0", "--worker-ignores-sigterm", "--ready-file", str(ready)])
    with pytest.raises(RuntimeError, match=r"did not finish in 8 s"):
        parity.vllm_bench_requests_per_s("m", {}, 8, 8, 1, timeout_s=8.0)
    worker = int(ready.read_text())
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
