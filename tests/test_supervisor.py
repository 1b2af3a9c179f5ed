"""The server supervisor against a FAKE vLLM server (tests/fake_vllm_server.py): stopping returns only when
every process of the server's session is gone, and says which ones survived when some do."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from procs import kill_all, session_members

from pytest_vllmbench.engines import server, supervisor
from pytest_vllmbench.engines.base import EngineStartTimeout
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
    return server.ServerEngine(
        "fake-model",
        "fake",
        {},
        ClientConfig("", "fake"),
        log_dir=tmp_path,
        command=fake_command(*flags),
        stop_grace_s=1.0,
        **kwargs,
    )


@pytest.mark.parametrize(
    "flags",
    [
        (),
        ("--worker-ignores-sigterm",),
        ("--worker-leaves-group", "--worker-ignores-sigterm"),  # out of reach of a signal to the process group
    ],
)
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
    monkeypatch.setattr(
        supervisor, "kill", lambda pids, sig=signal.SIGKILL: real_kill([p for p in pids if p != worker])
    )
    try:
        with pytest.raises(
            EngineStopError,
            match=rf"1 process\(es\) of pid {engine.process.pid}'s session still "
            rf"alive 1 s after SIGKILL: {worker} \(",
        ):
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
    with pytest.raises(EngineStartTimeout) as info:  # a start ahead that timed out is not started again
        start(tmp_path, "--never-healthy", start_timeout_s=2)
    message = str(info.value)
    assert "not healthy after 2 s" in message and str(tmp_path) in message and "fake vLLM server on port" in message
    assert [session_members(pid) for pid in started] == [[]]


def test_a_stranger_healthy_on_the_probed_port_is_not_taken_for_the_server(tmp_path, monkeypatch):
    """The port probed free is taken by another server before ours binds (seen once in CI, two xdist workers
    starting fake servers): its /health answering 200 must not count as ours being up."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    stranger = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    taken = stranger.server_address[1]
    ports = iter([taken])
    monkeypatch.setattr(server, "free_port", lambda: next(ports, None) or _probe_port())
    try:
        engine = start(tmp_path)
        try:
            assert engine.base_url != f"http://127.0.0.1:{taken}/v1"
            assert httpx.get(engine.base_url + "/models", timeout=5).json()["data"][0]["id"] == "fake"
        finally:
            engine.close()
    finally:
        stranger.shutdown()
        stranger.server_close()


def _probe_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_server_is_a_fault_naming_its_exit(tmp_path):
    engine = start(tmp_path)
    try:
        os.killpg(engine.process.pid, signal.SIGKILL)
        assert supervisor.wait_until_gone(engine.process.members, 10.0) == []
        assert "died with code -9" in (engine.fault() or "")
    finally:
        engine.close()


IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"
)


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
        with pytest.raises(
            EngineStopError,
            match=rf"1 engine worker process\(es\) still alive 0 s after SIGKILL: "
            rf"{child.pid} \(",
        ):
            supervisor.stop_children([psutil.Process(child.pid)], grace_s=0.2, kill_wait_s=0.3)
    finally:
        child.kill()
        child.wait()


def test_the_parity_benchmark_leaves_nothing_behind_when_it_runs_too_long(monkeypatch, tmp_path):
    """A FAKE `vllm bench throughput` that starts a worker and never finishes: the parity run stops its whole
    session at the timeout (before, only the direct child was killed and its worker kept the GPU)."""
    from pytest_vllmbench.run import parity

    ready = tmp_path / "worker.pid"
    monkeypatch.setattr(
        parity,
        "bench_throughput_command",
        lambda *args: [
            sys.executable,
            str(FAKE_SERVER),
            "--port",
            "0",
            "--worker-ignores-sigterm",
            "--ready-file",
            str(ready),
        ],
    )
    with pytest.raises(RuntimeError, match=r"did not finish in 8 s"):
        parity.vllm_bench_requests_per_s("m", {}, 8, 8, 1, timeout_s=8.0, stop_grace_s=1.0)  # its worker ignores it
    worker = int(ready.read_text())
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE


SERVER_KEYS = [f"{m}_ms_{s}" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "p50", "p90", "p99")]
FAKE_SERVER_CONFTEST = f"""
# Server cells start the FAKE vLLM server the way ServerEngine starts vLLM; gemma-270m's crashes mid-cell.
import sys
from pytest_vllmbench.engines import server
from pytest_vllmbench.run import session


def start_fake_server(plan):
    cell = plan.cell
    crash = ["--crash-at-request", "3"] if cell.model.alias == "gemma-270m" else []
    def command(model, served_name, port, engine_args):
        return [sys.executable, {str(FAKE_SERVER)!r}, "--port", str(port), "--served-model-name", served_name, *crash]
    return server.ServerEngine("fake-model", cell.model.alias, {{}}, plan.client("", cell.model.alias),
                               30.0, command=command, stop_grace_s=1.0)


session.start_engine = start_fake_server
"""


def test_a_server_killed_mid_cell_fails_only_its_cell_keeps_its_figures_and_leaves_nothing(tmp_path):
    from procs import run_pytest_isolated

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "test_batch.py").write_text((repo / "benchmarks" / "test_batch.py").read_text())
    (tmp_path / "conftest.py").write_text(FAKE_SERVER_CONFTEST)
    args = [
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "--model=gemma-270m",
        "--model=gemma-1b",
        "--mode=server",
        f"--dataset={repo / 'data' / 'batch_5k.jsonl'}",
        "--limit=8",
        "--benchmark-save=killed",
        "--slo=ttft:60000",
        "--report=none",
    ]
    result, leftovers = run_pytest_isolated(args, tmp_path, timeout=120)
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    assert leftovers == []  # the crashed server's worker too
    assert "1 failed, 1 passed" in out
    assert "gemma-270m-server: the vLLM server (pid" in out and "died with code -9" in out
    saved = json.loads(next((tmp_path / ".benchmarks").glob("*/0001_killed.json")).read_text())
    cells = {b["extra_info"]["cell"]: b["extra_info"] for b in saved["benchmarks"]}
    assert set(cells) == {"gemma-270m-server", "gemma-1b-server"}
    killed = cells["gemma-270m-server"]
    assert killed["n_failed"] > 0 and killed["errors"] == {"connection": killed["n_failed"]}
    assert cells["gemma-1b-server"]["n_failed"] == 0 and cells["gemma-1b-server"]["output_tokens"] == 8 * 2
    assert set(SERVER_KEYS) <= set(killed) and "goodput_requests_per_s" in killed


def test_a_second_interrupt_while_the_server_stops_still_leaves_nothing(tmp_path):
    """Ctrl-C (or SIGTERM, made one by the session) again during the grace period: no more waiting, nothing left."""
    ready = tmp_path / "worker.pid"
    process = supervisor.SessionProcess(
        [sys.executable, str(FAKE_SERVER), "--port", "0", "--served-model-name", "fake", "--worker-ignores-sigterm",
         "--ready-file", str(ready)],
        tmp_path / "server.log",
    )  # fmt: skip
    worker = wait_for_file(ready)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    again = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    again.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            process.stop(grace_s=60.0)  # the worker ignores SIGTERM: without the second interrupt, 60 s of grace
    finally:
        again.cancel()
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 10
    while session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = session_members(process.pid)
    kill_all([(p, "") for p in left])
    assert left == [] and worker not in left
