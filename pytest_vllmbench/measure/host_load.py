"""What bounds a cell: vLLM's preemptions (a full KV cache), then CPU time of the client, the API server and the
engine core beside the GPU's busy share.

A Python process does its work on about one core (the GIL), so a process near 100 % of a core is the limit
whenever the GPU is not busy. Roles are told apart by the process titles vLLM sets (`VLLM::APIServer_N`,
`VLLM::EngineCore...`, `VLLM::Worker...`) and by who started whom: the pytest process is the client (and, in
offline mode, the in-process front end), with its client processes (`--client-processes`); an owned server's own
process is its API server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

ROLES = ("client", "api-server", "engine-core")
FIGURE = {"client": "cpu_client_pct", "api-server": "cpu_api_server_pct", "engine-core": "cpu_engine_core_pct"}
GPU_BOUND_PCT = 90.0  # mean GPU busy at or above this: the GPU is the limit
HOST_BOUND_PCT = 80.0  # else a process at or above this share of one core is the limit
CLIENT_PROCESS = "pytest_vllmbench.engines.client_worker"  # --client-processes: the client's other processes
KV_BOUND_PCT = 1.0  # preemptions per 100 requests at or above this: the KV cache is the limit, before all else


def role_of(process: psutil.Process, server_pids: frozenset[int]) -> str:
    """The role of one process of the cell: an owned server's main process and vLLM's API server processes
    are the API server; a client process is the client; every other child (engine core, workers) is the engine
    core."""
    import psutil

    if process.pid in server_pids:
        return "api-server"
    try:
        title = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "engine-core"
    if CLIENT_PROCESS in title:
        return "client"
    return "api-server" if "APIServer" in title else "engine-core"


def _cpu_seconds(process: psutil.Process) -> float | None:
    import psutil

    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return float(times.user + times.system)


@dataclass
class HostLoad:
    """CPU seconds per process over the timed rounds; `start()`/`stop()` around each round. The processes of
    `beside_pids` (other engines', each with its children) are left out."""

    server_pids: frozenset[int] = frozenset()
    beside_pids: frozenset[int] = frozenset()
    _started: dict[int, tuple[str, float]] = field(default_factory=dict)
    _busy_s: dict[int, tuple[str, float]] = field(default_factory=dict)
    _wall_s: float = 0.0
    _t0: float | None = None

    def _processes(self) -> Iterable[tuple[str, psutil.Process]]:
        import psutil

        me = psutil.Process()
        yield "client", me
        beside = set(self.beside_pids)
        for pid in self.beside_pids:
            try:
                beside.update(child.pid for child in psutil.Process(pid).children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        for child in me.children(recursive=True):
            if child.pid not in beside:
                yield role_of(child, self.server_pids), child

    def start(self) -> None:
        self._started = {}
        for role, process in self._processes():
            seconds = _cpu_seconds(process)
            if seconds is not None:
                self._started[process.pid] = (role, seconds)
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        import psutil

        if self._t0 is None:
            return
        self._wall_s += time.perf_counter() - self._t0
        self._t0 = None
        for pid, (role, before) in self._started.items():
            try:
                after = _cpu_seconds(psutil.Process(pid))
            except psutil.NoSuchProcess:
                after = None
            if after is None:
                continue
            _, so_far = self._busy_s.get(pid, (role, 0.0))
            self._busy_s[pid] = (role, so_far + max(after - before, 0.0))

    def figures(self, has_api_server: bool, has_engine_core: bool) -> dict[str, float | None]:
        """Per role, the busiest process's CPU time as % of one core over the timed rounds (None where the
        mode has no such process, or nothing was timed)."""
        present = {"client": True, "api-server": has_api_server, "engine-core": has_engine_core}
        busiest: dict[str, float] = {}
        for role, seconds in self._busy_s.values():
            busiest[role] = max(busiest.get(role, 0.0), seconds)
        out: dict[str, float | None] = {}
        for role in ROLES:
            if not present[role] or self._wall_s <= 0:
                out[FIGURE[role]] = None
            else:
                out[FIGURE[role]] = round(100.0 * busiest.get(role, 0.0) / self._wall_s, 1)
        return out


def preempted_pct(preemptions: float | None, requests_sent: int) -> float | None:
    """vLLM's preemptions per 100 requests sent while its metrics were read (over 100 when requests were preempted
    more than once); None without a count."""
    if preemptions is None or requests_sent <= 0:
        return None
    share = 100.0 * preemptions / requests_sent
    return round(share, 2) if math.isfinite(share) and share >= 0 else None  # a saved run stays strict JSON


def bound_by(gpu_busy_pct: float | None, cpu_pct: Mapping[str, float | None], preempted: float | None = None) -> str:
    """`kv-cache` when vLLM preempted at least KV_BOUND_PCT per 100 requests (`preempted`): its KV cache ran full,
    so it evicted running requests to recompute them later, and a busy GPU or CPU then partly redoes work. Else
    `gpu` when the GPU was busy at least GPU_BOUND_PCT of the time; else the role whose busiest process used the
    most of one core, if at least HOST_BOUND_PCT; else `unclear` (e.g. waiting on the network, or a GPU half busy
    with no process saturated)."""
    if preempted is not None and preempted >= KV_BOUND_PCT:
        return "kv-cache"
    if gpu_busy_pct is not None and gpu_busy_pct >= GPU_BOUND_PCT:
        return "gpu"
    measured = [(value, role) for role in ROLES if (value := cpu_pct.get(FIGURE[role])) is not None]
    if not measured:
        return "unclear"
    value, role = max(measured)
    return role if value >= HOST_BOUND_PCT else "unclear"
